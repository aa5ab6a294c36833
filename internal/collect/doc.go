// Package collect speaks HTTP for ingest: POST /e from the tag (Browser),
// POST /v1/events and the Graph-compatible alias from backends and Meta's
// SDKs (Server). It reads and checks requests (site, origin, api key,
// limits, bots, body), builds events and cookies, hands the events to
// pipeline.Submit and turns its Results into the answer, the metrics and
// the dispatcher's wake-up. It does not gate, prepare or commit events, nor
// reach the queue: held events are released through pipeline.Releaser
// (TestCollectLeavesSubmissionToThePipeline keeps it so). Refusals go
// through one error→status table (errors.go).
package collect

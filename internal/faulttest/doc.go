// Package faulttest holds only tests: a whole relay (app.New) in-process
// against the fake Graph API (capitest), driven over HTTP while faults are
// injected: Graph latency spikes, 5xx storms, rate limits, connection resets,
// hung connections and a token revoked mid-run; a full or read-only data
// directory; a skewed host clock; and attacks on the HTTP surface (secrets
// in logs, api key comparison, oversized input, CORS, admin auth).
//
// Every delivery test ends with the same invariant: each event that got a
// 2xx from /v1/events reaches the fake Graph API. Storage tests need root
// (they mount a small tmpfs); they skip with a message otherwise, except
// under CI=true, where they must run.
package faulttest

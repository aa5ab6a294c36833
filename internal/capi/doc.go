// Package capi speaks Meta's Conversions API (the Graph API /{pixel}/events
// edge): wire types, an HTTP Client, classification of Graph errors into a
// few retry classes, and payload validation that mirrors what Meta rejects.
//
// The package does no queueing and no retries of its own: a caller (package
// dispatch) sends a batch with Client.Send, then turns the returned error into
// an outcome with Classify. Rules cite sections of spec/meta-capi.md (§N).
//
// Everything here is safe for concurrent use unless a doc comment says
// otherwise. No error, message or Problem produced by this package contains
// an access token or a raw user_data value.
package capi

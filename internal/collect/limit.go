package collect

import (
	"net/http"
	"time"
)

// Limit bounds the requests h works on at once. A request beyond max waits
// up to wait for a place, then gets 503 with Retry-After: when the store
// cannot keep up, memory stays bounded and clients back off, instead of
// every waiting request holding its body and decoded events.
func Limit(h http.Handler, max int, wait time.Duration) http.Handler {
	sem := make(chan struct{}, max)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case sem <- struct{}{}:
		default:
			t := time.NewTimer(wait)
			select {
			case sem <- struct{}{}:
				t.Stop()
			case <-t.C:
				writeError(w, &httpError{Kind: errUnavailable, Message: "busy: too many requests in progress, retry shortly"})
				return
			case <-r.Context().Done():
				t.Stop()
				return
			}
		}
		defer func() { <-sem }()
		h.ServeHTTP(w, r)
	})
}

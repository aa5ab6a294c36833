package loadgen

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The hand-written client reads every framing the relay answers with and
// keeps the connection when it may.
func TestConnReadsEveryFraming(t *testing.T) {
	big := strings.Repeat("x", 20000)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Query().Get("f") {
		case "204":
			w.WriteHeader(204)
		case "chunked":
			w.Write([]byte(big[:10000]))
			w.(http.Flusher).Flush()
			w.Write([]byte(big[10000:]))
		case "close":
			w.Header().Set("Connection", "close")
			w.Write([]byte("bye"))
		default:
			w.Write([]byte(`{"ok":true}`))
		}
	}))
	defer srv.Close()
	for _, tc := range []struct{ f, want string }{{"len", `{"ok":true}`}, {"204", ""}, {"chunked", big}, {"len", `{"ok":true}`}, {"close", "bye"}, {"len", `{"ok":true}`}} {
		c, err := newConn(srv.URL+"/?f="+tc.f, [][2]string{{"Content-Type", "text/plain"}})
		if err != nil {
			t.Fatal(err)
		}
		var resp bytes.Buffer
		code, err := c.post(context.Background(), nil, []byte("hello"), &resp)
		if err != nil || code/100 != 2 || resp.String() != tc.want {
			t.Fatalf("%s: %d %v body %d bytes, want %d bytes", tc.f, code, err, resp.Len(), len(tc.want))
		}
		if kept := c.c != nil; kept != (tc.f != "close") {
			t.Errorf("%s: connection kept = %v", tc.f, kept)
		}
		c.close()
	}
}

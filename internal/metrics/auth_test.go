package metrics

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestRequireToken(t *testing.T) {
	m := New()
	for _, tc := range []struct {
		name, token, auth string
		want              int
	}{
		{"open without a token", "", "", http.StatusOK},
		{"missing", "s3cret-metrics", "", http.StatusUnauthorized},
		{"wrong", "s3cret-metrics", "Bearer nope", http.StatusUnauthorized},
		{"not bearer", "s3cret-metrics", "Basic czNjcmV0LW1ldHJpY3M=", http.StatusUnauthorized},
		{"prefix of it", "s3cret-metrics", "Bearer s3cret", http.StatusUnauthorized},
		{"right", "s3cret-metrics", "Bearer s3cret-metrics", http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", "/metrics", nil)
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			rec := httptest.NewRecorder()
			RequireToken(tc.token, m.Handler()).ServeHTTP(rec, req)
			if rec.Code != tc.want {
				t.Fatalf("status %d, want %d", rec.Code, tc.want)
			}
			body := rec.Body.String()
			if tc.want == http.StatusOK && !strings.Contains(body, "go_goroutines") {
				t.Errorf("no metrics served: %.100s", body)
			}
			if tc.want != http.StatusOK && (strings.Contains(body, "go_goroutines") || !strings.Contains(body, `"error"`)) {
				t.Errorf("refusal body = %.200s, want a JSON error and no metrics", body)
			}
		})
	}
}

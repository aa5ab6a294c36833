package app

import (
	"strings"
	"testing"
)

// refGraphPath is graphPath as first written, with strings.Split.
func refGraphPath(p string) bool {
	parts := strings.Split(strings.TrimPrefix(p, "/"), "/")
	if len(parts) != 3 || parts[2] != "events" || parts[1] == "" || len(parts[0]) < 2 || parts[0][0] != 'v' {
		return false
	}
	for _, c := range parts[0][1:] {
		if (c < '0' || c > '9') && c != '.' {
			return false
		}
	}
	return true
}

var graphPaths = []string{"/v21.0/123/events", "/v21.0/123/events/", "/v2/1/events", "v21.0/123/events", "/v/1/events",
	"/v21.0//events", "/v21.0/123/event", "/x21.0/123/events", "/v21a/123/events", "/e", "/", "", "/v21.0/123/events/x",
	"//v21.0/123/events", "/v1.0/a/b/events", "/v١/1/events", "/admin/", "/v1/events"}

func TestGraphPathMatchesReference(t *testing.T) {
	for _, p := range graphPaths {
		if got, want := graphPath(p), refGraphPath(p); got != want {
			t.Errorf("graphPath(%q) = %v; the reference gives %v", p, got, want)
		}
	}
}

func FuzzGraphPath(f *testing.F) {
	for _, p := range graphPaths {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if got, want := graphPath(p), refGraphPath(p); got != want {
			t.Fatalf("graphPath(%q) = %v; the reference gives %v", p, got, want)
		}
	})
}

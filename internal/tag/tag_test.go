package tag

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestGzipSize(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{ConsentNone, ConsentRequired} {
		h := &Handler{}
		v := h.variant(Config{Consent: mode})
		if len(v.gz) > MaxGzipSize {
			t.Errorf("gzipped tag (%s) is %d bytes, budget %d", mode, len(v.gz), MaxGzipSize)
		}
		t.Logf("tag %s: %d bytes, %d gzipped", mode, len(v.body), len(v.gz))
	}
}

func TestSource(t *testing.T) {
	t.Parallel()
	src := string(Source(Config{Consent: ConsentRequired}))
	if strings.Contains(src, cfgMarker) || strings.Count(src, `{"consent":"required"}`) != 1 {
		t.Errorf("config not injected: %.200s", src)
	}
	if strings.Contains(src, "//") && !strings.Contains(src, "://") || strings.Contains(src, "/*") {
		t.Errorf("served tag keeps comments: %.200s", src)
	}
	if !bytes.Contains(served, []byte(cfgMarker)) {
		t.Fatal("t.min.js lost its config marker")
	}
}

func get(t *testing.T, h http.Handler, target string, hdr map[string]string) *http.Response {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, target, nil)
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Result()
}

func TestHandler(t *testing.T) {
	t.Parallel()
	h := &Handler{ConfigFunc: func(ctx context.Context, key string) (Config, error) {
		switch key {
		case "shop":
			return Config{Consent: ConsentNone}, nil
		case "eu":
			return Config{Consent: ConsentRequired}, nil
		case "ldu":
			return Config{Consent: ConsentLDU}, nil
		case "down":
			return Config{}, errors.New("disk on fire")
		}
		return Config{}, fmt.Errorf("site %q: %w", key, ErrUnknownSite)
	}}

	res := get(t, h, "/t.js?site=shop", map[string]string{"Accept-Encoding": "gzip, deflate, br"})
	if res.StatusCode != 200 {
		t.Fatalf("status = %d, want 200", res.StatusCode)
	}
	want := map[string]string{
		"Content-Type":     "text/javascript; charset=utf-8",
		"Cache-Control":    "public, max-age=300, stale-while-revalidate=86400",
		"Content-Encoding": "gzip",
		"Vary":             "Accept-Encoding",
	}
	for k, v := range want {
		if got := res.Header.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	etag := res.Header.Get("ETag")
	if !strings.HasPrefix(etag, `"`) || strings.HasPrefix(etag, "W/") {
		t.Errorf("ETag = %q, want a strong ETag", etag)
	}
	zr, err := gzip.NewReader(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(body, Source(Config{Consent: ConsentNone})) {
		t.Error("gzipped body differs from Source")
	}

	// Same file for every site of the same consent mode, so one cached copy
	// serves them all; LDU is server-side and gets the same file.
	if e := get(t, h, "/t.js?site=ldu", nil).Header.Get("ETag"); e != etag {
		t.Errorf("ldu ETag = %q, want %q", e, etag)
	}
	plain := get(t, h, "/t.js?site=eu", map[string]string{"Accept-Encoding": "gzip;q=0"})
	if plain.Header.Get("Content-Encoding") != "" {
		t.Error("gzip;q=0 still got gzip")
	}
	if e := plain.Header.Get("ETag"); e == etag || e == "" {
		t.Errorf("consent-required ETag = %q, want one of its own", e)
	}
	b, _ := io.ReadAll(plain.Body)
	if !bytes.Contains(b, []byte(`{"consent":"required"}`)) {
		t.Error("consent-required variant lacks its config")
	}

	for _, inm := range []string{etag, `"x", ` + etag, "W/" + etag, "*"} {
		res := get(t, h, "/t.js?site=shop", map[string]string{"If-None-Match": inm})
		if res.StatusCode != http.StatusNotModified {
			t.Errorf("If-None-Match %s: status = %d, want 304", inm, res.StatusCode)
		}
		if res.Header.Get("ETag") != etag || res.Header.Get("Cache-Control") == "" {
			t.Errorf("304 lacks ETag or Cache-Control: %v", res.Header)
		}
	}
	if res := get(t, h, "/t.js?site=shop", map[string]string{"If-None-Match": `"stale"`}); res.StatusCode != 200 {
		t.Errorf("stale If-None-Match: status = %d, want 200", res.StatusCode)
	}

	for target, code := range map[string]int{"/t.js": 400, "/t.js?site=nope": 404, "/t.js?site=down": 503} {
		if res := get(t, h, target, nil); res.StatusCode != code {
			t.Errorf("GET %s: status = %d, want %d", target, res.StatusCode, code)
		}
	}
}

func TestSnippet(t *testing.T) {
	t.Parallel()
	got := Snippet("https://relay.example.com/", "site key&1")
	want := `<script>window.capirelay=window.capirelay||function(){(capirelay.q=capirelay.q||[]).push(arguments)};</script>` +
		`<script async src="https://relay.example.com/t.js?site=site+key%261"></script>`
	if got != want {
		t.Errorf("Snippet = %s\nwant      %s", got, want)
	}
}

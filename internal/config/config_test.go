package config

import (
	"io"
	"strings"
	"testing"
	"time"
)

func TestLoadDefaultsAndEnv(t *testing.T) {
	c, err := Load(nil, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != ":8080" || c.DataDir != "./data" || c.GraphURL != "https://graph.facebook.com" || c.BatchLinger != time.Second || !c.Demo ||
		c.DedupIndexKeys != 2<<20 || c.DispatchParallel != 4 {
		t.Fatalf("defaults = %+v", c)
	}
	env := map[string]string{
		"CAPIRELAY_ADDR": "127.0.0.1:9999", "CAPIRELAY_DATA_DIR": "/tmp/x", "CAPIRELAY_DATABASE_URL": "postgres://u@h/db",
		"CAPIRELAY_GRAPH_URL": "http://127.0.0.1:1", "CAPIRELAY_GRAPH_VERSION": "v24.0", "CAPIRELAY_SECRET_KEY": "k",
		"CAPIRELAY_TRUSTED_PROXIES": "10.0.0.0/8, 192.168.1.1", "CAPIRELAY_BATCH_LINGER": "200ms",
		"CAPIRELAY_DEDUP_INDEX_KEYS": "8000000", "CAPIRELAY_ADMIN_PASSWORD": "twelve chars", "CAPIRELAY_METRICS_TOKEN": " mt-1 ",
		"CAPIRELAY_DISPATCH_PARALLEL": "8",
	}
	c, err = Load(nil, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != "127.0.0.1:9999" || c.DataDir != "/tmp/x" || !IsPostgres(c.DatabaseURL) || c.GraphVersion != "v24.0" ||
		c.SecretKey != "k" || len(c.TrustedProxies) != 2 || c.BatchLinger != 200*time.Millisecond || c.DedupIndexKeys != 8000000 ||
		c.AdminPassword != "twelve chars" || c.MetricsToken != "mt-1" || c.DispatchParallel != 8 {
		t.Fatalf("from env = %+v", c)
	}
	// Flags win over the environment.
	c, err = Load([]string{"-addr", ":1"}, func(k string) string { return env[k] }, io.Discard)
	if err != nil || c.Addr != ":1" {
		t.Fatalf("flag: %v %v", c.Addr, err)
	}
}

func TestLoadRefusesBadValuesNamingThem(t *testing.T) {
	for name, v := range map[string]string{
		"CAPIRELAY_BATCH_LINGER":    "soon",
		"CAPIRELAY_TRUSTED_PROXIES": "10.0.0.0/33",
		"CAPIRELAY_GRAPH_VERSION":   "25",
		"CAPIRELAY_GRAPH_URL":       "graph.facebook.com",
		"CAPIRELAY_DATABASE_URL":    "mysql://x",
		"CAPIRELAY_DEMO":            "maybe",
		// The same minimum as capirelay admin set-password.
		"CAPIRELAY_ADMIN_PASSWORD": "eleven char",
	} {
		check(t, name, v)
	}
	for _, v := range []string{"many", "0", "-5", "2.5", "1e9"} {
		check(t, "CAPIRELAY_DEDUP_INDEX_KEYS", v)
	}
	for _, v := range []string{"none", "0", "33", "-1"} {
		check(t, "CAPIRELAY_DISPATCH_PARALLEL", v)
	}
}

// check wants Load to refuse name=v with an error naming the variable.
func check(t *testing.T, name, v string) {
	t.Helper()
	_, err := Load(nil, func(k string) string {
		if k == name {
			return v
		}
		return ""
	}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), name) {
		t.Errorf("%s=%q: err = %v, want one naming the variable", name, v, err)
	}
}

// TestLoadRefusesZeroDurations: a duration given as 0 (or less) is
// refused, naming the flag or variable it came from; only an unset one
// means the default.
func TestLoadRefusesZeroDurations(t *testing.T) {
	for _, d := range []struct{ flag, env string }{
		{"--batch-linger", "CAPIRELAY_BATCH_LINGER"},
		{"--graph-timeout", "CAPIRELAY_GRAPH_TIMEOUT"},
		{"--retention", "CAPIRELAY_RETENTION"},
		{"--dispatch-lease", "CAPIRELAY_DISPATCH_LEASE"},
	} {
		for _, v := range []string{"0", "0s", "-1s"} {
			check(t, d.env, v)
			_, err := Load([]string{d.flag, v}, func(string) string { return "" }, io.Discard)
			if err == nil || !strings.HasPrefix(err.Error(), d.flag+":") {
				t.Errorf("%s %s: err = %v, want one naming the flag", d.flag, v, err)
			}
		}
	}
	// The flag wins, so its value is the one refused and named, also
	// over a good value in the environment.
	_, err := Load([]string{"--batch-linger", "abc"}, func(k string) string {
		if k == "CAPIRELAY_BATCH_LINGER" {
			return "200ms"
		}
		return ""
	}, io.Discard)
	if err == nil || !strings.HasPrefix(err.Error(), "--batch-linger:") || strings.Contains(err.Error(), "CAPIRELAY_BATCH_LINGER") {
		t.Errorf("--batch-linger abc: err = %v, want one naming --batch-linger only", err)
	}
	// A bad value found by Validate names the flag too.
	_, err = Load([]string{"--graph-version", "25"}, func(string) string { return "" }, io.Discard)
	if err == nil || !strings.HasPrefix(err.Error(), "--graph-version:") {
		t.Errorf("--graph-version 25: err = %v, want one naming the flag", err)
	}
	// Validate, for a Config built in code: zero is the default, less is refused.
	c := Config{Retention: -time.Hour}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "CAPIRELAY_RETENTION") {
		t.Errorf("Validate with a negative retention = %v", err)
	}
	c = Config{}
	if err := c.Validate(); err != nil || c.Retention != DefaultRetention || c.GraphTimeout != DefaultGraphTimeout {
		t.Errorf("Validate of the zero Config = %v, %+v", err, c)
	}
}

func TestLoadPublicURL(t *testing.T) {
	for _, v := range []string{"ftp://x", "https://", "shop.example.com", "http:///capirelay", "/capirelay", "https://u:p@shop.example.com", "https://shop.example.com/?a=b"} {
		check(t, "CAPIRELAY_PUBLIC_URL", v)
		_, err := Load([]string{"--public-url", v}, func(string) string { return "" }, io.Discard)
		if err == nil || !strings.HasPrefix(err.Error(), "--public-url:") {
			t.Errorf("--public-url %s: err = %v, want one naming the flag", v, err)
		}
	}
	for v, want := range map[string]string{
		"":                                    "http://localhost:8080",
		"https://shop.example.com/capirelay/": "https://shop.example.com/capirelay",
		"http://127.0.0.1:8080":               "http://127.0.0.1:8080",
		"HTTPS://relay.example.com":           "https://relay.example.com",
	} {
		c, err := Load([]string{"--public-url", v}, func(string) string { return "" }, io.Discard)
		if err != nil || c.PublicURL != want {
			t.Errorf("--public-url %q = %q, %v; want %q", v, c.PublicURL, err, want)
		}
	}
}

// TestDatabaseURLErrorHidesPassword: a refused database URL is named
// without its password, or not shown at all when it does not parse.
func TestDatabaseURLErrorHidesPassword(t *testing.T) {
	for v, want := range map[string]string{
		"postgress://user:s3cret-pw@db.example/relay":     `"postgress://user:xxxxx@db.example/relay"`,
		"mysql://db.example/relay":                        `"mysql://db.example/relay"`,
		"user:s3cret-pw@db.example/relay":                 "not shown",
		"postgress://user:s3cret-pw@db example/%zz":       "not shown",
		"postgress://db.example/relay?password=s3cret-pw": `"postgress://db.example/relay?…"`,
	} {
		for _, args := range [][]string{nil, {"--database-url", v}} {
			_, err := Load(args, func(k string) string {
				if k == "CAPIRELAY_DATABASE_URL" {
					return v
				}
				return ""
			}, io.Discard)
			if err == nil || strings.Contains(err.Error(), "s3cret-pw") || !strings.Contains(err.Error(), want) {
				t.Errorf("database URL %q (args %q): err = %v, want one showing %s and no password", v, args, err, want)
			}
		}
	}
}

// TestHelpHidesDatabaseURL: serve -h does not print the database URL of
// the environment as the flag's default.
func TestHelpHidesDatabaseURL(t *testing.T) {
	var out strings.Builder
	_, err := Load([]string{"-h"}, func(k string) string {
		if k == "CAPIRELAY_DATABASE_URL" {
			return "postgres://relay:s3cret-pw@db.example/relay"
		}
		return ""
	}, &out)
	if err == nil || strings.Contains(out.String(), "s3cret-pw") || !strings.Contains(out.String(), "-database-url") {
		t.Errorf("serve -h = %v, printed:\n%s", err, out.String())
	}
}

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

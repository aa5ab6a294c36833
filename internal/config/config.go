// Package config reads capirelay's settings from flags and CAPIRELAY_*
// environment variables. It is the only package that reads the environment.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/capirelay/capirelay/internal/capi"
)

// Config is everything serve needs. The zero value of a field means its
// default, which the field comment states.
type Config struct {
	Addr                string         // CAPIRELAY_ADDR, default ":8080"
	DataDir             string         // CAPIRELAY_DATA_DIR, default "./data"
	DatabaseURL         string         // CAPIRELAY_DATABASE_URL, default: SQLite file in DataDir
	GraphURL            string         // CAPIRELAY_GRAPH_URL, default https://graph.facebook.com
	GraphVersion        string         // CAPIRELAY_GRAPH_VERSION, default capi.DefaultVersion
	SecretKey           string         // CAPIRELAY_SECRET_KEY, base64 of 32 bytes; default: key file in DataDir
	TrustedProxies      []netip.Prefix // CAPIRELAY_TRUSTED_PROXIES, comma-separated CIDRs; default none
	BatchLinger         time.Duration  // CAPIRELAY_BATCH_LINGER, default 1s
	PublicURL           string         // CAPIRELAY_PUBLIC_URL, the relay's base URL for snippets; default http://localhost<Addr>
	AdminPassword       string         // CAPIRELAY_ADMIN_PASSWORD, sets the dashboard password at start; at least MinAdminPassword characters
	MetricsToken        string         // CAPIRELAY_METRICS_TOKEN: when set, /metrics wants "Authorization: Bearer <it>"
	LogLevel            string         // CAPIRELAY_LOG_LEVEL: debug, info (default), warn, error
	Demo                bool           // CAPIRELAY_DEMO, default true: create the demo site in sandbox mode
	AllowExpiredVersion bool           // CAPIRELAY_ALLOW_EXPIRED_VERSION: start even on an expired Graph API version
	GraphTimeout        time.Duration  // CAPIRELAY_GRAPH_TIMEOUT, default 10s per Graph request
	Retention           time.Duration  // CAPIRELAY_RETENTION, delivered events kept, default 7 days
	// DispatchLease is how long a claimed batch is this node's before
	// another node may take it (PostgreSQL), CAPIRELAY_DISPATCH_LEASE,
	// default 2m. It must outlast a batch's requests, including the
	// retries that isolate a rejected event.
	DispatchLease time.Duration
	// DispatchParallel is how many batches of one site are in flight at
	// once while its delivery lags, CAPIRELAY_DISPATCH_PARALLEL, default
	// DefaultDispatchParallel.
	DispatchParallel int
	// DedupIndexKeys is how many dedup keys (event name and id of the last
	// 48 hours) the SQLite store finds in memory, about 14 bytes each;
	// past it, new keys go to a slower table on disk.
	// CAPIRELAY_DEDUP_INDEX_KEYS, default DefaultDedupIndexKeys.
	DedupIndexKeys int
}

// MinAdminPassword is the shortest admin password, given in the
// environment or to capirelay admin set-password.
const MinAdminPassword = 12

// Defaults.
const (
	DefaultAddr          = ":8080"
	DefaultDataDir       = "./data"
	DefaultGraphURL      = "https://graph.facebook.com"
	DefaultBatchLinger   = time.Second
	DefaultGraphTimeout  = 10 * time.Second
	DefaultRetention     = 7 * 24 * time.Hour
	DefaultDispatchLease = 2 * time.Minute
	// DefaultDispatchParallel: a batch's round trip to Meta is hundreds of
	// milliseconds, so one batch at a time would cap a pixel's backlog at
	// a few thousand events/s.
	DefaultDispatchParallel = 4
	// MaxDispatchParallel bounds the requests one site keeps open to Meta.
	MaxDispatchParallel = 32
	// DefaultDedupIndexKeys (2 Mi keys, about 28 MB) holds the 48-hour
	// window of a million events a day.
	DefaultDedupIndexKeys = 2 << 20
	// MaxDedupIndexKeys (about 3.5 GB) keeps a typo from asking for more
	// memory than a relay has.
	MaxDedupIndexKeys = 256 << 20
)

// Env lists the environment variables, for the README and `serve -h`.
var Env = []struct{ Name, Default, Help string }{
	{"CAPIRELAY_ADDR", DefaultAddr, "listen address"},
	{"CAPIRELAY_DATA_DIR", DefaultDataDir, "data directory (SQLite file, secret key)"},
	{"CAPIRELAY_DATABASE_URL", "SQLite in the data directory", "postgres://… to share one PostgreSQL between several relay nodes"},
	{"CAPIRELAY_GRAPH_URL", DefaultGraphURL, "Graph API base URL"},
	{"CAPIRELAY_GRAPH_VERSION", capi.DefaultVersion, "Graph API version"},
	{"CAPIRELAY_SECRET_KEY", "generated into the data directory (mode 0600)", "base64 of 32 bytes; seals tokens and raw personal data"},
	{"CAPIRELAY_TRUSTED_PROXIES", "none", "comma-separated CIDRs whose X-Forwarded-For is trusted"},
	{"CAPIRELAY_BATCH_LINGER", DefaultBatchLinger.String(), "how long a partial batch waits for more events"},
	{"CAPIRELAY_PUBLIC_URL", "http://localhost:8080", "the relay's public base URL, used in snippets"},
	{"CAPIRELAY_ADMIN_PASSWORD", "unset", "sets the dashboard password at start"},
	{"CAPIRELAY_LOG_LEVEL", "info", "debug, info, warn or error"},
	{"CAPIRELAY_DEMO", "true", "create the demo site (sandbox) and serve /demo"},
	{"CAPIRELAY_ALLOW_EXPIRED_VERSION", "false", "start even if the Graph API version has expired"},
	{"CAPIRELAY_GRAPH_TIMEOUT", DefaultGraphTimeout.String(), "timeout of one Graph API request"},
	{"CAPIRELAY_RETENTION", DefaultRetention.String(), "how long delivered events are kept"},
	{"CAPIRELAY_DISPATCH_LEASE", DefaultDispatchLease.String(), "how long a node's claim on a batch lasts (several nodes)"},
	{"CAPIRELAY_DISPATCH_PARALLEL", strconv.Itoa(DefaultDispatchParallel), "batches of one site in flight at once while its delivery lags"},
	{"CAPIRELAY_DEDUP_INDEX_KEYS", strconv.Itoa(DefaultDedupIndexKeys), "dedup keys held in memory with SQLite (about 14 bytes each)"},
}

// ErrFlag marks a flag Load could not parse: the flag package has printed
// its message and the usage already.
var ErrFlag = errors.New("bad flag")

// A SettingError is a setting Load or Validate refused. Name is where the
// value came from: the flag when one was given, else the environment
// variable.
type SettingError struct {
	Name string // "--batch-linger" or "CAPIRELAY_BATCH_LINGER"
	Msg  string
}

func (e *SettingError) Error() string { return e.Name + ": " + e.Msg }

func settingErrorf(name, format string, args ...any) error {
	return &SettingError{Name: name, Msg: fmt.Sprintf(format, args...)}
}

// Load reads flags (args, without the subcommand) over the environment.
// Flags win over the environment. A duration given as 0 is refused: only
// an unset one means the default.
func Load(args []string, getenv func(string) string, stderr io.Writer) (Config, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	var c Config
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	env := func(name, def string) string {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			return v
		}
		return def
	}
	// flagOf is the flag of each variable, to name the one a value came from.
	flagOf := map[string]string{}
	str := func(p *string, flagName, envName, def, usage string) *string {
		flagOf[envName] = flagName
		if p == nil {
			p = new(string)
		}
		fs.StringVar(p, flagName, env(envName, def), usage+" ("+envName+")")
		return p
	}
	str(&c.Addr, "addr", "CAPIRELAY_ADDR", DefaultAddr, "listen address")
	str(&c.DataDir, "data-dir", "CAPIRELAY_DATA_DIR", DefaultDataDir, "data directory")
	// -h does not print the database URL from the environment as the
	// flag's default: it may hold a password.
	str(&c.DatabaseURL, "database-url", "CAPIRELAY_DATABASE_URL", "", "postgres://… or empty for SQLite")
	fs.Lookup("database-url").DefValue = ""
	str(&c.GraphURL, "graph-url", "CAPIRELAY_GRAPH_URL", DefaultGraphURL, "Graph API base URL")
	str(&c.GraphVersion, "graph-version", "CAPIRELAY_GRAPH_VERSION", capi.DefaultVersion, "Graph API version")
	str(&c.PublicURL, "public-url", "CAPIRELAY_PUBLIC_URL", "", "public base URL, http:// or https://")
	str(&c.LogLevel, "log-level", "CAPIRELAY_LOG_LEVEL", "info", "log level")
	proxies := str(nil, "trusted-proxies", "CAPIRELAY_TRUSTED_PROXIES", "", "comma-separated CIDRs")
	linger := str(nil, "batch-linger", "CAPIRELAY_BATCH_LINGER", DefaultBatchLinger.String(), "batch linger, more than 0")
	timeout := str(nil, "graph-timeout", "CAPIRELAY_GRAPH_TIMEOUT", DefaultGraphTimeout.String(), "Graph request timeout, more than 0")
	retention := str(nil, "retention", "CAPIRELAY_RETENTION", DefaultRetention.String(), "delivered event retention, more than 0")
	lease := str(nil, "dispatch-lease", "CAPIRELAY_DISPATCH_LEASE", DefaultDispatchLease.String(), "claim lease, more than 0")
	parallel := str(nil, "dispatch-parallel", "CAPIRELAY_DISPATCH_PARALLEL", strconv.Itoa(DefaultDispatchParallel), "batches of one site in flight")
	demo := str(nil, "demo", "CAPIRELAY_DEMO", "true", "create the demo site")
	dedupKeys := str(nil, "dedup-index-keys", "CAPIRELAY_DEDUP_INDEX_KEYS", strconv.Itoa(DefaultDedupIndexKeys), "dedup keys held in memory")
	allowExpired := str(nil, "allow-expired-version", "CAPIRELAY_ALLOW_EXPIRED_VERSION", "false", "start on an expired Graph API version")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return c, err
		}
		return c, fmt.Errorf("%w: %w", ErrFlag, err)
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	// source names where the value of envName came from.
	source := func(envName string) string {
		if given[flagOf[envName]] {
			return "--" + flagOf[envName]
		}
		return envName
	}
	c.SecretKey = getenv("CAPIRELAY_SECRET_KEY")
	c.AdminPassword = getenv("CAPIRELAY_ADMIN_PASSWORD")
	c.MetricsToken = strings.TrimSpace(getenv("CAPIRELAY_METRICS_TOKEN"))
	var errs []error
	var err error
	if c.TrustedProxies, err = ParsePrefixes(*proxies); err != nil {
		errs = append(errs, settingErrorf(source("CAPIRELAY_TRUSTED_PROXIES"), "%v", err))
	}
	dur := func(name, v string) time.Duration {
		d, err := time.ParseDuration(v)
		switch {
		case err != nil:
			errs = append(errs, settingErrorf(source(name), "%q is not a duration such as 200ms or 1s", v))
		case d <= 0:
			// Only an unset duration means the default: 0 is no setting of its own.
			errs = append(errs, settingErrorf(source(name), "%q must be more than 0 (leave it unset for the default)", v))
		}
		return d
	}
	c.BatchLinger = dur("CAPIRELAY_BATCH_LINGER", *linger)
	c.GraphTimeout = dur("CAPIRELAY_GRAPH_TIMEOUT", *timeout)
	c.Retention = dur("CAPIRELAY_RETENTION", *retention)
	c.DispatchLease = dur("CAPIRELAY_DISPATCH_LEASE", *lease)
	b := func(name, v string) bool {
		switch strings.ToLower(v) {
		case "1", "true", "yes", "on":
			return true
		case "0", "false", "no", "off":
			return false
		}
		errs = append(errs, settingErrorf(source(name), "%q is not true or false", v))
		return false
	}
	if n, err := strconv.Atoi(*dedupKeys); err != nil || n < 1 || n > MaxDedupIndexKeys {
		errs = append(errs, settingErrorf(source("CAPIRELAY_DEDUP_INDEX_KEYS"), "%q is not a number of keys from 1 to %d", *dedupKeys, MaxDedupIndexKeys))
	} else {
		c.DedupIndexKeys = n
	}
	if n, err := strconv.Atoi(*parallel); err != nil || n < 1 || n > MaxDispatchParallel {
		errs = append(errs, settingErrorf(source("CAPIRELAY_DISPATCH_PARALLEL"), "%q is not a number of batches from 1 to %d", *parallel, MaxDispatchParallel))
	} else {
		c.DispatchParallel = n
	}
	c.Demo = b("CAPIRELAY_DEMO", *demo)
	c.AllowExpiredVersion = b("CAPIRELAY_ALLOW_EXPIRED_VERSION", *allowExpired)
	if len(errs) > 0 {
		return c, errors.Join(errs...)
	}
	err = c.Validate()
	if se := (*SettingError)(nil); errors.As(err, &se) {
		se.Name = source(se.Name)
	}
	return c, err
}

// Validate checks the settings and fills defaults. Its errors are
// *SettingError naming the environment variable.
func (c *Config) Validate() error {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	if c.GraphURL == "" {
		c.GraphURL = DefaultGraphURL
	}
	if c.GraphVersion == "" {
		c.GraphVersion = capi.DefaultVersion
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"CAPIRELAY_BATCH_LINGER", &c.BatchLinger, DefaultBatchLinger},
		{"CAPIRELAY_GRAPH_TIMEOUT", &c.GraphTimeout, DefaultGraphTimeout},
		{"CAPIRELAY_RETENTION", &c.Retention, DefaultRetention},
		{"CAPIRELAY_DISPATCH_LEASE", &c.DispatchLease, DefaultDispatchLease},
	} {
		if *d.v < 0 {
			return settingErrorf(d.name, "%s must be more than 0", *d.v)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if c.DedupIndexKeys == 0 {
		c.DedupIndexKeys = DefaultDedupIndexKeys
	}
	if c.DedupIndexKeys < 0 || c.DedupIndexKeys > MaxDedupIndexKeys {
		return settingErrorf("CAPIRELAY_DEDUP_INDEX_KEYS", "%d is not from 1 to %d", c.DedupIndexKeys, MaxDedupIndexKeys)
	}
	if c.PublicURL == "" {
		host := c.Addr
		if strings.HasPrefix(host, ":") {
			host = "localhost" + host
		}
		c.PublicURL = "http://" + host
	}
	c.PublicURL = strings.TrimRight(c.PublicURL, "/")
	u, err := url.Parse(c.PublicURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return settingErrorf("CAPIRELAY_PUBLIC_URL", "%q must be an absolute http:// or https:// URL with a host, such as https://shop.example.com/capirelay", c.PublicURL)
	}
	c.PublicURL = u.Scheme + c.PublicURL[len(u.Scheme):] // HTTPS:// is https://
	if !strings.HasPrefix(c.GraphURL, "http://") && !strings.HasPrefix(c.GraphURL, "https://") {
		return settingErrorf("CAPIRELAY_GRAPH_URL", "%q must start with http:// or https://", c.GraphURL)
	}
	if !strings.HasPrefix(c.GraphVersion, "v") || !strings.HasSuffix(c.GraphVersion, ".0") {
		return settingErrorf("CAPIRELAY_GRAPH_VERSION", "%q must look like v25.0", c.GraphVersion)
	}
	if c.DatabaseURL != "" && !IsPostgres(c.DatabaseURL) && !strings.HasPrefix(c.DatabaseURL, "sqlite:") && !strings.HasPrefix(c.DatabaseURL, "file:") {
		return settingErrorf("CAPIRELAY_DATABASE_URL", "%s must be postgres://…, sqlite:PATH or file:PATH", redactURL(c.DatabaseURL))
	}
	if c.AdminPassword != "" && utf8.RuneCountInString(c.AdminPassword) < MinAdminPassword {
		return settingErrorf("CAPIRELAY_ADMIN_PASSWORD", "the admin password must have at least %d characters (the same minimum as capirelay admin set-password)", MinAdminPassword)
	}
	switch c.LogLevel {
	case "", "debug", "info", "warn", "error":
	default:
		return settingErrorf("CAPIRELAY_LOG_LEVEL", "%q is not debug, info, warn or error", c.LogLevel)
	}
	return nil
}

// redactURL quotes a database URL for an error without its password; one
// that does not parse as scheme://[user[:password]@]host… is not shown.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Opaque != "" || u.Scheme == "" || u.Host == "" {
		return "the value (not shown: it may hold a password)"
	}
	if u.RawQuery != "" {
		u.RawQuery = "…" // password=… may be a parameter
	}
	return strconv.Quote(u.Redacted())
}

// IsPostgres reports whether url names a PostgreSQL database.
func IsPostgres(url string) bool {
	return strings.HasPrefix(url, "postgres://") || strings.HasPrefix(url, "postgresql://")
}

// SQLitePath is the SQLite file to use when DatabaseURL does not name PostgreSQL.
func (c *Config) SQLitePath(file string) string {
	if p, ok := strings.CutPrefix(c.DatabaseURL, "sqlite:"); ok {
		return p
	}
	if p, ok := strings.CutPrefix(c.DatabaseURL, "file:"); ok {
		return p
	}
	return filepath.Join(c.DataDir, file)
}

// ParsePrefixes parses comma-separated CIDRs or addresses.
func ParsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if !strings.Contains(f, "/") {
			a, err := netip.ParseAddr(f)
			if err != nil {
				return nil, fmt.Errorf("%q is not a CIDR or IP address", f)
			}
			out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("%q is not a CIDR", f)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

package collect

import (
	"bufio"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/capirelay/capirelay/internal/sharedtest"
)

func TestClientIP(t *testing.T) {
	t.Parallel()
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8"), netip.MustParsePrefix("127.0.0.1/32")}
	tests := []struct {
		name    string
		remote  string
		xff     []string
		trusted []netip.Prefix
		want    string
	}{
		{"socket v4", "203.0.113.7:51234", nil, trusted, "203.0.113.7"},
		{"socket v6 kept", "[2001:db8::1]:443", nil, trusted, "2001:db8::1"},
		{"socket v4-mapped unmapped", "[::ffff:203.0.113.7]:80", nil, trusted, "203.0.113.7"},
		{"socket zone dropped", "[fe80::1%eth0]:80", nil, trusted, "fe80::1"},
		{"untrusted peer: XFF ignored", "198.51.100.20:1", []string{"1.2.3.4"}, trusted, "198.51.100.20"},
		{"no trusted proxies: XFF ignored", "10.0.0.2:1", []string{"1.2.3.4"}, nil, "10.0.0.2"},
		{"trusted peer: client from XFF", "10.0.0.2:1", []string{"203.0.113.7"}, trusted, "203.0.113.7"},
		{"right-most untrusted hop wins over spoofed left", "10.0.0.2:1", []string{"6.6.6.6, 203.0.113.7, 10.0.0.1"}, trusted, "203.0.113.7"},
		{"several XFF headers read right to left", "10.0.0.2:1", []string{"6.6.6.6", "203.0.113.7, 10.1.1.1"}, trusted, "203.0.113.7"},
		{"XFF IPv6 kept", "10.0.0.2:1", []string{"2001:db8::7"}, trusted, "2001:db8::7"},
		{"XFF hop with port", "10.0.0.2:1", []string{"203.0.113.7:4711"}, trusted, "203.0.113.7"},
		{"XFF bracketed IPv6 with port", "10.0.0.2:1", []string{"[2001:db8::7]:4711"}, trusted, "2001:db8::7"},
		{"XFF v4-mapped", "10.0.0.2:1", []string{"::ffff:203.0.113.7"}, trusted, "203.0.113.7"},
		{"garbage hop: last vouched address", "10.0.0.2:1", []string{"unknown, 10.0.0.9"}, trusted, "10.0.0.9"},
		{"all hops trusted: left-most", "10.0.0.2:1", []string{"10.0.0.5, 10.0.0.9"}, trusted, "10.0.0.5"},
		{"trusted peer, no XFF", "127.0.0.1:9", nil, trusted, "127.0.0.1"},
		{"bad remote", "pipe", nil, trusted, "invalid IP"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/e", nil)
			r.RemoteAddr = tc.remote
			for _, x := range tc.xff {
				r.Header.Add("X-Forwarded-For", x)
			}
			if got := ClientIP(r, tc.trusted).String(); got != tc.want {
				t.Errorf("ClientIP(%s, XFF %q) = %s, want %s", tc.remote, tc.xff, got, tc.want)
			}
		})
	}
}

// TestClientIPPeerParams runs the client-IP scenarios of
// shared/testdata/peer-params.jsonl, with 10/8 and 192.168/16 as the trusted
// proxies. Differences by design: the Parameter Builder takes the left-most
// X-Forwarded-For hop when it is public (spoofable), ignores the socket when
// it is, and prefers the _fbi cookie; we trust only configured proxies and
// read no _fbi cookie (spec §5.6, Go rule). Where the proxy setup makes the
// two rules agree, the answers must match.
func TestClientIPPeerParams(t *testing.T) {
	t.Parallel()
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.168.0.0/16")}
	differ := map[string]string{
		"ip-fbi-cookie": "the _fbi cookie is not read; the socket address is the client",
	}
	f, err := os.Open(filepath.Join(peerTestdataDir(t), "testdata", "peer-params.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	seen := 0
	for sc.Scan() {
		var row struct {
			ID    string `json:"id"`
			Input struct {
				XFF    *string `json:"x_forwarded_for"`
				Remote *string `json:"remote_address"`
			} `json:"input"`
			Output struct {
				IP *string `json:"client_ip_address"`
			} `json:"output"`
		}
		if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(row.ID, "ip-") {
			continue
		}
		seen++
		t.Run(row.ID, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/e", nil)
			r.RemoteAddr = ""
			if row.Input.Remote != nil {
				r.RemoteAddr = *row.Input.Remote
			}
			if row.Input.XFF != nil {
				r.Header.Set("X-Forwarded-For", *row.Input.XFF)
			}
			got := ClientIP(r, trusted).String()
			if why, ok := differ[row.ID]; ok {
				t.Logf("differs by design (%s): got %s, PB %s", why, got, *row.Output.IP)
				if got != *row.Input.Remote {
					t.Errorf("ClientIP = %s, want the socket address %s", got, *row.Input.Remote)
				}
				return
			}
			want := *row.Output.IP
			want = want[:strings.LastIndexByte(want, '.')] // PB's appendix
			if got != want {
				t.Errorf("ClientIP = %s, want %s", got, want)
			}
		})
	}
	if seen == 0 {
		t.Error("no ip-* rows in peer-params.jsonl")
	}
}

// peerTestdataDir is ../shared beside the repository.
func peerTestdataDir(t *testing.T) string { return sharedtest.Dir(t) }

// refParseHost is parseHost as first written: netip.ParseAddrPort first,
// whatever the string.
func refParseHost(s string) netip.Addr {
	if s == "" {
		return netip.Addr{}
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap().WithZone("")
	}
	s = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap().WithZone("")
}

var hostCorpus = []string{"", "1.2.3.4", "1.2.3.4:80", "[::1]:80", "[::1]", "::1", "::1:80", "[1.2.3.4]:80", "[1.2.3.4]",
	"::ffff:1.2.3.4", "[::ffff:1.2.3.4]:5", "fe80::1%eth0", "[fe80::1%eth0]:9", "1.2.3.4:", ":80", "[::1]:x", "1.2.3.4:99999",
	"[", "]", "[]:1", "a:b:c", "1.2.3.4%z:1", "2001:db8::1]", "[2001:db8::1"}

func TestParseHostMatchesReference(t *testing.T) {
	for _, s := range hostCorpus {
		if got, want := parseHost(s), refParseHost(s); got != want {
			t.Errorf("parseHost(%q) = %v; the reference gives %v", s, got, want)
		}
	}
}

func FuzzParseHost(f *testing.F) {
	for _, s := range hostCorpus {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := parseHost(s), refParseHost(s); got != want {
			t.Fatalf("parseHost(%q) = %v; the reference gives %v", s, got, want)
		}
	})
}

// FuzzClientIP: ClientIP answers as its first version, which split each
// X-Forwarded-For header with strings.Split.
func FuzzClientIP(f *testing.F) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8"), netip.MustParsePrefix("127.0.0.1/32")}
	old := func(r *http.Request) netip.Addr {
		peer := refParseHost(r.RemoteAddr)
		if !peer.IsValid() || !isTrusted(peer, trusted) {
			return peer
		}
		client := peer
		hops := r.Header.Values("X-Forwarded-For")
		for i := len(hops) - 1; i >= 0; i-- {
			parts := strings.Split(hops[i], ",")
			for j := len(parts) - 1; j >= 0; j-- {
				a := refParseHost(strings.TrimSpace(parts[j]))
				if !a.IsValid() {
					return client
				}
				client = a
				if !isTrusted(a, trusted) {
					return a
				}
			}
		}
		return client
	}
	for _, x := range [][2]string{{"6.6.6.6, 203.0.113.7, 10.0.0.1", ""}, {"6.6.6.6", "203.0.113.7, 10.1.1.1"}, {"", ""},
		{"203.0.113.7,", "10.0.0.5"}, {",,", "10.0.0.9 , 10.0.0.8"}, {"unknown, 10.0.0.9", "[2001:db8::7]:4711"}} {
		f.Add("10.0.0.2:1", x[0], x[1])
	}
	f.Fuzz(func(t *testing.T, remote, xff1, xff2 string) {
		r := httptest.NewRequest("POST", "/e", nil)
		r.RemoteAddr = remote
		for _, x := range []string{xff1, xff2} {
			if x != "" {
				r.Header.Add("X-Forwarded-For", x)
			}
		}
		if got, want := ClientIP(r, trusted), old(r); got != want {
			t.Fatalf("ClientIP(%q, XFF %q %q) = %v, want %v", remote, xff1, xff2, got, want)
		}
	})
}

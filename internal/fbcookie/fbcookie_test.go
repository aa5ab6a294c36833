package fbcookie

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/capirelay/capirelay/internal/sharedtest"
)

var now = time.UnixMilli(1735689600000)

func TestParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want bool
	}{
		{"fb.1.1596403881668.1116446470", true},
		{"fb.1.1554763741205.IwAR2F4-dbP0l7Mn1IawQQGCINEz7PYXQvwjNwB_qa2ofrHyiLjcbCRxTDMgk", true},
		{"fb.0.1.x", true},
		{"fb.1.123.abc.BA", true},
		{"fb.1.123.abc.Bg", true},
		{"fb.1.123.abc.AQ", true},
		{"fb.1.1700000000000.1234567890.AQQCAQMC", true},
		{"fb.1.1700000000000.1234567890.AQYDAQMC", true},
		{"fb.1.123.abc.invalid", false},  // §5.9 #8
		{"fb.1.123.", false},             // empty payload
		{"fb1.1.123.abc", false},         // 3 segments
		{"fb.1b.123.", false},            // non-digit index
		{"fb.1.123aa.abc", false},        // non-digit time
		{"fb.000000.123_1.test", false},  // non-digit time
		{"fb.1.123.abc.ZZZZZZZZ", false}, // not a decodable appendix (§5.9 observed)
		{"fb.1.123.abc.XX", false},       // unknown token
		{"fb.1.123.abc.AQkCAQMC", false}, // language byte 9
		{"fb.1.123.abc.AgQCAQMC", false}, // format byte 2
		{"fb.1.123.abc.def.AQQCAQMC", false},
		{"FB.1.123.abc", false},
		{" fb.1.123.abc", false},
		{"fb..123.abc", false},
		{"", false},
		{"garbage", false},
	}
	for _, tc := range tests {
		if got := Valid(tc.in); got != tc.want {
			t.Errorf("Valid(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
	v, ok := Parse("fb.2.1700000000000.IwAR.AQQCAQMC")
	if !ok || v.SubdomainIndex != 2 || v.CreationTime != 1700000000000 || v.Payload != "IwAR" || v.Appendix != "AQQCAQMC" {
		t.Errorf("Parse = %+v, %v", v, ok)
	}
}

func TestCookieDomain(t *testing.T) {
	t.Parallel()
	tests := []struct {
		host       string
		configured []string
		want       Domain
	}{
		{"www.example.com", nil, Domain{Name: "example.com", Index: 1}},
		{"example.com", nil, Domain{Name: "example.com", Index: 1}},
		{"a.builder.example.com:8080", nil, Domain{Name: "example.com", Index: 1}},
		{"https://a.builder.example.com:8080", nil, Domain{Name: "example.com", Index: 1}},
		{"example.co.uk", nil, Domain{Name: "example.co.uk", Index: 2}},
		{"www.example.co.uk", nil, Domain{Name: "example.co.uk", Index: 2}},
		{"shop.example.co.uk", nil, Domain{Name: "example.co.uk", Index: 2}},
		{"a.b.shop.example.com", nil, Domain{Name: "example.com", Index: 1}},
		{"WWW.EXAMPLE.COM", nil, Domain{Name: "example.com", Index: 1}},
		{"www.shop.test", nil, Domain{Name: "shop.test", Index: 1}},
		{"myshop.github.io", nil, Domain{Name: "myshop.github.io", Index: 2}},
		{"localhost", nil, Domain{Name: "localhost", HostOnly: true}},
		{"localhost:3000", nil, Domain{Name: "localhost", HostOnly: true}},
		{"127.0.0.1:8080", nil, Domain{Name: "127.0.0.1", HostOnly: true}},
		{"203.0.113.10", nil, Domain{Name: "203.0.113.10", HostOnly: true}},
		{"[::1]:8080", nil, Domain{Name: "::1", HostOnly: true}},
		{"[2001:db8::1]:443", nil, Domain{Name: "2001:db8::1", HostOnly: true}},
		{"2001:db8::1", nil, Domain{Name: "2001:db8::1", HostOnly: true}},
		{"intranet", nil, Domain{Name: "intranet", HostOnly: true}},
		{"", nil, Domain{HostOnly: true}},
		{"co.uk", nil, Domain{Name: "co.uk", HostOnly: true, Index: 1}},
		// Configured domains win when they match, scheme and port stripped.
		{"www.example.com", []string{"https://www.example.com:8443"}, Domain{Name: "www.example.com", Index: 2}},
		{"a.b.shop.example.com", []string{"other.com", "shop.example.com"}, Domain{Name: "shop.example.com", Index: 2}},
		{"www.example.co.uk", []string{"co.uk"}, Domain{Name: "example.co.uk", Index: 2}}, // a public suffix is ignored
		{"www.example.com", []string{"example.org"}, Domain{Name: "example.com", Index: 1}},
	}
	for _, tc := range tests {
		if got := CookieDomain(tc.host, tc.configured); got != tc.want {
			t.Errorf("CookieDomain(%q, %q) = %+v, want %+v", tc.host, tc.configured, got, tc.want)
		}
	}
}

var fbpRe = regexp.MustCompile(`^fb\.(\d+)\.(\d+)\.(\d+)$`)

func TestNewFbp(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 2000 {
		v := NewFbp(now, 1)
		m := fbpRe.FindStringSubmatch(v)
		if m == nil || m[1] != "1" || m[2] != "1735689600000" {
			t.Fatalf("NewFbp = %q, want fb.1.1735689600000.<random>", v)
		}
		n, _ := strconv.ParseInt(m[3], 10, 64)
		if n < 1_000_000_000 || n >= 2_147_483_647 {
			t.Fatalf("NewFbp random part %d outside [1e9, 2147483647)", n)
		}
		if !Valid(v) {
			t.Fatalf("NewFbp = %q is not Valid", v)
		}
		seen[m[3]] = true
	}
	if len(seen) < 1990 {
		t.Errorf("NewFbp: only %d distinct random parts in 2000", len(seen))
	}
}

func TestClickID(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("A", 500)
	tests := []struct{ page, ref, want string }{
		{"https://www.example.com/?fbclid=IwAR2XyZ", "", "IwAR2XyZ"},
		{"https://www.example.com/?fbclid=IwAR2XyZ&fbclid=second", "", "IwAR2XyZ"},
		{"https://www.example.com/?FBCLID=IwAR2XyZ", "", ""},
		{"https://www.example.com/?fbclid=", "", ""},
		{"https://www.example.com/?fbclid=IwAR%2Bx%2Fy%3D", "", "IwAR+x/y="},
		{"https://www.example.com/?fbclid=" + long, "", long},
		{"https://www.example.com/?fbclid=" + long + "A", "", ""},
		{"https://www.example.com/?fbclid=abc.def", "", ""},
		{"https://www.example.com/?fbclid=a%3Bb", "", ""},
		{"https://www.example.com/", "https://www.example.com/landing?utm_source=fb&fbclid=REF", "REF"},
		{"https://www.example.com/?fbclid=FROMQUERY", "https://www.example.com/?fbclid=FROMREFERER", "FROMQUERY"},
		{"", "www.example.com/page?fbclid=REFNOSCHEME", "REFNOSCHEME"},
		{"https://www.example.com/?fbclid=", "https://x.com/?fbclid=REF", "REF"},
	}
	for _, tc := range tests {
		if got := ClickID(tc.page, tc.ref); got != tc.want {
			t.Errorf("ClickID(%q, %q) = %q, want %q", tc.page, tc.ref, got, tc.want)
		}
	}
}

// TestResolveSpec runs the cases of spec §5.9 (Parameter Builder 1.3.2
// tests) that apply to a correct implementation. Expected values are written
// without PB's appendix: we emit 4-segment values (§5.3). Where PB's
// domain-list or resolver config matters, the public suffix list plays the
// resolver. Differences by design:
//   - #4, #7: PB without config drops the first label (builder.example.com,
//     index 2); we use the registrable domain example.com, index 1.
//   - #5: PB appends .NO_CHANGE to a valid 4-segment value; we keep it byte
//     for byte.
//   - #14: PB's extra-parameter feature is not needed.
func TestResolveSpec(t *testing.T) {
	t.Parallel()
	const ts = "1735689600000"
	tests := []struct {
		name, host, query, fbp, fbc, referer string
		wantIdx                              int
		wantFbc                              string // "" = none; "NEW:x" = minted for click x
		wantFbp                              string // "" = minted
	}{
		{name: "1 resolver", host: "a.builder.example.com:8080", query: "abcd", wantIdx: 1, wantFbc: "NEW:abcd"},
		{name: "2 list", host: "https://a.builder.example.com:8080", query: "abcd", wantIdx: 1, wantFbc: "NEW:abcd"},
		{name: "4 no config (PSL)", host: "a.builder.example.com:8080", query: "abcde", wantIdx: 1, wantFbc: "NEW:abcde"},
		{name: "5 same click kept", host: "a.builder.example.com:8080", query: "abc", fbc: "fb.1.123.abc", wantIdx: 1, wantFbc: "fb.1.123.abc"},
		{name: "6 both 5-seg kept", host: "a.builder.example.com:8080", query: "abc", fbc: "fb.1.123.abc.BA", fbp: "fb.1.123.123456.BA", wantIdx: 1, wantFbc: "fb.1.123.abc.BA", wantFbp: "fb.1.123.123456.BA"},
		{name: "7 new click replaces", host: "a.builder.example.com:8080", query: "def", fbc: "fb.1.123.abc", wantIdx: 1, wantFbc: "NEW:def"},
		{name: "8a invalid", host: "a.builder.example.com:8080", fbc: "fb.1.123.abc.invalid", fbp: "fb.1.123.", wantIdx: 1},
		{name: "8b invalid", host: "a.builder.example.com:8080", fbc: "fb1.1.123.abc", fbp: "fb.1b.123.", wantIdx: 1},
		{name: "8c invalid", host: "a.builder.example.com:8080", fbc: "fb.1.123aa.abc", fbp: "fb.000000.123_1.test", wantIdx: 1},
		{name: "9 Bg kept", host: "a.builder.example.com:8080", fbc: "fb.1.123.abc.Bg", wantIdx: 1, wantFbc: "fb.1.123.abc.Bg"},
		{name: "10 IPv4", host: "127.0.0.1:8080", query: "abc", wantIdx: 0, wantFbc: "NEW:abc"},
		{name: "11 IPv6", host: "[::1]:8080", query: "abcd", referer: "example.com", wantIdx: 0, wantFbc: "NEW:abcd"},
		{name: "12 referer", host: "[::1]:8080", referer: "example.com?fbclid=test123", wantIdx: 0, wantFbc: "NEW:test123"},
		{name: "13 query wins", host: "https://a.builder.example.com:8080", query: "test123", referer: "example.com?fbclid=456test", wantIdx: 1, wantFbc: "NEW:test123"},
		{name: "observed co.uk apex", host: "example.co.uk", query: "x", wantIdx: 2, wantFbc: "NEW:x"},
		{name: "observed co.uk www", host: "www.example.co.uk", query: "x", wantIdx: 2, wantFbc: "NEW:x"},
		{name: "observed localhost", host: "localhost:3000", query: "x", wantIdx: 0, wantFbc: "NEW:x"},
		{name: "observed undecodable appendix", host: "www.example.com", fbc: "fb.1.123.abc.ZZZZZZZZ", wantIdx: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			page := "https://page.invalid/"
			if tc.query != "" {
				page += "?fbclid=" + tc.query
			}
			d := CookieDomain(tc.host, nil)
			if d.Index != tc.wantIdx {
				t.Fatalf("CookieDomain(%q).Index = %d, want %d", tc.host, d.Index, tc.wantIdx)
			}
			st := Resolve(now, d.Index, tc.fbp, tc.fbc, ClickID(page, tc.referer))
			checkState(t, st, tc.wantIdx, ts, tc.wantFbp, tc.wantFbc)
		})
	}
}

func checkState(t *testing.T, st State, idx int, ts, wantFbp, wantFbc string) {
	t.Helper()
	prefix := "fb." + strconv.Itoa(idx) + "." + ts + "."
	if wantFbp == "" {
		if !st.FbpNew || !strings.HasPrefix(st.Fbp, prefix) || !fbpRe.MatchString(st.Fbp) {
			t.Errorf("fbp = %q (new %v), want minted %s<random>", st.Fbp, st.FbpNew, prefix)
		}
	} else if st.Fbp != wantFbp || st.FbpNew {
		t.Errorf("fbp = %q (new %v), want kept %q", st.Fbp, st.FbpNew, wantFbp)
	}
	switch {
	case wantFbc == "":
		if st.Fbc != "" || st.FbcNew {
			t.Errorf("fbc = %q (new %v), want none", st.Fbc, st.FbcNew)
		}
	case strings.HasPrefix(wantFbc, "NEW:"):
		if w := prefix + strings.TrimPrefix(wantFbc, "NEW:"); st.Fbc != w || !st.FbcNew {
			t.Errorf("fbc = %q (new %v), want minted %q", st.Fbc, st.FbcNew, w)
		}
	default:
		if st.Fbc != wantFbc || st.FbcNew {
			t.Errorf("fbc = %q (new %v), want kept %q", st.Fbc, st.FbcNew, wantFbc)
		}
	}
}

// peerDifferences lists the peer-params.jsonl scenarios where a correct
// implementation deliberately differs from capi-param-builder-nodejs 1.3.2,
// and why. Every other cookie scenario must match PB once PB's appendix is
// removed from its output (we emit 4-segment values; §5.3).
var peerDifferences = map[string]string{
	"fbclid-couk-apex-nolist":     "PB picks the public suffix co.uk (index 1); the PSL gives example.co.uk (index 2)",
	"deep-sub-nolist":             "PB drops one label (b.shop.example.com, index 3); the PSL gives example.com (index 1)",
	"host-uppercase":              "host names are case-insensitive: we lower-case (example.com), PB keeps EXAMPLE.COM",
	"fbc-4seg-same":               "a valid 4-segment value is kept byte for byte; PB appends .AQQAAQMC",
	"fbc-existing-no-fbclid":      "a valid 4-segment value is kept byte for byte; PB appends .AQQAAQMC",
	"fbc-other-subdomain-index":   "a valid 4-segment value is kept byte for byte; PB appends .AQQAAQMC",
	"fbp-4seg":                    "a valid 4-segment value is kept byte for byte; PB appends .AQQAAQMC",
	"fbc-dotted-fbclid-roundtrip": "a click id with a dot cannot make a valid _fbc, so we ignore it instead of minting a value that is refused on the next request",
}

type peerRow struct {
	ID    string `json:"id"`
	Input struct {
		Ctor    json.RawMessage   `json:"param_builder_ctor"`
		Method  string            `json:"method"`
		Host    *string           `json:"host"`
		Queries map[string]string `json:"queries"`
		Cookies map[string]string `json:"cookies"`
		Referer *string           `json:"referer"`
	} `json:"input"`
	Clock struct {
		NowMS int64 `json:"now_ms"`
	} `json:"clock"`
	Output struct {
		Fbc     *string `json:"fbc"`
		Fbp     *string `json:"fbp"`
		Cookies []struct {
			Name   string  `json:"name"`
			Value  string  `json:"value"`
			Domain *string `json:"domain"`
		} `json:"cookies_to_set"`
	} `json:"output"`
}

var appendixRe = regexp.MustCompile(`\.(AQQCAQMC|AQQDAQMC|AQQAAQMC)$`)

func TestPeerParams(t *testing.T) {
	t.Parallel()
	f, err := os.Open(filepath.Join(sharedDir(t), "testdata", "peer-params.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	n := 0
	for sc.Scan() {
		var row peerRow
		if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
			t.Fatalf("peer-params.jsonl line %d: %v", n+1, err)
		}
		n++
		t.Run(row.ID, func(t *testing.T) {
			if why, ok := peerDifferences[row.ID]; ok {
				t.Skip("differs by design: " + why)
			}
			in := row.Input
			var configured []string
			if len(in.Ctor) > 0 && in.Ctor[0] == '[' {
				if err := json.Unmarshal(in.Ctor, &configured); err != nil {
					t.Fatal(err)
				}
			}
			host := ""
			if in.Host != nil {
				host = *in.Host
			}
			ref := ""
			if in.Referer != nil {
				ref = *in.Referer
			}
			clickID := ""
			if c, ok := in.Queries["fbclid"]; ok && UsableClickID(c) {
				clickID = c
			} else {
				clickID = ClickID("", ref)
			}
			at := time.UnixMilli(row.Clock.NowMS)
			d := CookieDomain(host, configured)
			st := Resolve(at, d.Index, in.Cookies["_fbp"], in.Cookies["_fbc"], clickID)

			// Compare with PB's values minus its appendix; a minted fbp has
			// its own random part.
			wantFbp := deref(row.Output.Fbp)
			if st.FbpNew {
				wantFbp = appendixRe.ReplaceAllString(wantFbp, "")
				m := fbpRe.FindStringSubmatch(wantFbp)
				if m == nil {
					t.Fatalf("PB fbp %q is not a minted 4-segment value", wantFbp)
				}
				if p := strings.TrimSuffix(wantFbp, m[3]); !strings.HasPrefix(st.Fbp, p) {
					t.Errorf("fbp = %q, want prefix %q", st.Fbp, p)
				}
			} else if st.Fbp != wantFbp {
				t.Errorf("fbp = %q, want %q", st.Fbp, wantFbp)
			}
			wantFbc := deref(row.Output.Fbc)
			if st.FbcNew {
				wantFbc = appendixRe.ReplaceAllString(wantFbc, "")
			}
			if st.Fbc != wantFbc {
				t.Errorf("fbc = %q, want %q", st.Fbc, wantFbc)
			}
			// Cookie domain: PB sets cookies it mints on its computed domain.
			for _, c := range row.Output.Cookies {
				want := strings.ToLower(strings.Trim(deref(c.Domain), "[]"))
				if d.Name != want {
					t.Errorf("cookie %s domain = %q, want %q", c.Name, d.Name, want)
				}
			}
		})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if n != 60 {
		t.Errorf("read %d peer-params rows, want 60", n)
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// sharedDir is ../shared beside the repository.
func sharedDir(t *testing.T) string { return sharedtest.Dir(t) }

func FuzzParse(f *testing.F) {
	for _, s := range []string{"fb.1.1596403881668.1116446470", "fb.1.123.abc.BA", "fb.1.1.x.AQQCAQMC", "fb..1.x", "a.b.c.d.e"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, ok := Parse(s)
		if !ok {
			return
		}
		// A valid value rebuilds byte for byte from its parts unless the
		// numbers carry leading zeros.
		rebuilt := "fb." + strconv.Itoa(v.SubdomainIndex) + "." + strconv.FormatInt(v.CreationTime, 10) + "." + v.Payload
		if v.Appendix != "" {
			rebuilt += "." + v.Appendix
		}
		if rebuilt != s && !strings.Contains(s, ".0") {
			t.Errorf("Parse(%q) rebuilt as %q", s, rebuilt)
		}
		if strings.Count(s, ".") < 3 || strings.Count(s, ".") > 4 {
			t.Errorf("Parse(%q) accepted %d dots", s, strings.Count(s, "."))
		}
	})
}

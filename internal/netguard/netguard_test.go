package netguard

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// classes are one address of each kind, with whether the default policy
// and the private network opt-in accept it.
var classes = []struct {
	addr            string
	public, private bool
}{
	{"93.184.216.34", true, true},
	{"2606:2800:220:1:248:1893:25c8:1946", true, true},
	{"127.0.0.1", false, true},
	{"127.8.9.10", false, true},
	{"::1", false, true},
	{"10.1.2.3", false, true},
	{"172.16.0.1", false, true},
	{"172.31.255.254", false, true},
	{"192.168.1.1", false, true},
	{"100.64.0.1", false, true},      // CGNAT
	{"100.127.255.254", false, true}, // CGNAT
	{"fd12:3456::1", false, true},    // ULA
	{"::ffff:10.0.0.1", false, true}, // IPv4-mapped private
	{"64:ff9b::a00:1", false, true},  // NAT64 of 10.0.0.1
	{"0.0.0.1", false, true},
	{"169.254.169.254", false, false}, // AWS, GCP, Azure metadata
	{"169.254.170.2", false, false},   // ECS task metadata
	{"fd00:ec2::254", false, false},   // AWS metadata over IPv6
	{"100.100.100.200", false, false}, // Alibaba metadata
	{"168.63.129.16", false, false},   // Azure wire server
	{"fe80::1", false, false},
	{"0.0.0.0", false, false},
	{"::", false, false},
	{"224.0.0.1", false, false},
	{"255.255.255.255", false, false},
}

func TestCheckAddr(t *testing.T) {
	for _, c := range classes {
		a := netip.MustParseAddr(c.addr)
		for _, tc := range []struct {
			p    Policy
			want bool
		}{{Policy{}, c.public}, {Policy{AllowPrivate: true}, c.private}} {
			err := CheckAddr(a, tc.p)
			if (err == nil) != tc.want || (err != nil && !errors.Is(err, ErrRefused)) {
				t.Errorf("CheckAddr(%s, %+v) = %v, want allowed %v", c.addr, tc.p, err, tc.want)
			}
		}
	}
}

func TestCheckURL(t *testing.T) {
	for _, tc := range []struct {
		url  string
		p    Policy
		want string // "" accepted, else part of the error
	}{
		{"https://hooks.example.com/lead?t=1", Policy{}, ""},
		{"http://hooks.example.com/lead", Policy{}, "https"},
		{"http://hooks.example.com/lead", Policy{AllowHTTP: true}, ""},
		{"https://169.254.169.254/latest/meta-data/", Policy{AllowPrivate: true}, "link-local"},
		{"http://169.254.169.254/", Policy{AllowHTTP: true, AllowPrivate: true}, "link-local"},
		{"https://[fd00:ec2::254]/", Policy{AllowPrivate: true}, "metadata"},
		{"https://127.0.0.1:8080/x", Policy{}, "private"},
		{"https://127.0.0.1:8080/x", Policy{AllowPrivate: true}, ""},
		{"https://[::1]/x", Policy{}, "private"},
		{"https://10.0.0.5/x", Policy{}, "private"},
		{"https://100.64.1.1/x", Policy{}, "private"},
		{"https://localhost/x", Policy{}, "private"},
		{"https://api.localhost./x", Policy{}, "private"},
		{"https://user:pw@hooks.example.com/", Policy{}, "user name"},
		{"ftp://hooks.example.com/", Policy{}, "https URL"},
		{"hooks.example.com/lead", Policy{}, "https URL"},
		// A name is not resolved when saved: the dialer checks it.
		{"https://rebind.example/x", Policy{}, ""},
	} {
		err := CheckURL(tc.url, tc.p)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("CheckURL(%q, %+v) = %v, want accepted", tc.url, tc.p, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("CheckURL(%q, %+v) = %v, want an error about %q", tc.url, tc.p, err, tc.want)
		}
	}
}

// client posts through the guarded dialer; resolve stands in for DNS,
// mapping a host name to the address the dialer is handed, as a
// rebinding name would resolve.
func client(p Policy, resolve map[string]string) *http.Client {
	d := Dialer(p, 5*time.Second)
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, port, _ := net.SplitHostPort(addr)
			if ip, ok := resolve[host]; ok {
				addr = net.JoinHostPort(ip, port)
			}
			return d.DialContext(ctx, network, addr)
		},
	}}
}

// TestDialerRefusesAfterResolution: a name that passed the URL check but
// resolves to loopback is refused when connecting, unless the site opted
// in to private networks.
func TestDialerRefusesAfterResolution(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
	target := "http://rebind.example:" + port + "/hook"
	resolve := map[string]string{"rebind.example": "127.0.0.1"}
	p := Policy{AllowHTTP: true}
	if err := CheckURL(target, p); err != nil {
		t.Fatalf("CheckURL(%q) = %v; the name must pass when saved for this test to mean anything", target, err)
	}
	for _, u := range []string{target, srv.URL} {
		_, err := client(p, resolve).Post(u, "application/json", strings.NewReader("{}"))
		if err == nil || !errors.Is(err, ErrRefused) {
			t.Errorf("POST %s = %v, want refused by the dialer", u, err)
		}
	}
	resp, err := client(Policy{AllowHTTP: true, AllowPrivate: true}, resolve).Post(target, "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatalf("POST with the private network opt-in = %v, want delivered", err)
	}
	resp.Body.Close()
}

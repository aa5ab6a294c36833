package collect

import (
	"net/url"
	"strings"
)

// simpleHTTPURL recognises the URLs browsers send in Origin, Referer and
// the tag's url and ref: "http://" or "https://" (lower case), a host of
// letters, digits, dots and hyphens with an optional port of digits, then
// nothing or a path, query or fragment of printable ASCII without '%'.
// For such a string url.Parse cannot fail, its Scheme is scheme and its
// Host is hostport; ok is false for everything else, which the callers
// give to url.Parse (TestSimpleHTTPURL and FuzzSimpleHTTPURL check it).
func simpleHTTPURL(s string) (scheme, hostport string, ok bool) {
	switch {
	case strings.HasPrefix(s, "https://"):
		scheme = "https"
	case strings.HasPrefix(s, "http://"):
		scheme = "http"
	default:
		return "", "", false
	}
	start := len(scheme) + 3
	i, colon := start, -1
	for ; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' {
			if colon >= 0 && (c < '0' || c > '9') {
				return "", "", false
			}
			continue
		}
		if c == ':' && colon < 0 {
			colon = i
			continue
		}
		if c == '/' || c == '?' || c == '#' {
			break
		}
		return "", "", false
	}
	if i == start || colon == start {
		return "", "", false
	}
	for j := i; j < len(s); j++ {
		if c := s[j]; c <= ' ' || c >= 0x7f || c == '%' {
			return "", "", false
		}
	}
	return scheme, s[start:i], true
}

// absoluteHTTP reports whether s is an absolute http(s) URL with a host.
func absoluteHTTP(s string) bool {
	if _, _, ok := simpleHTTPURL(s); ok {
		return true
	}
	return slowAbsoluteHTTP(s)
}

func slowAbsoluteHTTP(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// originOf returns the origin of an http(s) URL (scheme://host[:port]) and
// its host name without port, lower case and without a trailing dot; ""
// for anything else.
func originOf(raw string) (origin, host string) {
	scheme, hostport, ok := simpleHTTPURL(raw)
	if !ok {
		return slowOriginOf(raw)
	}
	host = hostport
	if i := strings.LastIndexByte(host, ':'); i >= 0 {
		host = host[:i]
	}
	return raw[:len(scheme)+3+len(hostport)], strings.TrimSuffix(lowerASCIIString(host), ".")
}

func slowOriginOf(raw string) (origin, host string) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", ""
	}
	return u.Scheme + "://" + u.Host, strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
}

// lowerASCIIString is strings.ToLower for ASCII s, without a copy when s
// has no upper-case letter.
func lowerASCIIString(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			return strings.ToLower(s)
		}
	}
	return s
}

// isDomainOrSub reports whether host is the domain d or one of its
// subdomains: host == d || strings.HasSuffix(host, "."+d), without
// building "."+d.
func isDomainOrSub(host, d string) bool {
	if len(host) == len(d) {
		return host == d
	}
	return len(host) > len(d) && host[len(host)-len(d)-1] == '.' && host[len(host)-len(d):] == d
}

// queryParam is r.URL.Query().Get(key) (url.ParseQuery's rules: '&'
// separates pairs, a pair with ';' is skipped, keys and values are
// unescaped and the first value wins) without building the map; a query
// that needs unescaping before the key is found, or is long, is parsed by
// url.ParseQuery.
func queryParam(rawQuery, key string) string {
	if !fastQuery || strings.Count(rawQuery, "&") >= maxFastQueryPairs {
		return slowQueryParam(rawQuery, key)
	}
	for q := rawQuery; q != ""; {
		var pair string
		pair, q, _ = strings.Cut(q, "&")
		if pair == "" || strings.Contains(pair, ";") {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		if strings.ContainsAny(k, "%+") {
			return slowQueryParam(rawQuery, key)
		}
		if k == key {
			if strings.ContainsAny(v, "%+") {
				return slowQueryParam(rawQuery, key)
			}
			return v
		}
	}
	return ""
}

func slowQueryParam(rawQuery, key string) string {
	q, _ := url.ParseQuery(rawQuery)
	return q.Get(key)
}

// maxFastQueryPairs: url.ParseQuery refuses a query of more pairs than
// GODEBUG urlmaxqueryparams allows (default 10000) and gives no values;
// queryParam does not count, so it takes only queries that short, and
// only if a query of that many pairs is allowed (fastQuery).
const maxFastQueryPairs = 16

var fastQuery = func() bool {
	_, err := url.ParseQuery(strings.Repeat("a=1&", maxFastQueryPairs) + "a=1")
	return err == nil
}()

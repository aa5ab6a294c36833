package event

import (
	"net/url"
	"strings"

	"github.com/capirelay/capirelay/internal/normalize"
)

// ScrubURL returns a page URL without the personal data and secrets it may
// carry, for event_source_url, referrer_url and a partial lead's page. A
// form sent with GET puts its fields in the query (/thanks?email=…&
// password=…), a link in a mailing names the address, a sign-in flow leaves
// its token in the fragment. Meta gets customer data only hashed, in
// user_data, and never a password or a card number, so:
//
//   - a query or fragment parameter goes when its name says what it holds
//     (email, phone, first_name, password, token, card…, see personalName)
//     or its value is an email address, a card number (13–19 digits that
//     pass Luhn's check and start as cards do) or an international phone
//     number (+ and 8–15 digits);
//   - a path segment's parameter (;jsessionid=…) goes by the same rules;
//   - a path segment that is an email address becomes "redacted";
//   - user:password@ before the host goes.
//
// fbclid is always kept: it is the click id, not personal data. Everything
// else is kept byte for byte, in its order. A URL with nothing to remove is
// returned as it is, without allocating.
func ScrubURL(u string) string {
	if !mayCarry(u) {
		return u
	}
	rest, frag, hasFrag := strings.Cut(u, "#")
	base, query, _ := strings.Cut(rest, "?")
	b, q, f := scrubBase(base), scrubPairs(query), frag
	if hasFrag {
		f = scrubFragment(frag)
	}
	if b == base && q == query && f == frag {
		return u
	}
	return joinURL(b, q, f)
}

// mayCarry reports whether u has a query, a fragment, an '@', an escape
// or a path parameter: a URL without any has nothing to remove.
func mayCarry(u string) bool {
	for i := 0; i < len(u); i++ {
		switch u[i] {
		case '?', '#', '@', '%', ';':
			return true
		}
	}
	return false
}

// unescapeQuery is a query's name or value unescaped, or as it is when it
// has no escape (no allocation) or a broken one.
func unescapeQuery(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] == '%' || s[i] == '+' {
			if v, err := url.QueryUnescape(s); err == nil {
				return v
			}
			return s
		}
	}
	return s
}

// joinURL puts a URL together again, leaving out an empty query or
// fragment with its '?' or '#'.
func joinURL(base, query, frag string) string {
	if query == "" && frag == "" {
		return base
	}
	var b strings.Builder
	b.Grow(len(base) + len(query) + len(frag) + 2)
	b.WriteString(base)
	if query != "" {
		b.WriteByte('?')
		b.WriteString(query)
	}
	if frag != "" {
		b.WriteByte('#')
		b.WriteString(frag)
	}
	return b.String()
}

// scrubBase drops user information before the host and a path segment's
// personal parameters (;jsessionid=…), and renames a path segment that is
// an email address.
func scrubBase(u string) string {
	if strings.IndexByte(u, '@') < 0 && strings.IndexByte(u, '%') < 0 && strings.IndexByte(u, ';') < 0 {
		return u
	}
	// Without a scheme (a referrer_url is not checked) all of it is path.
	scheme, host, path := "", "", u
	if i := strings.Index(u, "://"); i >= 0 {
		scheme, host, path = u[:i+3], u[i+3:], ""
		if j := strings.IndexByte(host, '/'); j >= 0 {
			host, path = host[:j], host[j:]
		}
	}
	changed := false
	if i := strings.LastIndexByte(host, '@'); i >= 0 {
		host, changed = host[i+1:], true
	}
	if strings.IndexByte(path, ';') >= 0 {
		if p := scrubPathParams(path); p != path {
			path, changed = p, true
		}
	}
	if strings.IndexByte(path, '@') >= 0 || strings.Contains(path, "%40") {
		segs := strings.Split(path, "/")
		redacted := false
		for i, s := range segs {
			if v, err := url.PathUnescape(s); err == nil && hasEmail(v) {
				segs[i], redacted = "redacted", true
			}
		}
		if redacted {
			path, changed = strings.Join(segs, "/"), true
		}
	}
	if !changed {
		return u
	}
	return scheme + host + path
}

// scrubPathParams drops the personal name=value parameters of a path's
// segments (/cart;jsessionid=…/item), by the rules of a query's pairs.
func scrubPathParams(path string) string {
	segs := strings.Split(path, "/")
	changed := false
	for i, seg := range segs {
		head, params, ok := strings.Cut(seg, ";")
		if !ok {
			continue
		}
		kept := head
		for _, p := range strings.Split(params, ";") {
			if personalPair(p) {
				changed = true
				continue
			}
			kept += ";" + p
		}
		segs[i] = kept
	}
	if !changed {
		return path
	}
	return strings.Join(segs, "/")
}

// scrubFragment treats a fragment's parameters as a query's: the part
// before its first '?' when that has any (#access_token=…&state=…), and the
// part after it (#/thanks?email=…). A fragment whose part before the '?'
// holds an email address, as a route or a word, goes whole.
func scrubFragment(frag string) string {
	head, params, hasParams := frag, "", false
	if i := strings.IndexByte(frag, '?'); i >= 0 {
		head, params, hasParams = frag[:i], frag[i+1:], true
	}
	h := head
	if strings.IndexByte(head, '=') >= 0 {
		h = scrubPairs(head)
	} else if v, err := url.PathUnescape(head); err == nil && hasEmail(v) || hasEmail(head) {
		return ""
	}
	if !hasParams {
		return h
	}
	p := scrubPairs(params)
	switch {
	case h == head && p == params:
		return frag
	case p == "":
		return h
	default:
		return h + "?" + p
	}
}

// scrubPairs removes the personal name=value pairs of a query, keeping the
// others as they are.
func scrubPairs(query string) string {
	drop := 0
	for rest := query; rest != ""; {
		var pair string
		pair, rest, _ = strings.Cut(rest, "&")
		if personalPair(pair) {
			drop++
		}
	}
	if drop == 0 {
		return query
	}
	var b strings.Builder
	b.Grow(len(query))
	for rest := query; rest != ""; {
		var pair string
		pair, rest, _ = strings.Cut(rest, "&")
		if pair == "" || personalPair(pair) {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		b.WriteString(pair)
	}
	return b.String()
}

// personalPair reports whether a query's name=value pair holds personal
// data or a secret, by its name or by its value. An address is looked for
// as written too: unescaped, a '+' before the '@' is a space, and a
// fragment left without a pair (#+@b.io) is read as written, so a pair
// kept here would go in a second pass.
func personalPair(pair string) bool {
	rawName, rawValue, _ := strings.Cut(pair, "=")
	name := unescapeQuery(rawName)
	if strings.EqualFold(name, "fbclid") {
		return false
	}
	if personalName(name) || hasEmail(name) || hasEmail(rawName) {
		return true
	}
	value := unescapeQuery(rawValue)
	return hasEmail(value) || hasEmail(rawValue) || isCardNumber(value) || isIntlPhone(value)
}

// personalWords are found anywhere in a parameter's name, folded to
// lower-case letters and digits (user[e-mail] becomes "useremail").
var personalWords = []string{
	"mail", "phone", "mobile", "passw", "passcode", "birth",
	"postal", "postcode", "zipcode", "address", "street",
	"surname", "firstname", "lastname", "fullname", "givenname", "familyname", "username",
	"token", "secret", "session", "sessid", "apikey", "auth", "signature", "credential",
	"iban", "ccnum", "cardnum", "creditcard", "cvv", "cvc", "securitycode", "expiry",
	// the tag's other languages
	"courriel", "correo", "telefon", "vorname", "nachname", "prenom", "apellido", "geburt",
}

// personalNames are whole names: short, they occur inside harmless ones
// (tel in hotel, pin in pinned).
var personalNames = []string{
	"name", "fname", "lname", "fn", "ln", "em", "ph", "tel", "db", "dob", "zip", "zp", "plz",
	"first", "last", "nom", "nome", "nombre", "cell", "telno", "handy", "bday", "city", "ct", "gender", "ge",
	"user", "login", "pw", "pwd", "pass", "pin", "otp", "ssn", "sid", "cc", "card", "csc",
	"code", "key", "jwt",
}

// personalName reports whether a parameter's name says it holds personal
// data or a secret: it holds one of personalWords or is one of
// personalNames. Names are compared folded, without allocating.
func personalName(name string) bool {
	var buf [64]byte
	n := 0
	for i := 0; i < len(name) && n < len(buf); i++ {
		c := name[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		default:
			continue
		}
		buf[n] = c
		n++
	}
	folded := buf[:n]
	for _, w := range personalNames {
		if len(w) == n && string(folded) == w {
			return true
		}
	}
	for i, c := range folded {
		for _, w := range wordsFrom[c] {
			if i+len(w) <= n && string(folded[i:i+len(w)]) == w {
				return true
			}
		}
	}
	return false
}

// wordsFrom are personalWords by their first byte, so that personalName
// compares at each position only the words that may start there: it runs
// for every parameter of a URL and every member of custom_data.
var wordsFrom = func() (t [256][]string) {
	for _, w := range personalWords {
		t[w[0]] = append(t[w[0]], w)
	}
	return t
}()

// hasEmail reports whether s holds an address, x@domain.tld, whose local
// part ends in a letter, digit or one of ._%+-' (so not in a URL's & = ?
// # /, which would make the answer depend on how the URL is cut).
func hasEmail(s string) bool {
	for i := strings.IndexByte(s, '@'); i >= 0; {
		if i > 0 && localChar(s[i-1]) && emailDomain(s[i+1:]) {
			return true
		}
		j := strings.IndexByte(s[i+1:], '@')
		if j < 0 {
			break
		}
		i += 1 + j
	}
	return false
}

func localChar(c byte) bool {
	switch {
	case 'a' <= c|0x20 && c|0x20 <= 'z', '0' <= c && c <= '9':
		return true
	}
	return c == '.' || c == '_' || c == '%' || c == '+' || c == '-' || c == '\''
}

// emailDomain reports whether s starts with a domain of two or more labels
// whose last is at least two letters.
func emailDomain(s string) bool {
	dots, label, letters := 0, 0, true
	for i := 0; i < len(s); i++ {
		c := s[i] | 0x20
		switch {
		case 'a' <= c && c <= 'z':
			label++
		case '0' <= s[i] && s[i] <= '9' || s[i] == '-':
			label++
			letters = false
		case s[i] == '.':
			if label == 0 {
				return false
			}
			dots, label, letters = dots+1, 0, true
		default:
			return dots > 0 && label >= 2 && letters
		}
	}
	return dots > 0 && label >= 2 && letters
}

// isCardNumber reports whether s could be a card number
// (normalize.LooksLikeCard: 13–19 digits, spaces and dashes between, that
// pass Luhn's check) starting with 2–6, as card numbers do: a millisecond
// timestamp starts with 1.
func isCardNumber(s string) bool {
	s = strings.TrimLeft(s, " -")
	return s != "" && '2' <= s[0] && s[0] <= '6' && normalize.LooksLikeCard(s)
}

// isIntlPhone reports whether s is a phone number in international form:
// '+', then 8–15 digits with spaces, dashes, dots or brackets between.
func isIntlPhone(s string) bool {
	s = strings.TrimSpace(s)
	if len(s) < 9 || s[0] != '+' {
		return false
	}
	n := 0
	for i := 1; i < len(s); i++ {
		switch c := s[i]; {
		case '0' <= c && c <= '9':
			n++
		case c == ' ' || c == '-' || c == '.' || c == '(' || c == ')':
		default:
			return false
		}
	}
	return n >= 8 && n <= 15
}

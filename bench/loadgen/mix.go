package loadgen

import (
	"math/bits"
	"strconv"
	"sync/atomic"
	"time"
)

// Mixes: what the events of a run look like.
const (
	// MixRealistic (the default): every event is a person of its own
	// (email, phone, external_id, names, address, client address, user
	// agent, fbp/fbc), except a returning share whose keys repeat a
	// customer seen earlier. Nothing repeats that a cache could replay.
	MixRealistic = "realistic"
	// MixBestCase is the old benchmark body: the same 100 customers in
	// every /v1/events request and one visitor per /e client, only event
	// ids change. Every cache and filter hits; real traffic never does.
	MixBestCase = "best-case"
)

// DefaultReturning is the share of realistic events whose customer came
// before.
const DefaultReturning = 0.10

// Label is how reports name a mix: the best case says so.
func Label(mix string) string {
	if mix == MixBestCase {
		return "best case (repeated customers)"
	}
	return "realistic (distinct customers)"
}

// population hands out customer numbers: new ones in order, returning
// ones drawn from those handed out before, from known on (by any worker,
// in this run or, with Config.Known, in earlier runs against the
// same relay).
type population struct {
	next      atomic.Uint64
	known     uint64
	returning float64
}

// rng is splitmix64: a few nanoseconds per number, plenty for choosing
// shapes of synthetic data. Not for anything secret.
type rng struct{ s uint64 }

func (r *rng) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	return mix64(r.s)
}

// below returns a number in [0, n), n > 0.
func (r *rng) below(n uint64) uint64 {
	hi, _ := bits.Mul64(r.next(), n)
	return hi
}

// chance reports true with probability p.
func (r *rng) chance(p float64) bool { return float64(r.next()>>11)/(1<<53) < p }

// mix64 is splitmix64's finalizer, a bijection of 64-bit numbers.
func mix64(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// customer picks the person of the next event and reports whether they
// came before.
func (p *population) customer(r *rng) (uint64, bool) {
	if n := p.next.Load(); n > p.known && r.chance(p.returning) {
		return p.known + r.below(n-p.known), true
	}
	return p.next.Add(1) - 1, false
}

// person is everything about customer c, derived from c alone, so a
// returning customer carries exactly the keys they had before.
type person struct {
	c    uint64
	h    uint64 // mix64(c): picks shapes (domain, city, device …)
	h2   uint64
	name uint64 // perm36(c): fn and ln, unique for c < 2^36
}

func newPerson(c uint64) person {
	h := mix64(c ^ 0x5bd1e9955bd1e995)
	return person{c: c, h: h, h2: mix64(h), name: perm36(c)}
}

// perm36 is a bijection of [0, 2^36): multiply by an odd constant and
// xor-shift, each invertible modulo 2^36.
func perm36(c uint64) uint64 {
	const mask = 1<<36 - 1
	u := (c * 0x9E3779B1) & mask
	u ^= u >> 17
	u = (u * 0x85EBCA77) & mask
	return u ^ u>>15
}

// syllables are 64 two-letter syllables; a name is three of them, so
// 18 bits of perm36 spell one name and distinct bits distinct names.
var syllables = func() []string {
	var s []string
	for _, c := range "bdfghjklmnprstvz" {
		for _, v := range "aeio" {
			s = append(s, string(c)+string(v))
		}
	}
	return s
}()

// appendName writes a capitalised three-syllable name from 18 bits; when
// accent is set its first vowel is accented (a share of real names is not
// ASCII, and normalization must fold them).
func appendName(b []byte, bits18 uint64, accent bool) []byte {
	for i := range 3 {
		s := syllables[(bits18>>(6*i))&63]
		c := s[0]
		if i == 0 {
			c -= 'a' - 'A'
		}
		b = append(b, c)
		if i == 0 && accent {
			b = append(b, accented[s[1]]...)
		} else {
			b = append(b, s[1])
		}
	}
	return b
}

var accented = map[byte]string{'a': "á", 'e': "é", 'i': "í", 'o': "ö"}

// place is a city with its state or province, postal code and country.
type place struct{ city, state, zip, country string }

var places = []place{
	{"New York", "NY", "10001", "US"}, {"Brooklyn", "New York", "11201", "us"}, {"Los Angeles", "CA", "90012", "US"},
	{"San Francisco", "California", "94103-1234", "US"}, {"Menlo Park", "CA", "94025", "US"}, {"Chicago", "IL", "60601", "US"},
	{"Houston", "TX", "77002", "US"}, {"Austin", "Texas", "78701", "US"}, {"Phoenix", "AZ", "85004", "US"},
	{"Philadelphia", "PA", "19103", "US"}, {"San Antonio", "TX", "78205", "US"}, {"San Diego", "CA", "92101", "US"},
	{"Dallas", "TX", "75201", "US"}, {"Jacksonville", "FL", "32202", "US"}, {"Miami", "Florida", "33130", "US"},
	{"Columbus", "OH", "43215", "US"}, {"Charlotte", "NC", "28202", "US"}, {"Indianapolis", "IN", "46204", "US"},
	{"Seattle", "WA", "98101", "US"}, {"Denver", "CO", "80202", "US"}, {"Boston", "MA", "02108", "US"},
	{"Nashville", "TN", "37203", "US"}, {"Portland", "OR", "97205", "US"}, {"Las Vegas", "NV", "89101", "US"},
	{"Detroit", "MI", "48226", "US"}, {"Atlanta", "GA", "30303", "US"}, {"Minneapolis", "MN", "55401", "US"},
	{"New Orleans", "LA", "70112", "US"}, {"Salt Lake City", "UT", "84101", "US"}, {"Anchorage", "AK", "99501", "US"},
	{"Toronto", "ON", "M5H 2N2", "CA"}, {"Montréal", "QC", "H2Y 1C6", "CA"}, {"Vancouver", "BC", "V6B 1A1", "CA"},
	{"Calgary", "Alberta", "T2P 1J9", "CA"}, {"Ottawa", "ON", "K1P 1J1", "CA"}, {"Halifax", "NS", "B3J 1A1", "ca"},
}

var mailDomains = []string{
	"gmail.com", "gmail.com", "gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "icloud.com", "aol.com",
	"proton.me", "comcast.net", "me.com", "live.com", "msn.com", "att.net", "example.org", "shopmail.co",
}

// userAgents are current desktop and mobile browsers, with their version
// numbers varied: hundreds of distinct strings, none of a bot, a headless
// browser or an HTTP library (the relay drops those; a test checks).
var userAgents = func() []string {
	var uas []string
	for v := 118; v <= 131; v++ {
		cv := strconv.Itoa(v)
		build := strconv.Itoa(5990 + 7*v)
		uas = append(uas,
			"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/"+cv+".0.0.0 Safari/537.36",
			"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/"+cv+".0.0.0 Safari/537.36",
			"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/"+cv+".0.0.0 Safari/537.36",
			"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/"+cv+".0.0.0 Safari/537.36 Edg/"+cv+".0."+build+".0",
			"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/"+cv+".0."+build+".102 Mobile Safari/537.36",
			"Mozilla/5.0 (Linux; Android 13; SM-S911B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/"+cv+".0."+build+".90 Mobile Safari/537.36",
			"Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-A546B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/25.0 Chrome/"+cv+".0.0.0 Mobile Safari/537.36",
			"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:"+cv+".0) Gecko/20100101 Firefox/"+cv+".0",
			"Mozilla/5.0 (Macintosh; Intel Mac OS X 14.5; rv:"+cv+".0) Gecko/20100101 Firefox/"+cv+".0",
		)
	}
	for _, ios := range []string{"16_6", "17_0", "17_4", "17_5_1", "17_6", "18_0", "18_1", "18_2"} {
		ver := ios[:2] + "." + ios[3:4]
		uas = append(uas,
			"Mozilla/5.0 (iPhone; CPU iPhone OS "+ios+" like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/"+ver+" Mobile/15E148 Safari/604.1",
			"Mozilla/5.0 (iPad; CPU OS "+ios+" like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/"+ver+" Mobile/15E148 Safari/604.1",
			"Mozilla/5.0 (iPhone; CPU iPhone OS "+ios+" like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/450.0.0.38.108;FBBV/600000000;FBDV/iPhone15,2;FBMD/iPhone;FBSN/iOS;FBSV/"+ver+";FBSS/3;FBCR/;FBID/phone;FBLC/en_US;FBOP/5]",
			"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/"+ver+" Safari/605.1.15",
		)
	}
	return uas
}()

// publicOctets are first octets of public IPv4 space (no private,
// loopback, link-local, CGNAT, multicast or documentation /8s).
var publicOctets = func() []byte {
	var o []byte
	for i := 1; i < 224; i++ {
		switch i {
		case 10, 100, 127, 169, 172, 192, 198, 203:
			continue
		}
		o = append(o, byte(i))
	}
	return o
}()

// appendIP writes the person's address: about one in five IPv6.
func (p *person) appendIP(b []byte) []byte {
	h := p.h2
	if h%5 == 0 {
		b = append(b, "2600:"...)
		b = strconv.AppendUint(b, 0x1000+(h>>8)&0xeff, 16)
		b = append(b, ':')
		b = strconv.AppendUint(b, (h>>20)&0xffff, 16)
		b = append(b, ':')
		b = strconv.AppendUint(b, (h>>36)&0xffff, 16)
		b = append(b, "::"...)
		return strconv.AppendUint(b, 1+(h>>52)&0xfff, 16)
	}
	b = strconv.AppendUint(b, uint64(publicOctets[(h>>8)%uint64(len(publicOctets))]), 10)
	for i := range 3 {
		b = append(b, '.')
		b = strconv.AppendUint(b, (h>>(20+8*i))&0xff, 10)
	}
	return b
}

func (p *person) userAgent() string { return userAgents[(p.h>>12)%uint64(len(userAgents))] }

func (p *person) place() *place { return &places[(p.h>>24)%uint64(len(places))] }

// appendEmail writes a unique address in one of the shapes people type
// (case and surrounding spaces are normalization's job).
func (p *person) appendEmail(b []byte) []byte {
	if p.h%23 == 0 {
		b = append(b, ' ')
	}
	start := len(b)
	b = appendName(b, p.name&(1<<18-1), false)
	switch p.h % 3 {
	case 0:
		b = append(b, '.')
	case 1:
		b = append(b, '_')
	}
	b = appendName(b, p.name>>18, false)
	if p.h%4 != 0 { // most addresses are lower case
		for i := start; i < len(b); i++ {
			if c := b[i]; c >= 'A' && c <= 'Z' {
				b[i] = c + 'a' - 'A'
			}
		}
	}
	b = strconv.AppendUint(b, p.c, 10)
	b = append(b, '@')
	b = append(b, mailDomains[(p.h>>32)%uint64(len(mailDomains))]...)
	if p.h%23 == 0 {
		b = append(b, ' ')
	}
	return b
}

// appendPhone writes a North American number unique to c (for c < 8e9):
// c times a constant coprime to 8e9 is a bijection of [0, 8e9), split
// into an area code from 200 and seven digits, in one of four formats.
func (p *person) appendPhone(b []byte) []byte {
	n := (p.c % 8e9) * 2654435761 % 8e9
	area, local := 200+n/1e7, n%1e7
	var d [7]byte
	for i := 6; i >= 0; i-- {
		d[i] = byte('0' + local%10)
		local /= 10
	}
	switch p.h >> 40 % 4 {
	case 0:
		b = append(b, "+1 ("...)
		b = strconv.AppendUint(b, area, 10)
		b = append(b, ") "...)
		b = append(append(append(b, d[:3]...), '-'), d[3:]...)
	case 1:
		b = append(b, '(')
		b = strconv.AppendUint(b, area, 10)
		b = append(b, ") "...)
		b = append(append(append(b, d[:3]...), '-'), d[3:]...)
	case 2:
		b = strconv.AppendUint(b, area, 10)
		b = append(append(append(append(b, '.'), d[:3]...), '.'), d[3:]...)
	default:
		b = append(b, "+1"...)
		b = strconv.AppendUint(b, area, 10)
		b = append(b, d[:]...)
	}
	return b
}

func (p *person) appendExternalID(b []byte) []byte {
	b = append(b, "cust-"...)
	return strconv.AppendUint(b, p.c, 10)
}

// appendBirth writes a date of birth between 1950 and 2005.
func (p *person) appendBirth(b []byte) []byte {
	y, m, d := 1950+(p.h2>>8)%56, 1+(p.h2>>16)%12, 1+(p.h2>>24)%28
	b = strconv.AppendUint(b, y, 10)
	b = append(b, '-')
	b = appendTwo(b, m)
	b = append(b, '-')
	return appendTwo(b, d)
}

func appendTwo(b []byte, n uint64) []byte {
	return append(b, byte('0'+n/10), byte('0'+n%10))
}

// clickMillis is when the person's fbp was set, and hasClick whether they
// came from an ad click (about a third), whose fbc is that old too:
// within the last three days, inside every click window.
func (p *person) clickMillis(now time.Time) int64 {
	return now.UnixMilli() - int64((p.h2>>32)%(3*24*3600*1000))
}

func (p *person) hasClick() bool { return p.h2%3 == 0 }

func (p *person) appendFbp(b []byte, now time.Time) []byte {
	b = append(b, "fb.1."...)
	b = strconv.AppendInt(b, p.clickMillis(now), 10)
	b = append(b, '.')
	return strconv.AppendUint(b, 1_000_000_000+p.h%9_000_000_000, 10)
}

const clickChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

func (p *person) appendFbc(b []byte, now time.Time) []byte {
	b = append(b, "fb.1."...)
	b = strconv.AppendInt(b, p.clickMillis(now), 10)
	b = append(b, ".IwAR"...)
	for i, h := 0, p.h^p.h2; i < 24; i++ {
		b = append(b, clickChars[h&63])
		h = h>>6 | h<<58
		if i == 9 {
			h = mix64(h)
		}
	}
	return b
}

// appendVisitorID writes the tag's visitor id for the person's browser:
// 32 hex characters.
func (p *person) appendVisitorID(b []byte) []byte {
	for _, h := range [2]uint64{p.h, p.h2} {
		for i := 60; i >= 0; i -= 4 {
			b = append(b, "0123456789abcdef"[(h>>i)&15])
		}
	}
	return b
}

// jsonField writes ,"key":"value" where value is appended by f; values
// here never need escaping.
func jsonField(b []byte, key string, f func([]byte) []byte) []byte {
	b = append(b, ",\""...)
	b = append(b, key...)
	b = append(b, "\":\""...)
	b = f(b)
	return append(b, '"')
}

func jsonString(b []byte, key, value string) []byte {
	return jsonField(b, key, func(b []byte) []byte { return append(b, value...) })
}

// serverEventNames weights what a shop backend sends.
var serverEventNames = []string{
	"Purchase", "Purchase", "Purchase", "Purchase", "Purchase", "Purchase", "Purchase",
	"Lead", "CompleteRegistration", "Subscribe", "InitiateCheckout", "AddPaymentInfo",
}

var currencies = []string{"USD", "USD", "USD", "usd", "CAD", "EUR"}

// appendServerEvent writes one /v1/events event of person p with event
// id "<idPrefix><j>", its choices drawn from r.
func appendServerEvent(b []byte, r *rng, p *person, now time.Time, idPrefix []byte, j int) []byte {
	name := serverEventNames[r.below(uint64(len(serverEventNames)))]
	orderID := r.next()
	source := "website"
	switch x := r.below(20); {
	case x == 0:
		source = "system_generated"
	case x <= 2:
		source = "physical_store"
	}
	web := source == "website"
	b = append(b, `{"event_name":"`...)
	b = append(b, name...)
	b = append(b, `","event_time":`...)
	b = strconv.AppendInt(b, now.Unix()-int64(r.below(600)), 10)
	b = append(b, `,"event_id":"`...)
	b = append(b, idPrefix...)
	b = strconv.AppendInt(b, int64(j), 10)
	b = append(b, `","action_source":"`...)
	b = append(b, source...)
	b = append(b, '"')
	if web {
		b = jsonField(b, "event_source_url", func(b []byte) []byte {
			b = append(b, "https://shop.example.com/checkout/"...)
			b = strconv.AppendUint(b, orderID%1e9, 36)
			b = append(b, "?step="...)
			return strconv.AppendUint(b, 1+orderID>>60%4, 10)
		})
	}
	b = append(b, `,"user_data":{"em":"`...)
	b = p.appendEmail(b)
	b = append(b, '"')
	b = jsonField(b, "ph", p.appendPhone)
	b = jsonField(b, "fn", func(b []byte) []byte { return appendName(b, p.name&(1<<18-1), p.h%16 == 0) })
	b = jsonField(b, "ln", func(b []byte) []byte { return appendName(b, p.name>>18, p.h%16 == 1) })
	pl := p.place()
	b = jsonString(b, "ct", pl.city)
	b = jsonString(b, "st", pl.state)
	b = jsonString(b, "zp", pl.zip)
	b = jsonString(b, "country", pl.country)
	if p.h%4 != 0 { // not every shop knows the birthday and gender
		b = jsonField(b, "db", p.appendBirth)
		b = jsonString(b, "ge", [2]string{"f", "m"}[p.h>>50&1])
	}
	b = jsonField(b, "external_id", p.appendExternalID)
	if web {
		b = jsonField(b, "client_ip_address", p.appendIP)
		b = jsonString(b, "client_user_agent", p.userAgent())
		b = jsonField(b, "fbp", func(b []byte) []byte { return p.appendFbp(b, now) })
		if p.hasClick() {
			b = jsonField(b, "fbc", func(b []byte) []byte { return p.appendFbc(b, now) })
		}
	}
	b = append(b, '}')
	if name == "Purchase" || name == "Subscribe" || name == "InitiateCheckout" {
		items := 1 + r.below(3)
		b = append(b, `,"custom_data":{"value":`...)
		cents := 499 + r.below(40000)
		b = strconv.AppendUint(b, cents/100, 10)
		b = append(b, '.')
		b = appendTwo(b, cents%100)
		b = append(b, `,"currency":"`...)
		b = append(b, currencies[r.below(uint64(len(currencies)))]...)
		b = append(b, `","content_type":"product","content_ids":[`...)
		for i := range items {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `"sku-`...)
			b = strconv.AppendUint(b, r.below(20000), 10)
			b = append(b, '"')
		}
		b = append(b, `],"num_items":`...)
		b = strconv.AppendUint(b, items, 10)
		b = append(b, `,"order_id":"`...)
		b = strconv.AppendUint(b, orderID, 36)
		b = append(b, `"}`...)
	}
	return append(b, '}')
}

// browserEventNames weights what the tag beacons.
var browserEventNames = []string{
	"PageView", "PageView", "PageView", "PageView", "PageView", "PageView",
	"ViewContent", "ViewContent", "AddToCart", "Search", "InitiateCheckout", "Lead",
}

var referrers = []string{"", "", "https://www.google.com/", "https://www.facebook.com/", "https://l.instagram.com/", "https://www.bing.com/", "https://shop.example.com/"}

var languages = []string{"en-US", "en-US", "en-US", "en-CA", "fr-CA", "es-US", "en-GB"}

// appendBrowserBody writes the tag's beacon for one event of person p,
// whose event id is id: a page view mostly; a Lead carries what the
// visitor typed into the form.
func appendBrowserBody(b []byte, r *rng, p *person, now time.Time, origin string, id []byte) []byte {
	name := browserEventNames[r.below(uint64(len(browserEventNames)))]
	b = append(b, `{"v":1,"vid":"`...)
	b = p.appendVisitorID(b)
	b = append(b, '"')
	b = jsonField(b, "fbp", func(b []byte) []byte { return p.appendFbp(b, now) })
	if p.hasClick() {
		b = jsonField(b, "fbc", func(b []byte) []byte { return p.appendFbc(b, now) })
	}
	b = append(b, `,"consent":"granted"`...)
	b = jsonString(b, "lang", languages[p.h>>44%uint64(len(languages))])
	b = append(b, `,"events":[{"type":"event","name":"`...)
	b = append(b, name...)
	b = append(b, `","id":"`...)
	b = append(b, id...)
	b = append(b, `","url":"`...)
	b = append(b, origin...)
	b = append(b, "/products/sku-"...)
	b = strconv.AppendUint(b, r.below(20000), 10)
	if r.chance(0.2) {
		b = append(b, "?utm_source=facebook&utm_campaign=c"...)
		b = strconv.AppendUint(b, r.below(50), 10)
	}
	b = append(b, '"')
	b = jsonString(b, "ref", referrers[r.below(uint64(len(referrers)))])
	if name == "Lead" {
		b = append(b, `,"user":{"em":"`...)
		b = p.appendEmail(b)
		b = append(b, '"')
		b = jsonField(b, "ph", p.appendPhone)
		b = jsonField(b, "fn", func(b []byte) []byte { return appendName(b, p.name&(1<<18-1), false) })
		b = append(b, '}')
	}
	return append(b, "}]}"...)
}

// UserAgents is how many distinct user agents the realistic mix uses.
func UserAgents() int { return len(userAgents) }

// RealisticServerBody is a /v1/events request of n events of the
// realistic mix, every one a new customer from number first on (no
// returning ones), with event ids marker-<j>. Benchmarks of the handler
// and of identity use it to measure the body the load sends.
func RealisticServerBody(marker string, first uint64, n int) []byte {
	r := &rng{s: mix64(first ^ hashString(marker))}
	now := time.Now()
	id := []byte(marker + "-")
	b := append(make([]byte, 0, n*1100), `{"data":[`...)
	for j := range n {
		if j > 0 {
			b = append(b, ',')
		}
		p := newPerson(first + uint64(j))
		b = appendServerEvent(b, r, &p, now, id, j)
	}
	return append(b, "]}"...)
}

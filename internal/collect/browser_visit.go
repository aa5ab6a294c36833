package collect

import (
	"net/http"
	"net/netip"
	"time"

	"github.com/capirelay/capirelay/internal/fbcookie"
	"github.com/capirelay/capirelay/internal/pipeline"
	"github.com/capirelay/capirelay/internal/store"
)

// visit is everything known about the request, shared by its events.
type visit struct {
	site     *store.Site
	now      time.Time
	ip       netip.Addr
	ua       string
	vid      string
	fbp, fbc string
	consent  string
	allowed  bool // cookies and captures allowed (spec §9)
	region   string
	pageURL  string
	// cookies: the relay runs under the page's site, so the cookies are
	// set on domain (Secure when secure); clear: the visitor denied
	// consent, so every copy is removed instead.
	cookies bool
	clear   bool
	domain  fbcookie.Domain
	secure  bool
}

// visit gathers the request-wide facts into v and decides the cookies.
func (b *Browser) visit(v *visit, r *http.Request, site *store.Site, body *browserBody, ip netip.Addr, ua string, now time.Time) {
	*v = visit{site: site, now: now, ip: ip, ua: ua, consent: body.Consent, region: regionOf(body.Lang)}
	decides := hasConsentEvent(body)
	// The visitor said no in another tab: this page's tag started before
	// that and still sends what it then thought allowed, but the
	// browser's consent cookie, which the tag writes before it sends a
	// decision, says no. A decision in the body itself wins.
	deniedElsewhere := !decides && v.consent != pipeline.ConsentDenied && cookieValue(r, ConsentCookie) == pipeline.ConsentDenied
	if deniedElsewhere {
		v.consent = pipeline.ConsentDenied
	}
	// Spec §9: without the required consent no cookie is read, minted or
	// refreshed and nothing typed is captured.
	v.allowed = v.consent == pipeline.ConsentGranted ||
		(v.consent != pipeline.ConsentDenied && site.Consent != store.ConsentRequired)
	for i := range body.Events {
		if v.pageURL = b.eventURL(&body.Events[i], body); v.pageURL != "" {
			break
		}
	}
	if v.pageURL == "" {
		v.pageURL = r.Header.Get("Referer")
	}
	if validVisitorID(body.VisitorID) {
		v.vid = body.VisitorID
	}
	_, pageHost := requestOrigin(r)
	if !v.allowed {
		// Denied now, or in another tab: the relay's copies of the
		// cookies go too (the tag removes the ones it can reach).
		if (decides && v.consent == pipeline.ConsentDenied) || deniedElsewhere {
			v.domain, v.clear = fbcookie.FirstPartyDomain(r.Host, pageHost, nil)
			v.secure = b.secure(r)
		}
		return
	}
	// The body wins: the tag read the page's own cookies. The relay's
	// cookies are a fallback, for when it runs under the site's domain.
	fbp, fbc := body.Fbp, body.Fbc
	if fbp == "" {
		fbp = cookieValue(r, fbcookie.FbpName)
	}
	if fbc == "" {
		fbc = cookieValue(r, fbcookie.FbcName)
	}
	if v.vid == "" {
		if c := cookieValue(r, VisitorCookie); validVisitorID(c) {
			v.vid = c
		}
	}
	var ref string
	for i := range body.Events {
		if e := &body.Events[i]; e.Ref != "" {
			ref = e.Ref
			break
		}
	}
	clickID := fbcookie.ClickID(v.pageURL, ref)

	// Cookies can only be set for the relay's own host. They help only
	// when that is the page's site (the relay under the site's domain);
	// for a third-party relay they would be third-party cookies, so none
	// are set and nothing is minted that could not be kept. They go on the
	// registrable domain, as the tag's and the Pixel's do (whatever domain
	// the site is configured with): one copy of each.
	if d, sameSite := fbcookie.FirstPartyDomain(r.Host, pageHost, nil); sameSite {
		st := fbcookie.Resolve(now, d.Index, fbp, fbc, clickID)
		v.fbp, v.fbc = st.Fbp, st.Fbc
		if v.vid == "" {
			v.vid = newVisitorID()
		}
		v.cookies, v.domain = true, d
		v.secure = b.secure(r)
		return
	}
	if fbcookie.Valid(fbp) {
		v.fbp = fbp
	}
	// D-FBC: with a click id in the URL and no usable _fbc, fbc may still
	// be built and sent, at the index of the page's own domain (which is
	// looked up only then).
	idx := 0
	if fbcookie.UsableClickID(clickID) {
		idx = fbcookie.CookieDomain(pageHost, nil).Index
	}
	v.fbc, _ = fbcookie.ResolveFbc(now, idx, fbc, clickID)
}

// setCookies sets or refreshes the first-party cookies decided by visit.
// The values are written into one buffer and become substrings of one
// string: two allocations for the three headers.
func (v *visit) setCookies(w http.ResponseWriter) {
	if v.clear {
		clearCookies(w, v.domain, v.secure)
	}
	if !v.cookies {
		return
	}
	var a [512]byte
	var ends [3]int
	b, n := a[:0], 0
	add := func(name, value string, maxAge time.Duration) {
		l := len(b)
		if b = appendBrowserCookie(b, name, value, v.domain, maxAge, v.secure); len(b) > l {
			ends[n] = len(b)
			n++
		}
	}
	add(fbcookie.FbpName, v.fbp, fbcookie.MaxAge)
	if v.fbc != "" {
		add(fbcookie.FbcName, v.fbc, fbcookie.MaxAge)
	}
	add(VisitorCookie, v.vid, VisitorMaxAge)
	if n == 0 {
		return
	}
	all := string(b)
	h := w.Header()
	old := h["Set-Cookie"]
	cs := append(make([]string, 0, len(old)+n), old...)
	start := 0
	for _, end := range ends[:n] {
		cs = append(cs, all[start:end])
		start = end
	}
	h["Set-Cookie"] = cs
}

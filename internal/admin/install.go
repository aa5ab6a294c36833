package admin

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/capirelay/capirelay/internal/store"
	"github.com/capirelay/capirelay/internal/tag"
)

// checklistSample is how many of a site's newest events the checklist reads.
const checklistSample = 1000

type check struct {
	Label string
	OK    bool
	Hint  string // what to do when not OK
}

type installView struct {
	Site    *store.Site
	Snippet string
	Curl    string
	Checks  []check
	Sampled int
}

func (h *Handler) relayURL(r *http.Request) string {
	if h.cfg.PublicURL != "" {
		return h.cfg.PublicURL
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

func curlExample(relay string, s *store.Site) string {
	src := "https://example.com/checkout"
	if len(s.Domains) > 0 {
		src = "https://" + s.Domains[0] + "/checkout"
	}
	return fmt.Sprintf(`curl -sS -X POST %s/v1/events \
  -H "Authorization: Bearer $CAPIRELAY_API_KEY" \
  -H "Content-Type: application/json" \
  -d '{"data": [{
        "event_name": "Purchase",
        "event_time": '"$(date +%%s)"',
        "event_id": "order-1001",
        "action_source": "website",
        "event_source_url": "%s",
        "user_data": {
          "em": "customer@example.com",
          "external_id": "customer-42",
          "client_ip_address": "203.0.113.7",
          "client_user_agent": "Mozilla/5.0"
        },
        "custom_data": {"currency": "USD", "value": 42.50}
      }]}'`, relay, src)
}

func (h *Handler) installPage(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	s, err := h.store.Site(ctx, r.PathValue("key"))
	if err != nil {
		return err
	}
	its, err := h.store.Items(ctx, s.Key, "", checklistSample)
	if err != nil {
		return err
	}
	var browser, fbp, fbc, delivered, dead bool
	for _, it := range its {
		browser = browser || it.Source == "browser"
		delivered = delivered || it.State == store.StateDelivered
		dead = dead || it.State == store.StateDead
		if !fbp || !fbc {
			keys := userDataKeys(it.Payload)
			fbp, fbc = fbp || keys["fbp"], fbc || keys["fbc"]
		}
	}
	dest := "Meta"
	if s.Sandbox() {
		dest = "the sandbox (no access token or pixel id yet)"
	}
	deliveredHint := "Events wait in the queue; see Live events for their state and last error."
	if dead {
		deliveredHint = "Some events were dead-lettered; see Dead letters for the reason."
	}
	if s.Paused {
		deliveredHint = "Delivery is paused: " + s.PauseReason + ". Set a new access token on the site page."
	}
	relay := h.relayURL(r)
	v := installView{Site: s, Snippet: tag.Snippet(relay, s.Key), Curl: curlExample(relay, s), Sampled: len(its),
		Checks: []check{
			{"Tag loaded: a browser event arrived", browser,
				"Paste the snippet into every page's <head>, open the site, and check that " + siteDomains(s) + " is listed in the site's domains."},
			{"_fbp seen: browser id present on events", fbp,
				"The tag sets _fbp on the first page view; if consent is required, it waits for consent."},
			{"fbc seen: click id present on events", fbc,
				"fbc appears once a visitor arrives from a Meta ad (a URL with fbclid); try your site's URL with ?fbclid=test."},
			{"Events delivered to " + dest, delivered, deliveredHint},
			h.proxyCheck(),
		}}
	return h.render(w, r, http.StatusOK, "install", "Install "+s.Name, v)
}

func siteDomains(s *store.Site) string {
	if len(s.Domains) == 0 {
		return "the page's domain"
	}
	return strings.Join(s.Domains, ", ")
}

// proxyCheck is the checklist's reverse-proxy item: done unless a peer sent
// X-Forwarded-For without being trusted, which gives every visitor the
// proxy's IP (and one shared rate limit).
func (h *Handler) proxyCheck() check {
	c := check{Label: "Client IPs: no untrusted proxy in front of the relay", OK: true}
	if h.cfg.UntrustedProxies == nil {
		return c
	}
	if peers := h.cfg.UntrustedProxies(); len(peers) > 0 {
		c.OK = false
		c.Label = "Client IPs: X-Forwarded-For arrives from " + strings.Join(peers, ", ") + ", which is not trusted"
		c.Hint = "Every visitor gets that proxy's IP and all share one rate limit. Set CAPIRELAY_TRUSTED_PROXIES to the proxy's address or CIDR (e.g. " +
			peers[0] + "/32) and restart. Serve the relay under a path of the site itself (https://www.example.com/capirelay/), not a t. subdomain: " +
			"since Safari 16.4, cookies set by a server on another IP range than the site's last 7 days."
	}
	return c
}

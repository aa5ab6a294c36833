package admin

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/capirelay/capirelay/internal/store"
)

// maskToken shows that a token is set without showing it: Meta's tokens all
// start with "EAA", so the first four characters tell the kind and nothing
// more.
func maskToken(t string) string {
	switch {
	case t == "":
		return ""
	case len(t) < 16:
		return "…(set)"
	}
	return t[:4] + "…(set)"
}

// siteInput is an edit to a site, from a form or JSON; nil fields stay.
type siteInput struct {
	Name               *string   `json:"name"`
	Domains            *[]string `json:"domains"`
	PixelID            *string   `json:"pixel_id"`
	AccessToken        *string   `json:"access_token"` // create only; else PUT …/token
	TestEventCode      *string   `json:"test_event_code"`
	Consent            *string   `json:"consent"`
	DefaultRegion      *string   `json:"default_region"`
	PartialLeads       *bool     `json:"partial_leads"`
	PartialLeadTimeout *int      `json:"partial_lead_timeout_minutes"`
	PartialLeadForward *bool     `json:"partial_lead_forward"`
	PartialLeadEvent   *string   `json:"partial_lead_event"`
	WebhookURL         *string   `json:"webhook_url"`
	RetentionDays      *int      `json:"retention_days"`
}

var (
	pixelIDRe = regexp.MustCompile(`^[0-9]{5,20}$`)
	domainRe  = regexp.MustCompile(`^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$|^localhost$`)
	regionRe  = regexp.MustCompile(`^[A-Z]{2}$`)
	eventRe   = regexp.MustCompile(`^[A-Za-z0-9_ .-]{1,50}$`)
)

// normalizeDomains lowercases domains and strips schemes, paths, ports and
// a leading "www." or "*.".
func normalizeDomains(in []string) ([]string, error) {
	out := []string{}
	seen := map[string]bool{}
	for _, d := range in {
		d = strings.ToLower(strings.TrimSpace(d))
		if d == "" {
			continue
		}
		if i := strings.Index(d, "://"); i >= 0 {
			d = d[i+3:]
		}
		d, _, _ = strings.Cut(d, "/")
		if h, _, ok := strings.Cut(d, ":"); ok {
			d = h
		}
		d = strings.TrimPrefix(strings.TrimPrefix(d, "*."), "www.")
		d = strings.TrimSuffix(d, ".")
		if !domainRe.MatchString(d) {
			return nil, errorf(http.StatusBadRequest, "domains", "%q is not a domain name (write it as example.com)", d)
		}
		if !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	return out, nil
}

// apply validates in and writes it into s.
func (in *siteInput) apply(s *store.Site) error {
	bad := func(field, format string, args ...any) error {
		return errorf(http.StatusBadRequest, field, format, args...)
	}
	if in.Name != nil {
		n := strings.TrimSpace(*in.Name)
		if n == "" || len(n) > 200 {
			return bad("name", "the name must have 1 to 200 characters")
		}
		s.Name = n
	}
	if in.Domains != nil {
		d, err := normalizeDomains(*in.Domains)
		if err != nil {
			return err
		}
		s.Domains = d
	}
	if in.PixelID != nil {
		p := strings.TrimSpace(*in.PixelID)
		if p != "" && !pixelIDRe.MatchString(p) {
			return bad("pixel_id", "the pixel id is the number shown in Events Manager (digits only)")
		}
		s.PixelID = p
	}
	if in.TestEventCode != nil {
		c := strings.TrimSpace(*in.TestEventCode)
		if len(c) > 64 || strings.ContainsAny(c, " \t\r\n") {
			return bad("test_event_code", "the test event code is a short code like TEST12345, without spaces")
		}
		s.TestEventCode = c
	}
	if in.Consent != nil {
		switch c := *in.Consent; c {
		case store.ConsentNone, store.ConsentRequired, store.ConsentLDU:
			s.Consent = c
		default:
			return bad("consent", "consent must be none, required or ldu")
		}
	}
	if in.DefaultRegion != nil {
		r := strings.ToUpper(strings.TrimSpace(*in.DefaultRegion))
		if r != "" && !regionRe.MatchString(r) {
			return bad("default_region", "the default region is a two-letter country code such as US or DE")
		}
		s.DefaultRegion = r
	}
	if in.PartialLeads != nil {
		s.PartialLeads = *in.PartialLeads
	}
	if in.PartialLeadTimeout != nil {
		m := *in.PartialLeadTimeout
		if m < 1 || m > 24*60 {
			return bad("partial_lead_timeout_minutes", "the partial lead timeout is 1 to 1440 minutes")
		}
		s.PartialLeadTimeout = time.Duration(m) * time.Minute
	}
	if in.PartialLeadForward != nil {
		s.PartialLeadForward = *in.PartialLeadForward
	}
	if in.PartialLeadEvent != nil {
		e := strings.TrimSpace(*in.PartialLeadEvent)
		if e != "" && !eventRe.MatchString(e) {
			return bad("partial_lead_event", "the event name has letters, digits, spaces, _ . - only (at most 50)")
		}
		s.PartialLeadEvent = e
	}
	if in.WebhookURL != nil {
		u := strings.TrimSpace(*in.WebhookURL)
		if u != "" {
			pu, err := url.Parse(u)
			if err != nil || (pu.Scheme != "https" && pu.Scheme != "http") || pu.Host == "" {
				return bad("webhook_url", "the webhook URL must be an http(s) URL")
			}
		}
		s.WebhookURL = u
	}
	if in.RetentionDays != nil {
		d := *in.RetentionDays
		if d < 1 || d > 3650 {
			return bad("retention_days", "retention is 1 to 3650 days")
		}
		s.Retention = time.Duration(d) * 24 * time.Hour
	}
	store.SiteDefaults(s)
	return nil
}

func splitDomains(v string) []string {
	return strings.FieldsFunc(v, func(c rune) bool { return c == ',' || c == '\n' || c == ' ' || c == '\r' })
}

// formInput reads a site form; checkboxes are present only when checked.
func formInput(r *http.Request) *siteInput {
	str := func(k string) *string { v := r.PostFormValue(k); return &v }
	num := func(k string) *int {
		v := strings.TrimSpace(r.PostFormValue(k))
		if v == "" {
			return nil
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			n = -1 // refused by apply with the field's message
		}
		return &n
	}
	check := func(k string) *bool { v := r.PostFormValue(k) == "on"; return &v }
	return &siteInput{
		Name: str("name"), Domains: new(splitDomains(r.PostFormValue("domains"))), PixelID: str("pixel_id"), TestEventCode: str("test_event_code"),
		Consent: str("consent"), DefaultRegion: str("default_region"), PartialLeads: check("partial_leads"),
		PartialLeadTimeout: num("partial_lead_timeout_minutes"), PartialLeadForward: check("partial_lead_forward"),
		PartialLeadEvent: str("partial_lead_event"), WebhookURL: str("webhook_url"), RetentionDays: num("retention_days"),
	}
}

// createSite makes a site through Config.NewSite, then applies the rest of in.
func (h *Handler) createSite(ctx context.Context, in *siteInput) (*store.Site, string, error) {
	if in.Name == nil || strings.TrimSpace(*in.Name) == "" {
		return nil, "", errorf(http.StatusBadRequest, "name", "a site needs a name")
	}
	// Validate everything before anything is created.
	probe := &store.Site{}
	if err := in.apply(probe); err != nil {
		return nil, "", err
	}
	if len(probe.Domains) == 0 {
		return nil, "", errorf(http.StatusBadRequest, "domains", "a site needs at least one domain (example.com)")
	}
	s, key, err := h.cfg.NewSite(ctx, probe.Name, probe.Domains)
	if err != nil {
		return nil, "", err
	}
	if err := in.apply(s); err != nil {
		return nil, "", err
	}
	if err := h.store.UpdateSite(ctx, s); err != nil {
		return nil, "", err
	}
	if in.AccessToken != nil && strings.TrimSpace(*in.AccessToken) != "" {
		if err := h.store.SetAccessToken(ctx, s.Key, strings.TrimSpace(*in.AccessToken)); err != nil {
			return nil, "", err
		}
	}
	h.log.Info("site created", "site", s.Key)
	s, err = h.store.Site(ctx, s.Key)
	return s, key, err
}

type sitesView struct {
	Sites []*siteRow
	Error *Error
	Form  map[string]string
}

type siteRow struct {
	*store.Site
	Token string // masked
	Depth int
}

func (h *Handler) sitesPage(w http.ResponseWriter, r *http.Request) error {
	return h.renderSites(w, r, http.StatusOK, nil)
}

func (h *Handler) renderSites(w http.ResponseWriter, r *http.Request, status int, formErr *Error) error {
	sites, err := h.store.ListSites(r.Context())
	if err != nil {
		return err
	}
	depth, err := h.store.Depth(r.Context())
	if err != nil {
		return err
	}
	v := sitesView{Error: formErr, Form: map[string]string{}}
	for _, s := range sites {
		v.Sites = append(v.Sites, &siteRow{Site: s, Token: maskToken(s.AccessToken), Depth: depth[s.Key]})
	}
	if formErr != nil {
		v.Form["name"], v.Form["domains"], v.Form["pixel_id"] = r.PostFormValue("name"), r.PostFormValue("domains"), r.PostFormValue("pixel_id")
	}
	return h.render(w, r, status, "sites", "Sites", v)
}

func (h *Handler) createSiteForm(w http.ResponseWriter, r *http.Request) error {
	in := &siteInput{Name: new(r.PostFormValue("name")), Domains: new(splitDomains(r.PostFormValue("domains"))),
		PixelID: new(r.PostFormValue("pixel_id")), AccessToken: new(r.PostFormValue("access_token"))}
	s, key, err := h.createSite(r.Context(), in)
	var fe *Error
	if errors.As(err, &fe) && fe.Status == http.StatusBadRequest {
		return h.renderSites(w, r, http.StatusBadRequest, fe)
	}
	if err != nil {
		return err
	}
	return h.renderSite(w, r, http.StatusCreated, s, siteFlash{APIKey: key, Msg: "Site created. Copy the API key now: it is shown only once."})
}

type siteView struct {
	Site   *store.Site
	Token  string
	Flash  siteFlash
	Error  *Error
	Region string
}

type siteFlash struct {
	Msg    string
	APIKey string // a new API key, shown once
}

func (h *Handler) renderSite(w http.ResponseWriter, r *http.Request, status int, s *store.Site, flash siteFlash) error {
	return h.render(w, r, status, "site", s.Name, siteView{Site: s, Token: maskToken(s.AccessToken), Flash: flash})
}

func (h *Handler) sitePage(w http.ResponseWriter, r *http.Request) error {
	s, err := h.store.Site(r.Context(), r.PathValue("key"))
	if err != nil {
		return err
	}
	var flash siteFlash
	switch r.URL.Query().Get("done") {
	case "saved":
		flash.Msg = "Saved."
	case "token":
		flash.Msg = "Access token saved; delivery resumes if it was paused."
	}
	return h.renderSite(w, r, http.StatusOK, s, flash)
}

func (h *Handler) updateSiteForm(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	s, err := h.store.Site(ctx, r.PathValue("key"))
	if err != nil {
		return err
	}
	if err := formInput(r).apply(s); err != nil {
		var fe *Error
		if errors.As(err, &fe) {
			return h.render(w, r, http.StatusBadRequest, "site", s.Name, siteView{Site: s, Token: maskToken(s.AccessToken), Error: fe})
		}
		return err
	}
	if err := h.store.UpdateSite(ctx, s); err != nil {
		return err
	}
	http.Redirect(w, r, "/admin/sites/"+url.PathEscape(s.Key)+"?done=saved", http.StatusSeeOther)
	return nil
}

func (h *Handler) setTokenForm(w http.ResponseWriter, r *http.Request) error {
	key := r.PathValue("key")
	tok := strings.TrimSpace(r.PostFormValue("access_token"))
	if r.PostFormValue("clear") == "" && tok == "" {
		return errorf(http.StatusBadRequest, "access_token", "paste the access token from Events Manager, or use Clear to go back to the sandbox")
	}
	if err := h.store.SetAccessToken(r.Context(), key, tok); err != nil {
		return err
	}
	h.log.Info("site access token changed", "site", key, "cleared", tok == "")
	http.Redirect(w, r, "/admin/sites/"+url.PathEscape(key)+"?done=token", http.StatusSeeOther)
	return nil
}

func (h *Handler) rotateKeyForm(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	key := r.PathValue("key")
	if _, err := h.store.Site(ctx, key); err != nil {
		return err
	}
	apiKey, err := h.cfg.RotateKey(ctx, key)
	if err != nil {
		return err
	}
	h.log.Info("site api key rotated", "site", key)
	s, err := h.store.Site(ctx, key)
	if err != nil {
		return err
	}
	return h.renderSite(w, r, http.StatusOK, s, siteFlash{APIKey: apiKey,
		Msg: "New API key created; the old one no longer works. Copy it now: it is shown only once."})
}

func (h *Handler) deleteSiteForm(w http.ResponseWriter, r *http.Request) error {
	key := r.PathValue("key")
	if r.PostFormValue("confirm") != key {
		return errorf(http.StatusBadRequest, "confirm", "type the site key to confirm deleting it")
	}
	if err := h.store.DeleteSite(r.Context(), key); err != nil {
		return err
	}
	h.log.Info("site deleted", "site", key)
	http.Redirect(w, r, "/admin/sites", http.StatusSeeOther)
	return nil
}

// siteJSON is a site as the API shows it: the access token only masked.
type siteJSON struct {
	Key                       string    `json:"key"`
	Name                      string    `json:"name"`
	Domains                   []string  `json:"domains"`
	PixelID                   string    `json:"pixel_id"`
	AccessToken               string    `json:"access_token"` // masked
	AccessTokenSet            bool      `json:"access_token_set"`
	Sandbox                   bool      `json:"sandbox"`
	TestEventCode             string    `json:"test_event_code"`
	Consent                   string    `json:"consent"`
	DefaultRegion             string    `json:"default_region"`
	PartialLeads              bool      `json:"partial_leads"`
	PartialLeadTimeoutMinutes int       `json:"partial_lead_timeout_minutes"`
	PartialLeadForward        bool      `json:"partial_lead_forward"`
	PartialLeadEvent          string    `json:"partial_lead_event"`
	WebhookURL                string    `json:"webhook_url"`
	RetentionDays             int       `json:"retention_days"`
	Paused                    bool      `json:"paused"`
	PauseReason               string    `json:"pause_reason"`
	Demo                      bool      `json:"demo"`
	CreatedAt                 time.Time `json:"created_at"`
	UpdatedAt                 time.Time `json:"updated_at"`
	APIKey                    string    `json:"api_key,omitempty"` // only right after creation or rotation
}

func toJSON(s *store.Site) siteJSON {
	return siteJSON{
		Key: s.Key, Name: s.Name, Domains: s.Domains, PixelID: s.PixelID,
		AccessToken: maskToken(s.AccessToken), AccessTokenSet: s.AccessToken != "", Sandbox: s.Sandbox(),
		TestEventCode: s.TestEventCode, Consent: s.Consent, DefaultRegion: s.DefaultRegion,
		PartialLeads: s.PartialLeads, PartialLeadTimeoutMinutes: int(s.PartialLeadTimeout / time.Minute),
		PartialLeadForward: s.PartialLeadForward, PartialLeadEvent: s.PartialLeadEvent, WebhookURL: s.WebhookURL,
		RetentionDays: int(s.Retention / (24 * time.Hour)), Paused: s.Paused, PauseReason: s.PauseReason, Demo: s.Demo,
		CreatedAt: s.CreatedAt, UpdatedAt: s.UpdatedAt,
	}
}

// decodeJSON reads a small JSON body, refusing unknown fields.
func decodeJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) {
			return errorf(http.StatusBadRequest, ute.Field, "%s has the wrong type (want %s)", ute.Field, ute.Type)
		}
		if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			f = strings.Trim(f, `"`)
			return errorf(http.StatusBadRequest, f, "unknown field %s", f)
		}
		return errorf(http.StatusBadRequest, "", "the body must be a JSON object")
	}
	return nil
}

func (h *Handler) apiListSites(w http.ResponseWriter, r *http.Request) error {
	sites, err := h.store.ListSites(r.Context())
	if err != nil {
		return err
	}
	out := []siteJSON{}
	for _, s := range sites {
		out = append(out, toJSON(s))
	}
	writeJSON(w, http.StatusOK, map[string]any{"sites": out})
	return nil
}

func (h *Handler) apiCreateSite(w http.ResponseWriter, r *http.Request) error {
	var in siteInput
	if err := decodeJSON(r, &in); err != nil {
		return err
	}
	s, key, err := h.createSite(r.Context(), &in)
	if err != nil {
		return err
	}
	out := toJSON(s)
	out.APIKey = key
	writeJSON(w, http.StatusCreated, out)
	return nil
}

func (h *Handler) apiGetSite(w http.ResponseWriter, r *http.Request) error {
	s, err := h.store.Site(r.Context(), r.PathValue("key"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toJSON(s))
	return nil
}

func (h *Handler) apiPatchSite(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	s, err := h.store.Site(ctx, r.PathValue("key"))
	if err != nil {
		return err
	}
	var in siteInput
	if err := decodeJSON(r, &in); err != nil {
		return err
	}
	if in.AccessToken != nil {
		return errorf(http.StatusBadRequest, "access_token", "set the access token with PUT /api/admin/sites/{key}/token")
	}
	if err := in.apply(s); err != nil {
		return err
	}
	if err := h.store.UpdateSite(ctx, s); err != nil {
		return err
	}
	if s, err = h.store.Site(ctx, s.Key); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toJSON(s))
	return nil
}

func (h *Handler) apiDeleteSite(w http.ResponseWriter, r *http.Request) error {
	key := r.PathValue("key")
	if err := h.store.DeleteSite(r.Context(), key); err != nil {
		return err
	}
	h.log.Info("site deleted", "site", key)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *Handler) apiRotateKey(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	key := r.PathValue("key")
	if _, err := h.store.Site(ctx, key); err != nil {
		return err
	}
	apiKey, err := h.cfg.RotateKey(ctx, key)
	if err != nil {
		return err
	}
	h.log.Info("site api key rotated", "site", key)
	writeJSON(w, http.StatusOK, map[string]string{"site": key, "api_key": apiKey})
	return nil
}

func (h *Handler) apiSetToken(w http.ResponseWriter, r *http.Request) error {
	key := r.PathValue("key")
	var in struct {
		AccessToken *string `json:"access_token"`
	}
	if err := decodeJSON(r, &in); err != nil {
		return err
	}
	if in.AccessToken == nil {
		return errorf(http.StatusBadRequest, "access_token", `send {"access_token": "..."} ("" goes back to the sandbox)`)
	}
	tok := strings.TrimSpace(*in.AccessToken)
	if err := h.store.SetAccessToken(r.Context(), key, tok); err != nil {
		return err
	}
	h.log.Info("site access token changed", "site", key, "cleared", tok == "")
	s, err := h.store.Site(r.Context(), key)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toJSON(s))
	return nil
}

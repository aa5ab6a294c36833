package admin

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/capirelay/capirelay/internal/leads"
	"github.com/capirelay/capirelay/internal/sitecfg"
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

// settingError turns a setting refused by sitecfg's rules into a 400 that
// names the field, so forms re-render with it and the API reports it.
func settingError(err error) error {
	var se *sitecfg.Error
	if errors.As(err, &se) {
		return &Error{Status: http.StatusBadRequest, Field: se.Field, Msg: se.Message}
	}
	return err
}

func splitDomains(v string) []string {
	return strings.FieldsFunc(v, func(c rune) bool { return c == ',' || c == '\n' || c == ' ' || c == '\r' })
}

// formInput reads a site form; checkboxes are present only when checked.
func formInput(r *http.Request) *sitecfg.Update {
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
	return &sitecfg.Update{
		Name: str("name"), Domains: new(splitDomains(r.PostFormValue("domains"))), PixelID: str("pixel_id"), TestEventCode: str("test_event_code"),
		Consent: str("consent"), DefaultRegion: str("default_region"), PartialLeads: check("partial_leads"),
		PartialLeadTimeout: num("partial_lead_timeout_minutes"), PartialLeadForward: check("partial_lead_forward"),
		PartialLeadEvent: str("partial_lead_event"), WebhookURL: str("webhook_url"), RetentionDays: num("retention_days"),
		Identity: str("identity"), ClickWindowDays: num("click_window_days"),
		WebhookAllowHTTP: check("webhook_allow_http"), WebhookAllowPrivate: check("webhook_allow_private"),
	}
}

// createSite makes a site of in through Config.NewSite.
func (h *Handler) createSite(ctx context.Context, in *sitecfg.Update) (*store.Site, string, error) {
	s, key, err := h.cfg.NewSite(ctx, *in)
	if err != nil {
		return nil, "", settingError(err)
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
	in := &sitecfg.Update{Name: new(r.PostFormValue("name")), Domains: new(splitDomains(r.PostFormValue("domains"))),
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
	if err := formInput(r).Apply(s); err != nil {
		err = settingError(err)
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
	raw := r.PostFormValue("access_token")
	if r.PostFormValue("clear") != "" {
		raw = ""
	} else if strings.TrimSpace(raw) == "" {
		return errorf(http.StatusBadRequest, "access_token", "paste the access token from Events Manager, or use Clear to go back to the sandbox")
	}
	tok, err := h.checkToken(r.Context(), key, raw)
	if err != nil {
		return err
	}
	if err := h.store.SetAccessToken(r.Context(), key, tok); err != nil {
		return err
	}
	h.log.Info("site access token changed", "site", key, "cleared", tok == "")
	http.Redirect(w, r, "/admin/sites/"+url.PathEscape(key)+"?done=token", http.StatusSeeOther)
	return nil
}

// checkToken checks raw as the new access token of site key with sitecfg's
// rules, the CLI's: a token needs the site's pixel id. It returns the token
// to store ("" goes back to the sandbox).
func (h *Handler) checkToken(ctx context.Context, key, raw string) (string, error) {
	s, err := h.store.Site(ctx, key)
	if err != nil {
		return "", err
	}
	if err := (&sitecfg.Update{AccessToken: &raw}).Apply(s); err != nil {
		return "", settingError(err)
	}
	return s.AccessToken, nil
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
	WebhookURL                string    `json:"webhook_url"` // redacted without the webhooks scope
	WebhookURLRedacted        bool      `json:"webhook_url_redacted,omitempty"`
	WebhookAllowHTTP          bool      `json:"webhook_allow_http"`
	WebhookAllowPrivate       bool      `json:"webhook_allow_private"`
	RetentionDays             int       `json:"retention_days"`
	Identity                  string    `json:"identity"`
	ClickWindowDays           int       `json:"click_window_days"`
	Paused                    bool      `json:"paused"`
	PauseReason               string    `json:"pause_reason"`
	Demo                      bool      `json:"demo"`
	CreatedAt                 time.Time `json:"created_at"`
	UpdatedAt                 time.Time `json:"updated_at"`
	APIKey                    string    `json:"api_key,omitempty"` // only right after creation or rotation
}

// toJSON is s as the API shows it to the request's principal: the webhook
// URL in full only to one that may change it (see webhookURL).
func toJSON(ctx context.Context, s *store.Site) siteJSON {
	out := siteJSON{
		Key: s.Key, Name: s.Name, Domains: s.Domains, PixelID: s.PixelID,
		AccessToken: maskToken(s.AccessToken), AccessTokenSet: s.AccessToken != "", Sandbox: s.Sandbox(),
		TestEventCode: s.TestEventCode, Consent: s.Consent, DefaultRegion: s.DefaultRegion,
		PartialLeads: s.PartialLeads, PartialLeadTimeoutMinutes: int(s.PartialLeadTimeout / time.Minute),
		PartialLeadForward: s.PartialLeadForward, PartialLeadEvent: s.PartialLeadEvent, WebhookURL: s.WebhookURL,
		RetentionDays: int(s.Retention / (24 * time.Hour)), Identity: s.IdentityMode(), ClickWindowDays: int(s.FbcWindow() / (24 * time.Hour)),
		WebhookAllowHTTP: s.WebhookAllowHTTP, WebhookAllowPrivate: s.WebhookAllowPrivate, Paused: s.Paused, PauseReason: s.PauseReason, Demo: s.Demo,
		CreatedAt: s.CreatedAt, UpdatedAt: s.UpdatedAt,
	}
	out.WebhookURL, out.WebhookURLRedacted = webhookURL(ctx, s.WebhookURL)
	return out
}

// webhookURL is a site's webhook URL as the request's principal may see
// it. Hook URLs often carry a bearer secret in their path or query, and
// the URL decides where raw leads go, so only a principal with the
// webhooks scope (or a dashboard session) sees it whole; the others see
// its scheme and host and a marked redaction ("https://hooks.example/…(hidden)"),
// as the webhook sender's log lines do (leads.RedactURL).
func webhookURL(ctx context.Context, raw string) (shown string, redacted bool) {
	if raw == "" || principalFrom(ctx).may(ScopeWebhooks) {
		return raw, false
	}
	if s, ok := leads.RedactURL(raw); ok {
		return s + "/…(hidden)", true
	}
	return "…(hidden)", true
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
		out = append(out, toJSON(r.Context(), s))
	}
	writeJSON(w, http.StatusOK, map[string]any{"sites": out})
	return nil
}

// checkScope refuses webhook settings to an API token without the
// webhooks scope: they decide where raw leads are posted.
func checkScope(ctx context.Context, in *sitecfg.Update) error {
	for field, set := range map[string]bool{"webhook_url": in.WebhookURL != nil,
		"webhook_allow_http": in.WebhookAllowHTTP != nil, "webhook_allow_private": in.WebhookAllowPrivate != nil} {
		if set {
			return requireScope(ctx, ScopeWebhooks, field)
		}
	}
	return nil
}

func (h *Handler) apiCreateSite(w http.ResponseWriter, r *http.Request) error {
	var in sitecfg.Update
	if err := decodeJSON(r, &in); err != nil {
		return err
	}
	if err := checkScope(r.Context(), &in); err != nil {
		return err
	}
	s, key, err := h.createSite(r.Context(), &in)
	if err != nil {
		return err
	}
	out := toJSON(r.Context(), s)
	out.APIKey = key
	writeJSON(w, http.StatusCreated, out)
	return nil
}

func (h *Handler) apiGetSite(w http.ResponseWriter, r *http.Request) error {
	s, err := h.store.Site(r.Context(), r.PathValue("key"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toJSON(r.Context(), s))
	return nil
}

func (h *Handler) apiPatchSite(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	s, err := h.store.Site(ctx, r.PathValue("key"))
	if err != nil {
		return err
	}
	var in sitecfg.Update
	if err := decodeJSON(r, &in); err != nil {
		return err
	}
	if in.AccessToken != nil {
		return errorf(http.StatusBadRequest, "access_token", "set the access token with PUT /api/admin/sites/{key}/token")
	}
	if err := checkScope(ctx, &in); err != nil {
		return err
	}
	if err := in.Apply(s); err != nil {
		return settingError(err)
	}
	if err := h.store.UpdateSite(ctx, s); err != nil {
		return err
	}
	if s, err = h.store.Site(ctx, s.Key); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toJSON(r.Context(), s))
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
	tok, err := h.checkToken(r.Context(), key, *in.AccessToken)
	if err != nil {
		return err
	}
	if err := h.store.SetAccessToken(r.Context(), key, tok); err != nil {
		return err
	}
	h.log.Info("site access token changed", "site", key, "cleared", tok == "")
	s, err := h.store.Site(r.Context(), key)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toJSON(r.Context(), s))
	return nil
}

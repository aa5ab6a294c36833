package admin

import (
	"bytes"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/capirelay/capirelay/internal/leads"
	"github.com/capirelay/capirelay/internal/store"
)

const leadsLimit = 500

var fileSafe = regexp.MustCompile(`[^A-Za-z0-9_-]`)

// leadFields are the captured fields, in the export's order.
var leadFields = leads.FieldNames

var leadStates = []string{store.LeadPartial, store.LeadOpen, store.LeadSubmitted, store.LeadConverted}

type leadsView struct {
	Available bool // a leads store is connected
	Sites     []*store.Site
	Site      string
	State     string
	States    []string
	Query     string
	Fields    []string
	Leads     []store.Lead
	CSVURL    string
}

// leadFilter reads site, state and q; site defaults to the first site.
func (h *Handler) leadFilter(r *http.Request, sites []*store.Site) (store.LeadFilter, string, error) {
	q := r.URL.Query()
	f := store.LeadFilter{SiteKey: q.Get("site"), Limit: leadsLimit}
	if f.SiteKey == "" && len(sites) > 0 {
		f.SiteKey = sites[0].Key
	}
	if f.SiteKey != "" && !slices.ContainsFunc(sites, func(s *store.Site) bool { return s.Key == f.SiteKey }) {
		return f, "", errUnknownSite
	}
	switch st := q.Get("state"); {
	case st == "":
	case slices.Contains(leadStates, st):
		f.States = []string{st}
	default:
		return f, "", errorf(http.StatusBadRequest, "state", "state must be one of %s", strings.Join(leadStates, ", "))
	}
	return f, strings.ToLower(strings.TrimSpace(q.Get("q"))), nil
}

// listLeads lists the filter's leads, newest activity first, keeping those
// whose raw values or page URL contain query.
func (h *Handler) listLeads(r *http.Request, f store.LeadFilter, query string) ([]store.Lead, error) {
	list, err := h.leads.ListLeads(r.Context(), f)
	if err != nil {
		return nil, err
	}
	slices.Reverse(list)
	if query == "" {
		return list, nil
	}
	out := list[:0]
	for _, l := range list {
		hay := strings.ToLower(l.Data.PageURL + " " + l.FormID)
		for _, k := range leadFields {
			hay += " " + strings.ToLower(l.Data.Fields[k])
		}
		if strings.Contains(hay, query) {
			out = append(out, l)
		}
	}
	return out, nil
}

func (h *Handler) leadsPage(w http.ResponseWriter, r *http.Request) error {
	sites, err := h.store.ListSites(r.Context())
	if err != nil {
		return err
	}
	v := leadsView{Available: h.leads != nil, Sites: sites, States: leadStates, Fields: leadFields}
	if h.leads != nil && len(sites) > 0 {
		f, query, err := h.leadFilter(r, sites)
		if err != nil {
			return err
		}
		if v.Leads, err = h.listLeads(r, f, query); err != nil {
			return err
		}
		v.Site, v.Query = f.SiteKey, query
		if len(f.States) == 1 {
			v.State = f.States[0]
		}
		v.CSVURL = "/admin/leads.csv?" + url.Values{"site": {v.Site}, "state": {v.State}, "q": {v.Query}}.Encode()
	}
	return h.render(w, r, http.StatusOK, "leads", "Partial leads", v)
}

// leadsCSV exports the filtered leads with their raw values, in the format
// of capirelay leads export.
func (h *Handler) leadsCSV(w http.ResponseWriter, r *http.Request) error {
	if h.leads == nil {
		return errorf(http.StatusNotFound, "", "partial leads are not available in this build")
	}
	sites, err := h.store.ListSites(r.Context())
	if err != nil {
		return err
	}
	f, query, err := h.leadFilter(r, sites)
	if err != nil {
		return err
	}
	f.Limit = 0
	list, err := h.listLeads(r, f, query)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := leads.WriteCSV(&buf, list); err != nil {
		return err
	}
	h.log.Info("partial leads exported", "site", f.SiteKey, "rows", len(list))
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="leads-`+fileSafe.ReplaceAllString(f.SiteKey, "_")+`.csv"`)
	w.Write(buf.Bytes())
	return nil
}

package admin

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/capirelay/capirelay/internal/event"
	"github.com/capirelay/capirelay/internal/store"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed assets
var assetFS embed.FS

// Error is a failure the operator can act on: its message is safe to show.
type Error struct {
	Status int
	Msg    string
	Field  string // the form or JSON field at fault, if any
}

func (e *Error) Error() string { return e.Msg }

func errorf(status int, field, format string, args ...any) error {
	return &Error{Status: status, Field: field, Msg: fmt.Sprintf(format, args...)}
}

// statusOf is the one table from errors to HTTP statuses.
func statusOf(err error) (int, string, string) {
	var e *Error
	var fe *event.FieldError
	switch {
	case errors.As(err, &e):
		return e.Status, e.Msg, e.Field
	case errors.As(err, &fe):
		return http.StatusBadRequest, fe.Field + " " + fe.Message, fe.Field
	case errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound, "not found", ""
	case errors.Is(err, store.ErrDuplicate):
		return http.StatusConflict, "already exists", ""
	case errors.Is(err, store.ErrConflict):
		return http.StatusConflict, "conflict", ""
	case errors.Is(err, store.ErrUnavailable):
		return http.StatusServiceUnavailable, "the store is unavailable; try again shortly", ""
	}
	return http.StatusInternalServerError, "internal error (see the relay's log)", ""
}

// fail answers err as JSON or as an error page, and logs it.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, asJSON bool, err error) {
	status, msg, field := statusOf(err)
	if status >= 500 {
		h.log.Error("admin request failed", "method", r.Method, "route", r.Pattern, "status", status, "err", err)
	} else {
		h.log.Info("admin request refused", "method", r.Method, "route", r.Pattern, "status", status, "reason", msg)
	}
	if status == http.StatusUnauthorized && asJSON {
		w.Header().Set("WWW-Authenticate", `Bearer realm="capirelay admin"`)
	}
	if asJSON {
		body := map[string]string{"error": msg}
		if field != "" {
			body["field"] = field
		}
		writeJSON(w, status, body)
		return
	}
	if rerr := h.render(w, r, status, "error", "Error", errorView{Status: status, Msg: msg}); rerr != nil {
		http.Error(w, msg, status)
	}
}

type errorView struct {
	Status int
	Msg    string
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		http.Error(w, `{"error":"internal error"}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// pages holds one template set per page, each with the shared layout.
type pages struct {
	byName map[string]*template.Template
}

var funcs = template.FuncMap{
	"ago":     ago,
	"clock":   func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
	"pct":     func(f float64) string { return fmt.Sprintf("%.0f%%", f*100) },
	"join":    strings.Join,
	"heat":    heatClass,
	"seconds": func(d time.Duration) string { return fmt.Sprintf("%.1f s", d.Seconds()) },
	"add":     func(a, b int) int { return a + b },
	"days":    func(d time.Duration) int { return int(d / (24 * time.Hour)) },
	"minutes": func(d time.Duration) int { return int(d / time.Minute) },
}

func parsePages() (*pages, error) {
	layout, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html")
	if err != nil {
		return nil, fmt.Errorf("admin templates: %w", err)
	}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	p := &pages{byName: map[string]*template.Template{}}
	for _, n := range names {
		base := strings.TrimSuffix(path.Base(n), ".html")
		if base == "layout" {
			continue
		}
		t, err := template.Must(layout.Clone()).ParseFS(templateFS, n)
		if err != nil {
			return nil, fmt.Errorf("admin template %s: %w", base, err)
		}
		p.byName[base] = t
	}
	return p, nil
}

// view is what the layout gets; Data is the page's own.
type view struct {
	Title    string
	Nav      string // the page name, for the active tab
	CSRF     string
	Version  string
	LoggedIn bool
	Data     any
}

// render executes a page into a buffer, then writes it, so a template error
// is a clean 500 rather than half a page.
func (h *Handler) render(w http.ResponseWriter, r *http.Request, status int, name, title string, data any) error {
	t := h.pages.byName[name]
	if t == nil {
		return fmt.Errorf("BUG: no template %q", name)
	}
	csrf := csrfToken(r.Context())
	v := view{Title: title, Nav: name, CSRF: csrf, Version: h.cfg.Version, LoggedIn: principalFrom(r.Context()) != nil, Data: data}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", v); err != nil {
		return fmt.Errorf("render %s: %w", name, err)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
	return nil
}

func (h *Handler) asset(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("file")
	b, err := assetFS.ReadFile("assets/" + name)
	if err != nil || strings.Contains(name, "/") {
		return &Error{Status: http.StatusNotFound, Msg: "not found"}
	}
	switch path.Ext(name) {
	case ".css":
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
	case ".js":
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	case ".svg":
		w.Header().Set("Content-Type", "image/svg+xml")
	}
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.Write(b)
	return nil
}

func ago(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := time.Since(t)
	switch {
	case d < 0:
		return "in " + (-d).Round(time.Second).String()
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}

package sitecfg

import (
	"errors"
	"flag"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// flagDef is a setting's command-line flag: the Update field it fills
// (by JSON name) and how its text becomes that field. The rule itself stays
// in Apply; set only parses the command line's syntax.
type flagDef struct {
	field, name, usage string
	set                func(u *Update, v string) error
}

// flagDefs lists the flags in the order `capirelay site … -h` shows them.
var flagDefs = []flagDef{
	{"name", "name", "site name", func(u *Update, v string) error { u.Name = &v; return nil }},
	{"domains", "domain", "a domain of the site; repeat for more (set: replaces the domains)", func(u *Update, v string) error {
		if u.Domains == nil {
			u.Domains = &[]string{}
		}
		*u.Domains = append(*u.Domains, v)
		return nil
	}},
	{"pixel_id", "pixel-id", "Meta pixel (dataset) id, 5 to 20 digits", func(u *Update, v string) error { u.PixelID = &v; return nil }},
	{"access_token", "access-token", "Conversions API access token (without one the site uses the sandbox)", func(u *Update, v string) error {
		u.AccessToken = &v
		return nil
	}},
	{"test_event_code", "test-event-code", "Meta test_event_code sent with every event (\"none\" or \"\" to clear)", func(u *Update, v string) error {
		u.TestEventCode = new(orNone(v))
		return nil
	}},
	{"consent", "consent", "none, required or ldu", func(u *Update, v string) error { u.Consent = &v; return nil }},
	{"default_region", "default-region", "ISO country code for phones without one (e.g. us, gb)", func(u *Update, v string) error {
		u.DefaultRegion = &v
		return nil
	}},
	{"partial_leads", "partial-leads", "capture or off", func(u *Update, v string) error {
		b, err := onOff(v, "capture")
		u.PartialLeads = &b
		return err
	}},
	{"partial_lead_timeout_minutes", "partial-lead-timeout", "idle time before an unsubmitted form becomes a partial lead, whole minutes (e.g. 20m, 1h)", func(u *Update, v string) error {
		n, err := wholeUnits(v, time.Minute, "20m")
		u.PartialLeadTimeout = &n
		return err
	}},
	{"partial_lead_forward", "partial-lead-forward", "on or off: send partial leads to Meta (needs consent)", func(u *Update, v string) error {
		b, err := onOff(v, "on")
		u.PartialLeadForward = &b
		return err
	}},
	{"partial_lead_event", "partial-lead-event", "event name for forwarded partial leads (default PartialLead)", func(u *Update, v string) error {
		if strings.TrimSpace(v) == "" {
			return errors.New("the event name is empty (PartialLead is the default)")
		}
		u.PartialLeadEvent = &v
		return nil
	}},
	{"webhook_url", "webhook-url", "URL that receives partial leads (\"none\" to clear)", func(u *Update, v string) error {
		u.WebhookURL = new(orNone(v))
		return nil
	}},
	{"webhook_allow_http", "webhook-allow-http", "on or off: let the webhook URL be plain http", func(u *Update, v string) error {
		b, err := onOff(v, "on")
		u.WebhookAllowHTTP = &b
		return err
	}},
	{"webhook_allow_private", "webhook-allow-private", "on or off: let the webhook reach loopback, private and CGNAT addresses (never link-local or metadata)", func(u *Update, v string) error {
		b, err := onOff(v, "on")
		u.WebhookAllowPrivate = &b
		return err
	}},
	{"retention_days", "retention", "how long partial leads are kept, whole days (e.g. 720h)", func(u *Update, v string) error {
		n, err := wholeUnits(v, 24*time.Hour, "720h")
		u.RetentionDays = &n
		return err
	}},
	{"identity", "identity", "identity stitching: full (link events by visitor id, external_id, email), visitor (same browser only) or off", func(u *Update, v string) error {
		u.Identity = &v
		return nil
	}},
	{"click_window_days", "click-window", "how long after a click its fbc is added to the person's later events, days (e.g. 7 or 168h)", func(u *Update, v string) error {
		n, err := days(v)
		u.ClickWindowDays = &n
		return err
	}},
}

// Flags registers on fs the flags of the named settings (JSON names), or of
// every setting but the access token when none are named. After fs.Parse,
// u holds the settings whose flags were given.
func (u *Update) Flags(fs *flag.FlagSet, fields ...string) {
	for _, d := range flagDefs {
		if len(fields) == 0 && d.field == "access_token" || len(fields) > 0 && !slices.Contains(fields, d.field) {
			continue
		}
		fs.Func(d.name, d.usage, func(v string) error { return d.set(u, v) })
	}
}

// FlagError rewrites a refused setting to name its command-line flag
// ("--default-region: …"); other errors are returned as they are.
func FlagError(err error) error {
	var se *Error
	if !errors.As(err, &se) {
		return err
	}
	for _, d := range flagDefs {
		if d.field == se.Field {
			return fmt.Errorf("--%s: %s", d.name, se.Message)
		}
	}
	return err
}

// orNone reads the command line's way to clear a text setting.
func orNone(v string) string {
	if strings.TrimSpace(v) == "none" {
		return ""
	}
	return v
}

func onOff(v, on string) (bool, error) {
	switch strings.TrimSpace(v) {
	case on, "on":
		return true, nil
	case "off":
		return false, nil
	}
	return false, fmt.Errorf("must be %s or off", on)
}

// wholeUnits reads a Go duration ("20m", "720h") as a whole number of unit.
func wholeUnits(v string, unit time.Duration, example string) (int, error) {
	d, err := time.ParseDuration(strings.TrimSpace(v))
	if err != nil || d <= 0 || d%unit != 0 {
		return 0, fmt.Errorf("must be a whole number of %s, such as %s", unitName(unit), example)
	}
	return int(d / unit), nil
}

// days reads a number of days ("7") or a Go duration of whole days ("168h").
func days(v string) (int, error) {
	if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
		return n, nil
	}
	return wholeUnits(v, 24*time.Hour, "7 or 168h")
}

func unitName(unit time.Duration) string {
	if unit == time.Minute {
		return "minutes"
	}
	return "days"
}

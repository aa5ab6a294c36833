package event

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/capirelay/capirelay/internal/metarules"
)

// eventWith is a valid website event with extra members spliced in.
func eventWith(extra string) []byte {
	return []byte(`{"event_name":"Lead","event_time":1760000000,"action_source":"website",` +
		`"event_source_url":"https://shop.example.com/","user_data":{"client_user_agent":"Mozilla/5.0"` + extra + `}`)
}

func quoted(n int, f string) string {
	vs := make([]string, n)
	for i := range vs {
		vs[i] = fmt.Sprintf(`"`+f+`"`, i)
	}
	return strings.Join(vs, ",")
}

func TestDecodeRefusesEventsOverTheLimits(t *testing.T) {
	for _, c := range []struct {
		name, raw, field, msg string
	}{
		{"em values", string(eventWith(`,"em":[` + quoted(40000, "u%d@example.com") + `]}`)), "data[0].user_data.em", "has 40000 values; at most 20"},
		{"ph values", string(eventWith(`,"ph":[` + quoted(21, "+1650555%04d") + `]}`)), "data[0].user_data.ph", "has 21 values; at most 20"},
		{"all keys", string(eventWith(`,"em":[` + quoted(20, "a%d@x.co") + `],"ph":[` + quoted(20, "1%d") + `],"fn":[` + quoted(20, "f%d") +
			`],"ln":[` + quoted(20, "l%d") + `],"ct":[` + quoted(20, "c%d") + `],"zp":[` + quoted(1, "%d") + `]}`)), "data[0].user_data", "has 101 values in its hashed keys; at most 100"},
		{"custom_data size", string(eventWith(`},"custom_data":{"note":"` + strings.Repeat("x", MaxRawBytes) + `"}`)), "data[0].custom_data", "bytes; at most 65536"},
		{"custom_data depth", string(eventWith(`},"custom_data":{"a":` + strings.Repeat("[", 11) + strings.Repeat("]", 11) + `}`)), "data[0].custom_data", "nested deeper than 10"},
		{"contents", string(eventWith(`},"custom_data":{"contents":[` + quoted(1001, "%d") + `]}`)), "data[0].custom_data.contents", "has 1001 items"},
		{"content_ids", string(eventWith(`},"custom_data":{"content_ids":[` + quoted(1001, "%d") + `]}`)), "data[0].custom_data.content_ids", "has 1001 items"},
		{"app_data size", string(eventWith(`},"app_data":{"x":"` + strings.Repeat("x", MaxRawBytes) + `"}`)), "data[0].app_data", "at most 65536"},
		{"custom_data value not UTF-8", string(eventWith("},\"custom_data\":{\"contents\":[{\"id\":\"a\xff\"}]}")), "data[0].custom_data.contents[0].id", "is not valid UTF-8"},
		{"custom_data key not UTF-8", string(eventWith("},\"custom_data\":{\"k\xc3(\":1}")), "data[0].custom_data", "has a key that is not valid UTF-8"},
		{"original_event_data not UTF-8", string(eventWith("},\"original_event_data\":{\"event_name\":\"\xed\xa0\x80\"}")), "data[0].original_event_data.event_name", "is not valid UTF-8"},
	} {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			_, err := Decode([]byte(c.raw), "data[0]")
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != c.field || !strings.Contains(fe.Message, c.msg) {
				t.Fatalf("Decode = %v, want %s: …%s…", err, c.field, c.msg)
			}
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("refusing took %v", took) // linear work: milliseconds, even on a busy machine
			}
			// The one-pass batch decoder leaves such an event to Decode.
			if _, _, ok := DecodeBatch([]byte(`{"data":[` + c.raw + `]}`)); ok {
				t.Error("DecodeBatch took the event")
			}
		})
	}
	// At the limits, an event is taken.
	ok := eventWith(`,"em":[` + quoted(20, "a%d@x.co") + `],"ph":[` + quoted(20, "1%d") + `]},"custom_data":{"contents":[` + quoted(1000, "%d") + `]}`)
	if _, err := Decode(ok, "data[0]"); err != nil {
		t.Fatalf("event at the limits refused: %v", err)
	}
}

func TestCheckUTF8NamesTheString(t *testing.T) {
	for _, c := range []struct{ raw, field, msg string }{
		{"{\"data\":[{\"a\":1},{\"b\":[\"ok\",\"\xff\"]}]}", "data[1].b[1]", "is not valid UTF-8"},
		{"{\"data\":[{\"user_data\":{\"em\":\"\xc0\xaf\"}}]}", "data[0].user_data.em", "is not valid UTF-8"},
		{"{\"\xff\":1}", "", "has a key that is not valid UTF-8"},
		{"\"\xff\"", "", "is not valid UTF-8"},
		{"{\"a\":\"\xff\"", "a", "is not valid UTF-8"}, // unterminated: named as far as it goes
		{"[1,\xff]", "", "is not valid UTF-8"},         // not JSON: the path cannot be told
	} {
		err := CheckUTF8([]byte(c.raw), "")
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != c.field || fe.Message != c.msg {
			t.Errorf("CheckUTF8(%q) = %v, want %q: %s", c.raw, err, c.field, c.msg)
		}
	}
	if err := CheckUTF8([]byte(`{"a":"é\u00e9"}`), "x"); err != nil {
		t.Errorf("valid UTF-8 refused: %v", err)
	}
}

// TestPurchaseNeedsValueWithoutCustomData: Meta requires value and
// currency on a Purchase whether custom_data is there or not.
func TestPurchaseNeedsValueWithoutCustomData(t *testing.T) {
	now := time.Unix(1760000000, 0)
	for _, c := range []struct {
		name, custom string
		ok           bool
	}{
		{"no custom_data", ``, false},
		{"null custom_data", `,"custom_data":null`, false},
		{"empty custom_data", `,"custom_data":{}`, false},
		{"value and currency", `,"custom_data":{"value":1,"currency":"EUR"}`, true},
	} {
		raw := `{"event_name":"Purchase","event_time":1760000000,"action_source":"email","user_data":{"em":"a@b.co"}` + c.custom + `}`
		ev, err := Decode([]byte(raw), "data[0]")
		if err != nil {
			t.Fatal(err)
		}
		err = ev.Prepare(now, "data[0]")
		if c.ok != (err == nil) {
			t.Errorf("%s: Prepare = %v", c.name, err)
		}
		var fe *FieldError
		if !c.ok && (!errors.As(err, &fe) || fe.Field != "data[0].custom_data" || !strings.Contains(fe.Message, "requires value and currency")) {
			t.Errorf("%s: error %v does not name custom_data", c.name, err)
		}
	}
	lead := &Event{EventName: "Lead", EventTime: Time(now.Unix()), ActionSource: "email"}
	if err := lead.Prepare(now, ""); err != nil {
		t.Errorf("a Lead without custom_data is refused: %v", err)
	}
}

// FuzzDecodeLimits: the fast path's count of the values it does not keep
// gives Decode the same answer as encoding/json and CheckLimits.
func FuzzDecodeLimits(f *testing.F) {
	f.Add(21, 0, `"x"`)
	f.Add(19, 25, `null`)
	f.Add(40, 3, `"a\u00e9\\"b"`)
	f.Fuzz(func(t *testing.T, em, ph int, elem string) {
		em, ph = em%200, ph%200
		if em < 0 || ph < 0 {
			return
		}
		list := func(n int) string {
			vs := make([]string, n)
			for i := range vs {
				vs[i] = elem
				if i%2 == 0 {
					vs[i] = fmt.Sprintf(`"v%d"`, i)
				}
			}
			return "[" + strings.Join(vs, ",") + "]"
		}
		agree(t, eventWith(`,"ph":`+list(ph)+`,"em":`+list(em)+`}`))
	})
}

// TestDeviceFieldsAreChecked: client_ip_address, fbc and fbp go to Meta as
// they are, so one of another shape (an address put in the wrong field)
// is refused at ingest, naming the field, instead of being stored and sent.
func TestDeviceFieldsAreChecked(t *testing.T) {
	now := time.Unix(1760000000, 0)
	for _, c := range []struct {
		user    string
		field   string // "" when valid
		subcode int
	}{
		{`"client_ip_address":"203.0.113.7","fbc":"fb.1.1759999000000.IwAR2F4-x_Y","fbp":"fb.1.1759999000000.1116446470"`, "", 0},
		{`"client_ip_address":"2001:db8::1","fbc":"fb.1.1759999000000.IwAR2F4.AQQCAQAA","fbp":"fb.2.1759999000000.1116446470.BA"`, "", 0},
		{`"client_ip_address":"john@example.com"`, "client_ip_address", 0},
		{`"client_ip_address":"999.1.1.1"`, "client_ip_address", 0},
		{`"client_ip_address":" 203.0.113.7"`, "client_ip_address", 0},
		{`"fbc":"john@example.com"`, "fbc", metarules.SubcodeBadClickID},
		{`"fbc":"fb.1.1759999000000"`, "fbc", metarules.SubcodeBadClickID},
		{`"fbc":"IwAR2F4-x_Y"`, "fbc", metarules.SubcodeBadClickID},
		{`"fbp":"Jane Doe +1 555 0100"`, "fbp", 0},
		{`"fbp":"fb.1.1759999000000.1116446470.XX"`, "fbp", 0},
	} {
		raw := `{"event_name":"Lead","event_time":1760000000,"action_source":"system_generated","user_data":{"em":"a@b.co",` + c.user + `}}`
		ev, err := Decode([]byte(raw), "data[3]")
		if err != nil {
			t.Fatal(err)
		}
		err = ev.Prepare(now, "data[3]")
		if c.field == "" {
			if err != nil {
				t.Errorf("%s: refused: %v", c.user, err)
			}
			continue
		}
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != "data[3].user_data."+c.field || fe.Subcode != c.subcode {
			t.Errorf("%s: error %v, want one naming data[3].user_data.%s with subcode %d", c.user, err, c.field, c.subcode)
		} else if strings.Contains(fe.Message, "example.com") || strings.Contains(fe.Message, "555") {
			t.Errorf("%s: the message %q repeats the value", c.user, fe.Message)
		}
	}
}

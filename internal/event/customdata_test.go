package event

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/capirelay/capirelay/internal/metarules"
)

// checkCustomDataJSON is checkCustomData as it was before the scan: every
// custom_data through encoding/json. The scan must agree with it.
func checkCustomDataJSON(ev *Event, p func(string) string) error {
	var cd struct {
		Value    json.RawMessage `json:"value"`
		Currency *string         `json:"currency"`
	}
	if err := json.Unmarshal(ev.CustomData, &cd); err != nil {
		return &FieldError{Field: p("custom_data"), Message: "must be an object"}
	}
	hasValue := len(cd.Value) > 0 && string(cd.Value) != "null"
	if hasValue {
		var f float64
		if err := json.Unmarshal(cd.Value, &f); err != nil {
			var s string
			if json.Unmarshal(cd.Value, &s) != nil {
				return &FieldError{Field: p("custom_data.value"), Message: "must be a number"}
			}
			f, ok := metarules.ParseValue(s)
			if !ok {
				return &FieldError{Field: p("custom_data.value"), Message: "must be a number (or a string holding one)"}
			}
			ev.CustomData = replaceKey(ev.CustomData, "value", strconv.AppendFloat(nil, f, 'f', -1, 64))
		}
	}
	if cd.Currency != nil {
		c := strings.ToUpper(strings.TrimSpace(*cd.Currency))
		if !metarules.IsCurrency(c) {
			return &FieldError{Field: p("custom_data.currency"), Message: "must be an ISO 4217 code such as USD or EUR"}
		}
		if c != *cd.Currency {
			q, _ := json.Marshal(c)
			ev.CustomData = replaceKey(ev.CustomData, "currency", q)
		}
	}
	if hasValue && cd.Currency == nil {
		return &FieldError{Field: p("custom_data.currency"), Message: "is required when value is set"}
	}
	if ev.EventName == "Purchase" && (!hasValue || cd.Currency == nil) {
		return &FieldError{Field: p("custom_data"), Message: "Purchase requires value and currency"}
	}
	// Personal data goes (scrubCustomData), by the rebuilding half of it.
	d := json.NewDecoder(bytes.NewReader(ev.CustomData))
	d.UseNumber()
	var v any
	if d.Decode(&v) == nil {
		if _, isObject := v.(map[string]any); isObject {
			v, _ = scrubJSON(v, false)
			ev.CustomData, _ = json.Marshal(v)
		}
	}
	return nil
}

var customDataSeeds = []string{
	`{"value":49.9,"currency":"USD","content_ids":["sku-1","sku-2"],"num_items":2}`,
	` { "value" : 1 , "currency" : "eur" } `,
	`{"currency":"usd","value":"12"}`,
	`{"value":null,"currency":null}`,
	`{"Value":1,"CURRENCY":"USD"}`,
	`{"value":1,"value":null,"currency":"USD"}`,
	`{"value":1e400,"currency":"USD"}`,
	`{"value":-0.5e-3,"currency":"USD"}`,
	`{"value":01,"currency":"USD"}`,
	`{"value":true,"currency":"USD"}`,
	`{"value":{"a":[1,"}"]},"currency":"USD"}`,
	`{"currency":5}`,
	`{"currency":"usd","currency":5}`,
	`{"currency":"usd","currency":null,"value":3}`,
	`{"currency":"US\u0044","value":3}`,
	`{"currency":"usd ","value":3}`,
	`{"currency":"XXX","value":3}`,
	`{"val\u0075e":1,"currency":"USD"}`,
	`{"contents":[{"id":"a\"b","quantity":1}],"value":2,"currency":"GBP"}`,
	`{}`,
	`null`,
	`[]`,
	`"x"`,
	`{"value":1,}`,
	`{"value":1`,
	`{"a":"\u00e9","value":1,"currency":"JPY"}`,
	`{"a":"é","value":1,"currency":"JPY"}`,
	"{\"currency\":\"usd\",\"value\":1}\n",
	`{"value" :2, "currency":"chf" , "x":{"y":[true,false,null]}}`,
}

// sameCheck runs both versions on copies of raw and fails if their errors or
// the resulting custom_data differ.
func sameCheck(t *testing.T, name, raw string) {
	t.Helper()
	p := func(f string) string { return "data[0]." + f }
	a := &Event{EventName: name, CustomData: json.RawMessage(raw)}
	b := &Event{EventName: name, CustomData: json.RawMessage(raw)}
	errA, errB := checkCustomData(a, p), checkCustomDataJSON(b, p)
	if !reflect.DeepEqual(errA, errB) {
		t.Fatalf("%s %q: error %v, encoding/json gives %v", name, raw, errA, errB)
	}
	if errA == nil && !sameJSON(a.CustomData, b.CustomData) {
		t.Fatalf("%s %q: custom_data %s, encoding/json gives %s", name, raw, a.CustomData, b.CustomData)
	}
}

// sameJSON reports whether a and b decode to the same value (numbers
// compared as written). encoding/json's version rebuilds the object, with
// its keys sorted; the scan's replaces a value where it stands.
func sameJSON(a, b []byte) bool {
	decode := func(raw []byte) (any, bool) {
		d := json.NewDecoder(bytes.NewReader(raw))
		d.UseNumber()
		var v any
		return v, d.Decode(&v) == nil
	}
	va, okA := decode(a)
	vb, okB := decode(b)
	return okA == okB && reflect.DeepEqual(va, vb)
}

// TestCustomDataRewrittenInPlace checks that a lower-case currency and a
// value sent as a string are replaced where they stand: every other byte
// stays, in its order, and the object is not rebuilt.
func TestCustomDataRewrittenInPlace(t *testing.T) {
	t.Parallel()
	p := func(f string) string { return f }
	for _, c := range []struct{ in, want string }{
		{`{"value":49.9,"currency":"usd","content_ids":["b","a"]}`, `{"value":49.9,"currency":"USD","content_ids":["b","a"]}`},
		{`{"currency":"eur" ,"z":1, "value" : "12.50","a":{"x":"<&>"}}`, `{"currency":"EUR" ,"z":1, "value" : 12.5,"a":{"x":"<&>"}}`},
		{`{"order_id":"A-1","value":"7","currency":"CAD"}`, `{"order_id":"A-1","value":7,"currency":"CAD"}`},
		// Spelled otherwise, or twice: the object is rebuilt under the
		// name Graph reads, as before.
		{`{"Currency":"usd","value":1}`, `{"currency":"USD","value":1}`},
		{`{"value":"1","Value":"2","currency":"USD"}`, `{"currency":"USD","value":2}`},
	} {
		ev := Event{EventName: "Purchase", CustomData: json.RawMessage(c.in)}
		if err := checkCustomData(&ev, p); err != nil {
			t.Fatalf("%s: %v", c.in, err)
		}
		if string(ev.CustomData) != c.want {
			t.Errorf("%s: custom_data %s, want %s", c.in, ev.CustomData, c.want)
		}
	}
}

// TestLowerCaseCurrencyAllocations: upper-casing a currency costs its
// copies and the new object, not a rebuild through encoding/json (36
// allocations).
func TestLowerCaseCurrencyAllocations(t *testing.T) {
	raw := []byte(`{"value":49.9,"currency":"usd","content_ids":["sku-1","sku-2"],"num_items":2}`)
	p := func(f string) string { return f }
	n := testing.AllocsPerRun(100, func() {
		ev := Event{EventName: "Purchase", CustomData: raw}
		if err := checkCustomData(&ev, p); err != nil {
			t.Fatal(err)
		}
	})
	if n > 8 {
		t.Errorf("%v allocations, want at most 8", n)
	}
}

func TestCheckCustomDataAgreesWithJSON(t *testing.T) {
	t.Parallel()
	for _, raw := range customDataSeeds {
		for _, name := range []string{"Purchase", "Lead"} {
			sameCheck(t, name, raw)
		}
	}
}

// TestCustomDataScan checks that the scan takes on the usual shapes (so the
// agreement above is not with itself) and reads them as encoding/json does.
func TestCustomDataScan(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{
		`{"value":49.9,"currency":"USD","content_ids":["sku-1","sku-2"],"num_items":2}`,
		` { "value" : 1 , "currency" : "eur" } `,
		`{"Value":1,"CURRENCY":"USD","value":2}`,
		`{"currency":"usd","currency":null}`,
		`{"contents":[{"id":"a\"b","quantity":1}],"value":"2","currency":"GBP"}`,
		`{}`,
	} {
		var got, want customData
		if !got.scan([]byte(raw)) {
			t.Errorf("scan(%s) fell back", raw)
			continue
		}
		if err := json.Unmarshal([]byte(raw), &want); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got.Currency, want.Currency) || string(got.Value) != string(want.Value) {
			t.Errorf("scan(%s) = %s/%v, encoding/json %s/%v", raw, got.Value, got.Currency, want.Value, want.Currency)
		}
	}
	for _, raw := range []string{`null`, `{"currency":5}`, `{"val\u0075e":1}`, `{"value":1,}`, `{"currency":"\u0055SD"}`} {
		var cd customData
		if cd.scan([]byte(raw)) {
			t.Errorf("scan(%s) took on what encoding/json must decide", raw)
		}
	}
}

// FuzzCheckCustomData compares checkCustomData with the encoding/json
// version on arbitrary custom_data.
func FuzzCheckCustomData(f *testing.F) {
	for _, s := range customDataSeeds {
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, raw string, purchase bool) {
		name := "Lead"
		if purchase {
			name = "Purchase"
		}
		sameCheck(t, name, raw)
	})
}

func BenchmarkCheckCustomData(b *testing.B) {
	benchmarkCheck(b, checkCustomData, `{"value":49.9,"currency":"USD","content_ids":["sku-1","sku-2"],"num_items":2}`)
}

// BenchmarkCheckCustomDataJSON is the encoding/json version, for comparison.
func BenchmarkCheckCustomDataJSON(b *testing.B) {
	benchmarkCheck(b, checkCustomDataJSON, `{"value":49.9,"currency":"USD","content_ids":["sku-1","sku-2"],"num_items":2}`)
}

// BenchmarkCheckCustomDataLowerCase is a currency in lower case and a
// value sent as a string: both replaced.
func BenchmarkCheckCustomDataLowerCase(b *testing.B) {
	benchmarkCheck(b, checkCustomData, `{"value":"49.90","currency":"usd","content_ids":["sku-1","sku-2"],"num_items":2,"order_id":"a7k2"}`)
}

// benchmarkCheck runs check on a Purchase with custom_data raw.
func benchmarkCheck(b *testing.B, check func(*Event, func(string) string) error, raw string) {
	cd := json.RawMessage(raw)
	p := func(f string) string { return f }
	ev := new(Event) // one, reset each time: check escapes it
	b.ReportAllocs()
	for b.Loop() {
		*ev = Event{EventName: "Purchase", CustomData: cd}
		if err := check(ev, p); err != nil {
			b.Fatal(err)
		}
	}
}

package event

import (
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/capirelay/capirelay/internal/metarules"
)

// checkMatchKeys is CheckMatch without the strongKey shortcut.
func checkMatchKeys(ev *Event, path string) error {
	f := "user_data"
	if path != "" {
		f = path + "." + f
	}
	if keys := ev.UserData.Keys(); metarules.IsThin(keys) {
		return &FieldError{Field: f, Message: metarules.ThinMessage(keys), Subcode: metarules.SubcodeThinMatch}
	}
	return nil
}

// TestCheckMatchShortcut fills random sets of user_data fields (every
// field, found by reflection, so a new one takes part) and compares
// CheckMatch with the version that always lists the keys.
func TestCheckMatchShortcut(t *testing.T) {
	t.Parallel()
	for _, k := range []string{"em", "ph", "external_id", "client_ip_address", "fbc", "fbp"} {
		for _, set := range metarules.ThinSets {
			if metarules.Has(set, k) {
				t.Fatalf("strongKey counts %s, which is in a thin set", k)
			}
		}
	}
	r := rand.New(rand.NewPCG(9, 10))
	typ := reflect.TypeFor[UserData]()
	var shortcut int
	for i := 0; i < 50_000; i++ {
		var ev Event
		v := reflect.ValueOf(&ev.UserData).Elem()
		for j := range typ.NumField() {
			if r.IntN(typ.NumField()/2) != 0 {
				continue
			}
			switch fv := v.Field(j); fv.Kind() {
			case reflect.String:
				fv.SetString("x")
			case reflect.Slice:
				fv.Set(reflect.ValueOf([]string{"x"}).Convert(fv.Type()))
			default:
				t.Fatalf("user_data field %s of kind %s", typ.Field(j).Name, fv.Kind())
			}
		}
		got, want := ev.CheckMatch("data[1]"), checkMatchKeys(&ev, "data[1]")
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("CheckMatch(%+v) = %v, want %v", ev.UserData, got, want)
		}
		if ev.UserData.strongKey() {
			shortcut++
		}
	}
	if shortcut < 10_000 || shortcut > 45_000 {
		t.Errorf("shortcut taken %d times in 50000", shortcut)
	}
}

// The event's fields are the rulebook's: a key the rulebook allows but the
// decoder does not (or the reverse) fails here, not at a customer.
func TestFieldsAreTheRulebooks(t *testing.T) {
	t.Parallel()
	tags := func(typ reflect.Type) map[string]bool {
		m := map[string]bool{}
		for i := range typ.NumField() {
			if name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ","); name != "-" { // "-": not Meta's, never sent
				m[name] = true
			}
		}
		return m
	}
	for _, c := range []struct {
		typ  reflect.Type
		list []string
	}{{reflect.TypeFor[Event](), metarules.EventFields}, {reflect.TypeFor[UserData](), metarules.UserDataFields}} {
		got := tags(c.typ)
		for _, k := range c.list {
			if !got[k] {
				t.Errorf("%s has no field %s", c.typ.Name(), k)
			}
			delete(got, k)
		}
		for k := range got {
			t.Errorf("%s has field %s, which the rulebook does not list", c.typ.Name(), k)
		}
	}
}

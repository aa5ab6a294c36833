package event

import (
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

// checkMatchKeys is CheckMatch without the strongKey shortcut.
func checkMatchKeys(ev *Event, path string) error {
	f := "user_data"
	if path != "" {
		f = path + "." + f
	}
	keys := ev.UserData.Keys()
	if len(keys) == 0 {
		return &FieldError{Field: f, Message: "has no usable customer information (em, ph, fbp, fbc, client_ip_address, external_id, ...)"}
	}
	for _, set := range thinSets {
		thin := true
		for _, k := range keys {
			if !set[k] {
				thin = false
				break
			}
		}
		if thin {
			return &FieldError{Field: f, Message: "has too little customer information to match (" + strings.Join(keys, ", ") + "); add em, ph, fbp, fbc, external_id or client_ip_address"}
		}
	}
	return nil
}

// TestCheckMatchShortcut fills random sets of user_data fields (every
// field, found by reflection, so a new one takes part) and compares
// CheckMatch with the version that always lists the keys.
func TestCheckMatchShortcut(t *testing.T) {
	t.Parallel()
	for _, k := range []string{"em", "ph", "external_id", "client_ip_address", "fbc", "fbp"} {
		for _, set := range thinSets {
			if set[k] {
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

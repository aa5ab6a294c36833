package event

import (
	"encoding/json"
	"reflect"
	"slices"
	"testing"

	"github.com/capirelay/capirelay/internal/metarules"
)

// TestUserDataTableDrivesEveryReader: each row of the rulebook
// (metarules.UserDataKeys) is a UserData field that the fast decoder
// reads, AppendJSON writes, Keys lists, ValueBytes counts and List finds
// exactly as encoding/json and the rulebook say. A key added to the rulebook and the
// struct is covered here with no other change.
func TestUserDataTableDrivesEveryReader(t *testing.T) {
	if len(userDataFields) != len(metarules.UserDataKeys) {
		t.Fatalf("%d fields, %d rules", len(userDataFields), len(metarules.UserDataKeys))
	}
	for i, rule := range metarules.UserDataKeys {
		if got := userDataIndex([]byte(rule.Name)); got != i {
			t.Errorf("%s: userDataIndex = %d, want %d", rule.Name, got, i)
		}
		values := []string{`"v\u00e9"`, `null`}
		switch userDataFields[i].typ {
		case listValue:
			values = append(values, `["a","b"]`, `[]`, `[null,"c"]`)
		case idValue:
			values = append(values, `1234567890`)
		}
		for _, v := range values {
			raw := []byte(`{"event_name":"Lead","event_time":1760000000,"user_data":{"` + rule.Name + `":` + v + `}}`)
			fast, ok := decodeFast(raw)
			if !ok {
				t.Errorf("%s: the fast decoder does not read %s", rule.Name, raw)
				continue
			}
			slow, err := decodeSlow(raw, "")
			if err != nil {
				t.Fatalf("%s: %v", raw, err)
			}
			if !reflect.DeepEqual(fast, slow) {
				t.Errorf("%s: fast decoder gives %+v, encoding/json %+v", raw, fast.UserData, slow.UserData)
			}
			want, _ := json.Marshal(&slow.UserData)
			if got := fast.UserData.AppendJSON(nil); string(got) != string(want) {
				t.Errorf("%s: AppendJSON writes %s, encoding/json %s", raw, got, want)
			}
			if n := fast.UserData.ValueBytes(); (n > 0) != (string(want) != "{}") {
				t.Errorf("%s: ValueBytes = %d", raw, n)
			}
			keys := fast.UserData.Keys()
			if has := string(want) != "{}"; !slices.Equal(keys, []string{rule.Name}) && has || !has && len(keys) > 0 {
				t.Errorf("%s: Keys = %v", raw, keys)
			}
		}
		// A repeated key is left to encoding/json (whose last one wins).
		dup := []byte(`{"user_data":{"` + rule.Name + `":null,"` + rule.Name + `":null}}`)
		if _, ok := decodeFast(dup); ok {
			t.Errorf("%s: the fast decoder took a repeated key", dup)
		}
		var u UserData
		isList := rule.Kind == metarules.HashedList || rule.Kind == metarules.IDList
		if (u.List(rule.Name) != nil) != isList {
			t.Errorf("%s: List gives %v, but the key's kind is %d", rule.Name, u.List(rule.Name), rule.Kind)
		}
	}
	if userDataIndex([]byte("e")) >= 0 || userDataIndex([]byte("emx")) >= 0 || userDataIndex([]byte(nil)) >= 0 {
		t.Error("userDataIndex finds keys that do not exist")
	}
}

// TestHashExtrasFollowsTheRulebook: exactly the HashedSingle keys are
// hashed.
func TestHashExtrasFollowsTheRulebook(t *testing.T) {
	var u UserData
	for i := range userDataFields {
		if f := &userDataFields[i]; f.typ != listValue {
			*f.text(&u) = "12"
		}
	}
	u.HashExtras()
	for i := range userDataFields {
		f := &userDataFields[i]
		if f.typ == listValue {
			continue
		}
		hashed := *f.text(&u) != "12"
		if want := f.Kind == metarules.HashedSingle; hashed != want {
			t.Errorf("%s: hashed %v, want %v", f.Name, hashed, want)
		}
	}
}

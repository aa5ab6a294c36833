package event

import (
	"fmt"
	"reflect"
	"strings"
	"unsafe"

	"github.com/capirelay/capirelay/internal/metarules"
)

// userDataField is one user_data key: its rule (metarules.UserDataKeys)
// and where UserData keeps its value. The fast decoder, Keys, List,
// AppendJSON, ValueBytes and HashExtras all walk userDataFields, so a new
// key is a row in metarules.UserDataKeys plus its field in UserData.
type userDataField struct {
	metarules.UserDataKey
	typ    valueType
	offset uintptr // of the field in UserData
	list   int     // for a List: its index in hashableKeys; else -1
}

// valueType is the Go type of a user_data field.
type valueType uint8

const (
	listValue valueType = iota // List
	textValue                  // string
	idValue                    // FlexString: a string or an integer id
)

// userDataFields are UserData's fields in order, which is Meta's.
var userDataFields = buildUserDataFields()

// maxUserDataFields bounds the table: the fast decoder marks the keys it
// has seen in a uint64.
const maxUserDataFields = 64

// buildUserDataFields reads UserData's json tags against the rulebook. It
// panics (at start-up, and in every test) if they disagree: a field with
// no row, a row with no field, another order, or a type that does not fit
// the key's kind.
func buildUserDataFields() []userDataField {
	t := reflect.TypeFor[UserData]()
	rules := metarules.UserDataKeys
	if t.NumField() != len(rules) || len(rules) > maxUserDataFields {
		panic(fmt.Sprintf("event: UserData has %d fields, metarules.UserDataKeys %d rows (at most %d)",
			t.NumField(), len(rules), maxUserDataFields))
	}
	out := make([]userDataField, len(rules))
	nlists := 0
	for i, rule := range rules {
		sf := t.Field(i)
		name, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
		f := userDataField{UserDataKey: rule, offset: sf.Offset, list: -1}
		switch sf.Type {
		case reflect.TypeFor[List]():
			f.typ = listValue
		case reflect.TypeFor[string]():
			f.typ = textValue
		case reflect.TypeFor[FlexString]():
			f.typ = idValue
		default:
			panic("event: UserData." + sf.Name + " has type " + sf.Type.String() + ", not List, string or FlexString")
		}
		isList := rule.Kind == metarules.HashedList || rule.Kind == metarules.IDList
		if name != rule.Name || isList != (f.typ == listValue) || (f.typ == idValue && rule.Kind != metarules.Plain) {
			panic(fmt.Sprintf("event: UserData field %d is %s %q (%s); metarules.UserDataKeys row %d is %q of kind %d",
				i, sf.Name, name, sf.Type, i, rule.Name, rule.Kind))
		}
		if isList {
			if nlists >= len(hashableKeys) || hashableKeys[nlists] != name {
				panic("event: list key " + name + " is not next in hashableKeys")
			}
			f.list = nlists
			nlists++
		}
		out[i] = f
	}
	if nlists != len(hashableKeys) {
		panic("event: hashableKeys lists keys UserData does not have")
	}
	return out
}

// text returns the field's string in u (a FlexString's too); only for
// textValue and idValue fields.
func (f *userDataField) text(u *UserData) *string {
	// The offset and type come from reflect on UserData itself, checked
	// above: this is u's field, typed as it is declared (FlexString's
	// underlying type is string).
	return (*string)(unsafe.Add(unsafe.Pointer(u), f.offset))
}

// values returns the field's List in u; only for listValue fields.
func (f *userDataField) values(u *UserData) *List {
	return (*List)(unsafe.Add(unsafe.Pointer(u), f.offset))
}

// set reports whether u has a value for the field.
func (f *userDataField) set(u *UserData) bool {
	if f.typ == listValue {
		return len(*f.values(u)) > 0
	}
	return *f.text(u) != ""
}

// ValueBytes is the length of u's values, plus three bytes for each value
// of a list (its quotes and comma): what they add to AppendJSON's output
// besides the keys.
func (u *UserData) ValueBytes() int {
	n := 0
	for i := range userDataFields {
		f := &userDataFields[i]
		if f.typ != listValue {
			n += len(*f.text(u))
			continue
		}
		for _, v := range *f.values(u) {
			n += len(v) + 3
		}
	}
	return n
}

// userDataIndex returns the index in userDataFields of the key name, or
// -1. Keys are looked up among those of the same length and first byte,
// a handful at most, without hashing.
func userDataIndex[T string | []byte](name T) int {
	if len(name) == 0 || len(name) >= len(userDataByShape) {
		return -1
	}
	for _, i := range userDataByShape[len(name)][name[0]&31] {
		if userDataFields[i].Name == string(name) {
			return int(i)
		}
	}
	return -1
}

// userDataByShape indexes userDataFields by name length and by the low
// five bits of the first byte (the letters and '_' differ there).
var userDataByShape = func() (t [32][32][]uint8) {
	for i, f := range userDataFields {
		if len(f.Name) >= len(t) {
			panic("event: user_data key " + f.Name + " is longer than userDataByShape allows")
		}
		k := &t[len(f.Name)][f.Name[0]&31]
		*k = append(*k, uint8(i))
	}
	return t
}()

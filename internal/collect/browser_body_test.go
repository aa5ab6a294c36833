package collect

import (
	"mime"
	"reflect"
	"strings"
	"testing"
)

// tagBodies are bodies as t.js sends them: JSON.stringify of flush's object
// (v, vid, fbp, fbc, consent, lang, events) with the events of track, cap
// and consent in their key order, and the load generator's page view.
var tagBodies = []string{
	benchBeacon,
	`{"v":1,"vid":"2903451981402371891522793016","fbp":"fb.2.1700000000000.1234567890","fbc":"fb.2.1700000000000.IwAR2XyZ_mixedCASE","consent":"","lang":"en-GB","events":[{"type":"event","name":"PageView","id":"1187315239204185913731419284731","user":{"country":"gb"},"ref":"","url":"https://www.example.co.uk/landing?fbclid=IwAR2XyZ_mixedCASE"}]}`,
	`{"v":1,"vid":"2903451981402371891522793016","fbp":"fb.2.1700000000000.1234567890","fbc":"","consent":"granted","lang":"de-DE","events":[{"type":"capture","form":"signup","fields":{"em":"jane@example.com"},"url":"https://shop.example/"},{"type":"capture","form":"signup","fields":{"em":"jane@example.com","ph":"+49 30 1234567","fn":"Jürgen","ln":"Müller"},"url":"https://shop.example/"}]}`,
	`{"v":1,"vid":"2903451981402371891522793016","fbp":"fb.1.1700000000000.1234567890","fbc":"","consent":"","lang":"en-US","events":[{"type":"event","name":"Lead","id":"9182736450","form":"signup","submit":true,"user":{"country":"us","em":"jane@example.com","fn":"Jane"},"url":"https://shop.example/"}]}`,
	`{"v":1,"vid":"2903451981402371891522793016","fbp":"fb.1.1700000000000.1234567890","fbc":"","consent":"","lang":"en-US","events":[{"type":"event","name":"Purchase","id":"order-1001","data":{"value":42.5,"currency":"USD","contents":[{"id":"sku-1","quantity":2,"item_price":-1.25e2}],"gift":false,"note":null,"tag":"a\"b\u00e9"},"url":"https://shop.example/thanks"}]}`,
	`{"v":1,"vid":"2903451981402371891522793016","fbp":"","fbc":"","consent":"denied","lang":"fr","events":[{"type":"consent","state":"denied","prev":"2903451981402371891522793016","url":"https://shop.example/"}]}`,
	`{"consent":"","events":[{"id":"bench-0","name":"PageView","ref":"https://www.google.com/","type":"event","url":"http://127.0.0.1:8080/products/shoes?color=red"}],"fbp":"fb.1.1700000000000.123","lang":"en-US","v":1,"vid":"loadgen0123456789abcdef"}`,
	" {\n\t\"v\": 1, \"events\": [ ], \"url\" : \"https://x.example/\" } \r\n",
	`{"v":0,"site":"shop","events":[{"type":"event","name":"PageView","submit":false,"user":{},"fields":{},"data":[]}]}`,
	// larger than maxSharedBody: each field is its own copy
	`{"v":1,"vid":"2903451981402371891522793016","fbp":"","fbc":"","consent":"","lang":"en","events":[{"type":"event","name":"ViewContent","id":"1","url":"https://shop.example/p?` + strings.Repeat("utm_x=1&", 300) + `"}]}`,
}

func TestFastBrowserBodyTakesTheTagsBodies(t *testing.T) {
	t.Parallel()
	for _, raw := range tagBodies {
		fast, ok := fastBrowserBody([]byte(raw))
		if !ok {
			t.Errorf("fast path refused a tag body: %s", raw)
			continue
		}
		slow, err := slowBrowserBody([]byte(raw))
		if err != nil || !reflect.DeepEqual(fast, slow) {
			t.Errorf("%s:\nfast %+v\nslow %+v, %v", raw, fast, slow, err)
		}
	}
}

// Bodies the fast path leaves to encoding/json, which decodes or refuses
// them as before.
func TestFastBrowserBodyFallsBack(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{
		``, ` `, `null`, `[]`, `{`, `{"v":1}x`, `{"v":1}}`, `{"v":1} {"v":2}`, `{"v":1,}`, `{,"v":1}`,
		`{"v":1.0}`, `{"v":-1}`, `{"v":1e2}`, `{"v":"1"}`, `{"v":01}`, `{"v":1234567890123456789}`, `{"v":null}`,
		`{"vid":"a\"b"}`, `{"vid":"a\u0041"}`, "{\"vid\":\"a\tb\"}", "{\"vid\":\"\xff\"}", "{\"vid\":\"\xed\xa0\x80\"}",
		`{"VID":"0123456789abcdef"}`, `{"Events":[]}`, `{"x":1}`, `{"vid":"a","vid":"b"}`, `{"vid":null}`,
		`{"events":null}`, `{"events":{}}`, `{"events":[null]}`, `{"events":[{"name":"a","name":"b"}]}`,
		`{"events":[{"Name":"a"}]}`, `{"events":[{"submit":1}]}`, `{"events":[{"submit":null}]}`,
		`{"events":[{"user":null}]}`, `{"events":[{"user":{"em":1}}]}`, `{"events":[{"user":{"em":"a\n"}}]}`,
		`{"events":[{"user":{"e\u006d":"a"}}]}`, `{"events":[{"data":{"a":01}}]}`, `{"events":[{"data":{"a":1.}}]}`,
		`{"events":[{"data":{"a":"\x"}}]}`, `{"events":[{"data":{"a":"\u12"}}]}`, `{"events":[{"data":tru}]}`,
		`{"events":[{"data":` + strings.Repeat("[", maxFastDepth+2) + strings.Repeat("]", maxFastDepth+2) + `}]}`,
		`{"events":[{"type":"event"},]}`, `{"events":[{"type":"event"}}`,
		"\xef\xbb\xbf{\"v\":1}",
	} {
		if b, ok := fastBrowserBody([]byte(raw)); ok {
			t.Errorf("fast path took %q: %+v", raw, b)
		}
	}
}

// FuzzFastBrowserBody: whenever the fast path takes a body, encoding/json
// decodes it without error to exactly the same browserBody.
func FuzzFastBrowserBody(f *testing.F) {
	for _, raw := range tagBodies {
		f.Add(raw)
	}
	f.Add(`{"events":[{"data":null,"user":{"em":"a","em":"b"}}]}`)
	f.Add(`{"events":[{"data":"x\u00e9\/","submit":true,"submit":false}]}`)
	f.Add(`{"v":1,"vid":"\u0030"}`)
	f.Add(`{"events":[{"data":{"a":[1,-0.5e-3,true,false,null,{}]}}]}`)
	f.Fuzz(func(t *testing.T, raw string) {
		fast, ok := fastBrowserBody([]byte(raw))
		if !ok {
			return
		}
		slow, err := slowBrowserBody([]byte(raw))
		if err != nil {
			t.Fatalf("fast path took %q, encoding/json refuses it: %v", raw, err)
		}
		if !reflect.DeepEqual(fast, slow) {
			t.Fatalf("%q:\nfast %#v\nslow %#v", raw, fast, slow)
		}
	})
}

func TestKnownBodyTypes(t *testing.T) {
	t.Parallel()
	for _, ct := range knownBodyTypes {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "text/plain" && mt != "application/json") {
			t.Errorf("%q is no text/plain or application/json: %q, %v", ct, mt, err)
		}
	}
	for _, ct := range []string{"text/html", "text/plain;charset", "Text/Plain", "application/json;"} {
		if knownBodyType(ct) {
			t.Errorf("%q is taken as known", ct)
		}
	}
}

package capi_test

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/capirelay/capirelay/internal/capi"
)

func ExampleClassify() {
	for _, err := range []error{
		&capi.Error{Status: 400, Code: 100, Subcode: 2804003},
		&capi.Error{Status: 400, Code: 190, Subcode: 460},
		&capi.Error{Status: 400, Code: 17, Subcode: 2446079, Transient: true},
		&capi.Error{Status: 400, Code: 100, Subcode: 2804050},
	} {
		fmt.Println(capi.Classify(err))
	}
	// Output:
	// expired
	// auth
	// transient
	// invalid
}

func ExampleValidateEvent() {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	ev := json.RawMessage(`{"event_name":"Lead","event_time":1795000000000,"action_source":"website",
		"event_source_url":"https://example.com/","user_data":{"em":["Jane@Example.com"],"client_user_agent":"Mozilla/5.0"}}`)
	for _, p := range capi.ValidateEvent(ev, now) {
		fmt.Printf("%s (%d/%d)\n", p, p.Code, p.Subcode)
	}
	// Output:
	// event_time: looks like milliseconds; send Unix seconds (100/0)
	// user_data.em[0]: is not a SHA-256 hex hash (64 lowercase hex characters) (100/0)
	// user_data: has too little customer information to match (client_user_agent); add em, ph, fbp, fbc, external_id or client_ip_address (100/2804050)
}

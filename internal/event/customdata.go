package event

import (
	"bytes"
	"encoding/json"
	"strings"
)

// checkCustomData checks value and currency (spec §4) and upper-cases the
// currency in place.
func checkCustomData(ev *Event, p func(string) string) error {
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
			return &FieldError{Field: p("custom_data.value"), Message: "must be a number"}
		}
	}
	if cd.Currency != nil {
		c := strings.ToUpper(strings.TrimSpace(*cd.Currency))
		if !Currencies[c] {
			return &FieldError{Field: p("custom_data.currency"), Message: "must be an ISO 4217 code such as USD or EUR"}
		}
		if c != *cd.Currency {
			ev.CustomData = replaceCurrency(ev.CustomData, c)
		}
	}
	if hasValue && cd.Currency == nil {
		return &FieldError{Field: p("custom_data.currency"), Message: "is required when value is set"}
	}
	if ev.EventName == "Purchase" && (!hasValue || cd.Currency == nil) {
		return &FieldError{Field: p("custom_data"), Message: "Purchase requires value and currency"}
	}
	return nil
}

func replaceCurrency(raw json.RawMessage, c string) json.RawMessage {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return raw
	}
	m["currency"], _ = json.Marshal(c)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil {
		return raw
	}
	return bytes.TrimSpace(buf.Bytes())
}

// Currencies is the ISO 4217 list of active codes.
var Currencies = func() map[string]bool {
	m := map[string]bool{}
	for _, c := range strings.Fields(`AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV BRL BSD BTN BWP BYN BZD
CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD
HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK
MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG
SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD USN UYI UYU UYW UZS VED VES VND VUV
WST XAF XAG XAU XBA XBB XBC XBD XCD XCG XDR XOF XPD XPF XPT XSU XUA YER ZAR ZMW ZWG ZWL`) {
		m[c] = true
	}
	return m
}()

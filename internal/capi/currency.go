package capi

import "strings"

// currencies is the ISO 4217 list of circulating currency codes as of 2026
// (§4), without precious metals, fund and testing codes (XAU, XTS, XXX, ...)
// that no purchase is priced in. Codes withdrawn since 2023 (HRK, SLL, ZWL,
// ANG, CUC) are left out too: Meta's SDK validates against the live list.
var currencies = func() map[string]struct{} {
	const list = "AED AFN ALL AMD AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD " +
		"BND BOB BOV BRL BSD BTN BWP BYN BZD CAD CDF CHE CHF CHW CLF CLP CNY COP " +
		"COU CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS " +
		"GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY " +
		"KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA " +
		"MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD " +
		"OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK " +
		"SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD " +
		"TZS UAH UGX USD USN UYI UYU UYW UZS VED VES VND VUV WST XAF XCD XCG XOF " +
		"XPF YER ZAR ZMW ZWG"
	m := make(map[string]struct{}, 180)
	for _, c := range strings.Fields(list) {
		m[c] = struct{}{}
	}
	return m
}()

// IsCurrency reports whether code is an ISO 4217 currency code. Meta's docs
// show both "usd" and "USD" (§4), so case is ignored; send upper case.
func IsCurrency(code string) bool {
	if len(code) != 3 {
		return false
	}
	_, ok := currencies[strings.ToUpper(code)]
	return ok
}

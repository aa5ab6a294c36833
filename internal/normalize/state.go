package normalize

import "strings"

// usStates maps normalized (lowercase, letters only) US state, district and
// territory names, common abbreviations and the codes themselves to the
// 2-letter USPS/ANSI code (spec §3.3 st).
var usStates = codeMap([][]string{
	{"al", "alabama", "ala"}, {"ak", "alaska", "alas"}, {"az", "arizona", "ariz"},
	{"ar", "arkansas", "ark"}, {"ca", "california", "calif", "cal", "cali"},
	{"co", "colorado", "colo", "col"}, {"ct", "connecticut", "conn"},
	{"de", "delaware", "del"}, {"dc", "districtofcolumbia", "washingtondc"},
	{"fl", "florida", "fla"}, {"ga", "georgia"}, {"hi", "hawaii"}, {"id", "idaho"},
	{"il", "illinois", "ill"}, {"in", "indiana", "ind"}, {"ia", "iowa"},
	{"ks", "kansas", "kan", "kans"}, {"ky", "kentucky"}, {"la", "louisiana"},
	{"me", "maine"}, {"md", "maryland"}, {"ma", "massachusetts", "mass"},
	{"mi", "michigan", "mich"}, {"mn", "minnesota", "minn"},
	{"ms", "mississippi", "miss"}, {"mo", "missouri"}, {"mt", "montana", "mont"},
	{"ne", "nebraska", "neb", "nebr"}, {"nv", "nevada", "nev"},
	{"nh", "newhampshire"}, {"nj", "newjersey"}, {"nm", "newmexico"},
	{"ny", "newyork"}, {"nc", "northcarolina", "ncarolina"},
	{"nd", "northdakota", "ndakota"}, {"oh", "ohio"}, {"ok", "oklahoma", "okla"},
	{"or", "oregon", "ore"}, {"pa", "pennsylvania", "penn", "penna"},
	{"ri", "rhodeisland"}, {"sc", "southcarolina", "scarolina"},
	{"sd", "southdakota", "sdakota"}, {"tn", "tennessee", "tenn"},
	{"tx", "texas", "tex"}, {"ut", "utah"}, {"vt", "vermont"},
	{"va", "virginia"}, {"wa", "washington", "wash"},
	{"wv", "westvirginia", "wva", "wvirginia"}, {"wi", "wisconsin", "wis", "wisc"},
	{"wy", "wyoming", "wyo"}, {"pr", "puertorico"}, {"gu", "guam"},
	{"vi", "virginislands", "usvirginislands"}, {"as", "americansamoa"},
	{"mp", "northernmarianaislands"}, {"um", "usminoroutlyingislands"},
	{"aa", "armedforcesamericas"}, {"ae", "armedforceseurope"}, {"ap", "armedforcespacific"},
})

// caProvinces does the same for Canadian provinces and territories (English
// and French names).
var caProvinces = codeMap([][]string{
	{"ab", "alberta"}, {"bc", "britishcolumbia", "colombiebritannique"},
	{"mb", "manitoba"}, {"nb", "newbrunswick", "nouveaubrunswick"},
	{"nl", "newfoundlandandlabrador", "newfoundland", "terreneuveetlabrador", "nf"},
	{"ns", "novascotia", "nouvelleécosse"}, {"on", "ontario"},
	{"pe", "princeedwardisland", "îleduprinceédouard", "pei"},
	{"qc", "quebec", "québec", "pq"}, {"sk", "saskatchewan"},
	{"nt", "northwestterritories", "territoiresdunordouest"},
	{"nu", "nunavut"}, {"yt", "yukon", "yukonterritory"},
})

// codeMap turns rows of {code, names...} into a name → code map that also
// maps each code to itself.
func codeMap(rows [][]string) map[string]string {
	m := make(map[string]string)
	for _, row := range rows {
		for _, n := range row {
			m[n] = row[0]
		}
	}
	return m
}

// stateCode maps a normalized name to a code for country "us" or "ca";
// for "" it tries the US, then Canada. It also accepts ISO 3166-2 forms
// ("usca", "caon") and a trailing "state" ("newyorkstate").
func stateCode(name, country string) (string, bool) {
	look := func(m map[string]string, prefix string) (string, bool) {
		if c, ok := m[name]; ok {
			return c, true
		}
		if rest, ok := strings.CutPrefix(name, prefix); ok && len(rest) == 2 {
			if c, ok := m[rest]; ok && c == rest {
				return c, true
			}
		}
		if rest, ok := strings.CutSuffix(name, "state"); ok {
			if c, ok := m[rest]; ok && len(rest) > 2 {
				return c, true
			}
		}
		return "", false
	}
	switch country {
	case "us":
		return look(usStates, "us")
	case "ca":
		return look(caProvinces, "ca")
	case "":
		if c, ok := look(usStates, "us"); ok {
			return c, true
		}
		return look(caProvinces, "ca")
	}
	return "", false
}

// appendState: lowercase letters only; US and Canadian names map to their
// 2-letter code (region us, ca, or none); an unknown name is dropped for us
// and ca and kept in full elsewhere, never truncated (spec §3.3 st).
func appendState(dst []byte, s, region string) ([]byte, string) {
	n := len(dst)
	dst = appendLetters(dst, s)
	if len(dst) == n {
		return dst, "no letters"
	}
	country := lowerRegion(region)
	switch country {
	case "us", "ca", "":
		if code, ok := stateCode(string(dst[n:]), country); ok {
			return append(dst[:n], code...), ""
		}
		if country != "" {
			return dst[:n], "not a state or province of " + country
		}
	}
	return dst, ""
}

// lowerRegion lowercases a 2-letter ASCII region code without allocating
// for the common already-lowercase case.
func lowerRegion(r string) string {
	switch r {
	case "US", "Us", "uS":
		return "us"
	case "CA", "Ca", "cA":
		return "ca"
	}
	if len(r) == 2 && ('A' <= r[0] && r[0] <= 'Z' || 'A' <= r[1] && r[1] <= 'Z') {
		return strings.ToLower(r)
	}
	return r
}

package normalize

import (
	"strings"
	"sync"
	"unicode"

	"golang.org/x/text/language"
	"golang.org/x/text/language/display"
	"golang.org/x/text/unicode/norm"
)

// countryTables maps normalized country spellings to ISO 3166-1 alpha-2.
type countryTables struct {
	alpha2 map[string]bool   // "us", "de", ... (current codes, plus xk)
	names  map[string]string // alpha-3, English and local names, aliases → alpha-2
}

// notCountries are region codes golang.org/x/text knows that are not current
// ISO 3166-1 country codes (withdrawn or exceptionally reserved).
var notCountries = map[string]bool{
	"an": true, "cs": true, "nt": true, "su": true, "yu": true, "ac": true,
	"cp": true, "dg": true, "ea": true, "ic": true, "ta": true,
}

// countryAliases are common spellings the CLDR names miss.
var countryAliases = map[string]string{
	"uk": "gb", "greatbritain": "gb", "britain": "gb", "england": "gb", "scotland": "gb",
	"wales": "gb", "northernireland": "gb", "unitedkingdomofgreatbritainandnorthernireland": "gb",
	"usa": "us", "unitedstatesofamerica": "us", "america": "us", "us": "us",
	"holland": "nl", "thenetherlands": "nl", "southkorea": "kr", "korearepublicof": "kr",
	"republicofkorea": "kr", "northkorea": "kp", "russia": "ru", "russianfederation": "ru",
	"turkey": "tr", "turkiye": "tr", "czechrepublic": "cz", "ivorycoast": "ci",
	"vietnam": "vn", "vatican": "va", "uae": "ae", "emirates": "ae", "persia": "ir",
	"iran": "ir", "syria": "sy", "laos": "la", "bolivia": "bo", "venezuela": "ve",
	"tanzania": "tz", "moldova": "md", "macedonia": "mk", "burma": "mm", "swaziland": "sz",
	"capeverde": "cv", "eastimor": "tl", "taiwan": "tw", "palestine": "ps", "kosovo": "xk",
}

var countryData = sync.OnceValue(func() *countryTables {
	t := &countryTables{alpha2: make(map[string]bool, 256), names: make(map[string]string, 2048)}
	en := display.English.Regions()
	addName := func(name, code string) {
		key := string(appendLetters(nil, prepare(name)))
		if key == "" {
			return
		}
		if _, ok := t.names[key]; !ok {
			t.names[key] = code
		}
		if f := foldMarks(key); f != key {
			if _, ok := t.names[f]; !ok {
				t.names[f] = code
			}
		}
	}
	for a := 'A'; a <= 'Z'; a++ {
		for b := 'A'; b <= 'Z'; b++ {
			r, err := language.ParseRegion(string([]rune{a, b}))
			if err != nil || !r.IsCountry() || r.Canonicalize() != r {
				continue
			}
			code := strings.ToLower(r.String())
			if notCountries[code] {
				continue
			}
			t.alpha2[code] = true
			t.names[code] = code
			if iso3 := r.ISO3(); iso3 != "" && iso3 != "ZZZ" {
				t.names[strings.ToLower(iso3)] = code
			}
			addName(en.Name(r), code)
			// The name in the region's main language: Deutschland, España,
			// Sverige, Brasil, 日本, ...
			if tag, err := language.Compose(language.Und, r); err == nil {
				if base, conf := tag.Base(); conf != language.No {
					if namer := display.Regions(language.Make(base.String())); namer != nil {
						addName(namer.Name(r), code)
					}
				}
			}
		}
	}
	for k, v := range countryAliases {
		t.names[k] = v
	}
	return t
})

// foldMarks removes combining marks after canonical decomposition
// ("türkiye" → "turkiye"), for lookups only.
func foldMarks(s string) string {
	if isASCII(s) {
		return s
	}
	var b strings.Builder
	for _, r := range norm.NFD.String(s) {
		if !unicode.Is(unicode.Mn, r) {
			b.WriteRune(r)
		}
	}
	return norm.NFC.String(b.String())
}

// countryCode returns the alpha-2 code (lowercase) of a prepared value.
func countryCode(s string) (string, bool) {
	var buf [64]byte
	key := appendLetters(buf[:0], s)
	if len(key) == 0 {
		return "", false
	}
	t := countryData()
	if c, ok := t.names[string(key)]; ok {
		return c, true
	}
	if f := foldMarks(string(key)); f != string(key) {
		if c, ok := t.names[f]; ok {
			return c, true
		}
	}
	return "", false
}

// appendCountry: ISO 3166-1 alpha-2, lowercase, from an alpha-2 or alpha-3
// code, an English name or the local name; anything else is dropped.
func appendCountry(dst []byte, s string) ([]byte, string) {
	c, ok := countryCode(s)
	if !ok {
		return dst, "not a country"
	}
	return append(dst, c...), ""
}

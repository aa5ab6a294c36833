package normalize

import (
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/nyaruka/phonenumbers"
)

// phoneMeta is the part of libphonenumber's metadata for one region (or one
// non-geographic calling code) that the fast phone path needs, preprocessed
// so that common numbers are decided without regular expressions or
// allocations.
type phoneMeta struct {
	id    string // region code, "001" for non-geographic entities
	cc    int
	ccStr string
	// Exactly one of idd and iddRE is set when the region has an
	// international dialling prefix: idd when the pattern is a list of
	// literal digit strings ("00", "011", "0|00"), iddRE otherwise.
	idd   []string
	iddRE *regexp.Regexp
	// Same for the national prefix for parsing (trunk prefix, "0" or "1").
	npp   []string
	nppRE *regexp.Regexp
	// Possible lengths of the national significant number (general desc).
	lengths   []int32
	localOnly []int32
	noPattern bool // general desc has no pattern: any length 2..17
}

type phoneTables struct {
	byRegion [26 * 26]*phoneMeta // index (A-Z)*26 + (A-Z) of the region code
	byCC     [1000]*phoneMeta    // main region of a calling code
}

// phoneData builds the tables once, on first use; they are read-only after.
var phoneData = sync.OnceValue(func() *phoneTables {
	t := &phoneTables{}
	coll, err := phonenumbers.MetadataCollection()
	if err != nil {
		// The metadata is embedded in the phonenumbers module; without it
		// only the full parse (which would fail the same way) is left.
		return t
	}
	for _, md := range coll.GetMetadata() {
		m := &phoneMeta{
			id:        md.GetId(),
			cc:        int(md.GetCountryCode()),
			ccStr:     strconv.Itoa(int(md.GetCountryCode())),
			lengths:   md.GetGeneralDesc().GetPossibleLength(),
			localOnly: md.GetGeneralDesc().GetPossibleLengthLocalOnly(),
			noPattern: md.GetGeneralDesc().GetNationalNumberPattern() == "",
		}
		m.idd, m.iddRE = literalsOrRegexp(md.GetInternationalPrefix())
		npp := md.GetNationalPrefixForParsing()
		m.npp, m.nppRE = literalsOrRegexp(npp)
		if m.id == "001" {
			if m.cc > 0 && m.cc < len(t.byCC) {
				t.byCC[m.cc] = m
			}
			continue
		}
		if i, ok := regionIndex(m.id); ok {
			t.byRegion[i] = m
		}
		if m.cc > 0 && m.cc < len(t.byCC) && phonenumbers.GetRegionCodeForCountryCode(m.cc) == m.id {
			t.byCC[m.cc] = m
		}
	}
	return t
})

// literalsOrRegexp splits a libphonenumber prefix pattern into literal
// alternatives when it is only digits and '|', else compiles it anchored.
func literalsOrRegexp(pat string) ([]string, *regexp.Regexp) {
	if pat == "" {
		return nil, nil
	}
	if strings.Trim(pat, "0123456789|") == "" {
		return strings.Split(pat, "|"), nil
	}
	re, err := regexp.Compile("^(?:" + pat + ")")
	if err != nil {
		return nil, nil
	}
	return nil, re
}

// region returns the metadata of an alpha-2 region code in any case, or nil.
func (t *phoneTables) region(code string) *phoneMeta {
	if i, ok := regionIndex(code); ok {
		return t.byRegion[i]
	}
	return nil
}

// regionIndex maps a 2-letter code in any case to 0..675.
func regionIndex(code string) (int, bool) {
	if len(code) != 2 {
		return 0, false
	}
	a, b := code[0]|0x20, code[1]|0x20
	if a < 'a' || a > 'z' || b < 'a' || b > 'z' {
		return 0, false
	}
	return int(a-'a')*26 + int(b-'a'), true
}

// matchPrefix reports how a literal-or-regexp prefix matches the start of d:
// n is the length of the match (-1 for no match); decided is false when only
// a regular expression with capture groups could tell (the caller then
// falls back to the full parser).
func matchPrefix(lits []string, re *regexp.Regexp, d string) (n int, decided bool) {
	if lits != nil {
		for _, l := range lits {
			if strings.HasPrefix(d, l) {
				return len(l), true
			}
		}
		return -1, true
	}
	if re == nil {
		return -1, true
	}
	if !re.MatchString(d) {
		return -1, true
	}
	return 0, false
}

// zeroTrunk reports whether a leading 0 is the country's national (trunk)
// prefix, literally or as an alternative of its pattern.
func (m *phoneMeta) zeroTrunk() bool {
	return slices.Contains(m.npp, "0") || (m.nppRE != nil && m.nppRE.MatchString("0"))
}

type lengthResult int

const (
	isPossible lengthResult = iota
	isPossibleLocalOnly
	tooShort
	tooLong
	invalidLength
)

// testLength mirrors phonenumbers' testNumberLength for the general desc.
func (m *phoneMeta) testLength(n int) lengthResult {
	if len(m.lengths) == 0 || m.lengths[0] == -1 {
		return invalidLength
	}
	for _, l := range m.localOnly {
		if int(l) == n {
			return isPossibleLocalOnly
		}
	}
	lo, hi := int(m.lengths[0]), int(m.lengths[len(m.lengths)-1])
	switch {
	case n == lo:
		return isPossible
	case n < lo:
		return tooShort
	case n > hi:
		return tooLong
	}
	for _, l := range m.lengths[1:] {
		if int(l) == n {
			return isPossible
		}
	}
	return invalidLength
}

// possibleReason mirrors phonenumbers.IsPossibleNumberWithReason.
func (m *phoneMeta) possibleReason(n int) lengthResult {
	if m.noPattern {
		switch {
		case n < 2:
			return tooShort
		case n > 17:
			return tooLong
		}
		return isPossible
	}
	return m.testLength(n)
}

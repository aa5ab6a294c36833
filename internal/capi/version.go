package capi

import (
	"strings"
	"time"
)

// VersionInfo is one Graph API version and its support window (§1.2).
// A zero Released or Expires means unknown or "TBD".
type VersionInfo struct {
	Version  string
	Released time.Time
	Expires  time.Time
}

// Expired reports whether the version is past its end of support at now.
// Graph serves calls to an expired version with the next oldest usable one
// instead of failing (§1.2), so this is a warning, not an error.
func (v VersionInfo) Expired(now time.Time) bool {
	return !v.Expires.IsZero() && !now.Before(v.Expires)
}

func day(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }

// versions is the D-CHG table as of late November 2026 (§1.2).
var versions = []VersionInfo{
	{"v26.0", day(2026, 7, 29), time.Time{}},
	{"v25.0", day(2026, 2, 18), day(2028, 7, 29)},
	{"v24.0", day(2025, 10, 8), day(2028, 2, 18)},
	{"v23.0", day(2025, 5, 29), day(2027, 10, 8)},
	{"v22.0", day(2025, 1, 21), day(2027, 5, 20)},
	{"v21.0", day(2024, 10, 2), day(2027, 1, 21)},
	{"v20.0", day(2024, 5, 21), day(2026, 9, 24)},
	{"v16.0", day(2023, 2, 2), day(2025, 5, 14)},
}

// LookupVersion returns what we know of Graph API version v ("v25.0"; "25.0"
// and "v25" are accepted too). It reports false for a version not in the
// §1.2 table.
func LookupVersion(v string) (VersionInfo, bool) {
	v = strings.TrimSpace(v)
	if !strings.HasPrefix(v, "v") {
		v = "v" + v
	}
	if !strings.Contains(v, ".") {
		v += ".0"
	}
	for _, info := range versions {
		if info.Version == v {
			return info, true
		}
	}
	return VersionInfo{}, false
}

// Versions returns the known versions, newest first.
func Versions() []VersionInfo { return append([]VersionInfo(nil), versions...) }

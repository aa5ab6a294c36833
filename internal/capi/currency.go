package capi

import "github.com/capirelay/capirelay/internal/metarules"

// IsCurrency reports whether code is an ISO 4217 currency code
// (metarules.IsCurrency); case is ignored.
func IsCurrency(code string) bool { return metarules.IsCurrency(code) }

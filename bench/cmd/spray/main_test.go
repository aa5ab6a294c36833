package main

import "testing"

// TestFlagsBounded: a run is short and stays on loopback.
func TestFlagsBounded(t *testing.T) {
	for _, args := range [][]string{
		{"-duration", "61s"},
		{"-baseline", "0s"},
		{"-addresses", "251"},
		{"-addresses", "0"},
		{"-url", "http://example.com:8080", "-site", "s1"},
		{"-url", "http://127.0.0.1:8080"},
	} {
		if _, err := parseFlags(args); err == nil {
			t.Errorf("parseFlags(%q) accepted, want refused", args)
		}
	}
	o, err := parseFlags([]string{"-url", "http://127.0.0.1:8080", "-site", "s1", "-duration", "5s"})
	if err != nil || o.addresses != 60 || o.perAddress != 2 {
		t.Fatalf("parseFlags = %+v, %v", o, err)
	}
}

package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestRunHashOne(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		args    []string
		want    string
		wantErr string
	}{
		{"phone", []string{"--field", "ph", "--country", "US", "(650)555-1212"},
			"normalized: 16505551212\nhash: e323ec626319ca94ee8bff2e4c87cf613be6ea19919ed1364124e16807ab3176\n", ""},
		{"region default", []string{"--field", "ph", "--region", "us", "(650)555-1212"},
			"normalized: 16505551212\nhash: e323ec626319ca94ee8bff2e4c87cf613be6ea19919ed1364124e16807ab3176\n", ""},
		{"country name", []string{"--field", "country", "United States"},
			"normalized: us\nhash: 79adb2a2fce5c6ba215fe5f27f532d4e7edbac4b6a5e09e1ef3a08084a904621\n", ""},
		{"pre-hashed", []string{"--field", "em", "62A14E44F765419D10FEA99367361A727C12365E2520F32218D505ED9AA0F62F"},
			"normalized: (pre-hashed)\nhash: 62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f\n", ""},
		{"dropped", []string{"--field", "em", "not-an-email"}, "", "hash em: normalize: invalid em"},
		{"bad field", []string{"--field", "xx", "v"}, "", "--field"},
		{"no value", []string{"--field", "em"}, "", "exactly one VALUE"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var out, errOut bytes.Buffer
			err := runHash(t.Context(), tc.args, strings.NewReader(""), &out, &errOut)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("runHash(%q) error = %v, want it to contain %q", tc.args, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("runHash(%q) = %v (stderr %s)", tc.args, err, errOut.String())
			}
			if out.String() != tc.want {
				t.Errorf("runHash(%q) printed %q, want %q", tc.args, out.String(), tc.want)
			}
		})
	}
}

func TestRunHashJSONL(t *testing.T) {
	t.Parallel()
	in := strings.Join([]string{
		`{"id":"a","field":"ph","input":"020 7946 0958","country":"GB"}`,
		`{"id":2,"field":"em","input":"bad"}`,
		`not json`,
		`{"id":"c","field":"zz","input":"x"}`,
		`{"id":"d","field":"db","input":"03/04/1997"}`,
		``,
		`{"id":"e","field":"st","input":"California","country":"United States"}`,
	}, "\n")
	var out, errOut bytes.Buffer
	if err := runHash(t.Context(), []string{"--jsonl", "--region", "fr"}, strings.NewReader(in), &out, &errOut); err != nil {
		t.Fatalf("runHash --jsonl = %v (stderr %s)", err, errOut.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 6 {
		t.Fatalf("got %d lines, want 6:\n%s", len(lines), out.String())
	}
	type res struct {
		ID         any    `json:"id"`
		Normalized string `json:"normalized"`
		Hash       string `json:"hash"`
		Error      string `json:"error"`
	}
	var got []res
	for _, l := range lines {
		var r res
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("bad output line %q: %v", l, err)
		}
		got = append(got, r)
	}
	if got[0].ID != "a" || got[0].Normalized != "442079460958" || len(got[0].Hash) != 64 {
		t.Errorf("line 1 = %+v, want 442079460958", got[0])
	}
	if got[1].ID != float64(2) || !strings.Contains(got[1].Error, "invalid em") {
		t.Errorf("line 2 = %+v, want an em error with id 2", got[1])
	}
	if got[2].Error == "" || got[3].Error == "" {
		t.Errorf("lines 3-4 = %+v, %+v, want errors", got[2], got[3])
	}
	// Region fr (day first) from --region: 3 April.
	if got[4].Normalized != "19970403" {
		t.Errorf("line 5 = %+v, want 19970403", got[4])
	}
	if got[5].Normalized != "ca" {
		t.Errorf("line 6 = %+v, want ca", got[5])
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/capirelay/capirelay/internal/capi"
	"github.com/capirelay/capirelay/internal/event"
	"github.com/capirelay/capirelay/internal/normalize"
)

// maxValidateBytes caps what validate reads: 1,000 events of a few KiB.
const maxValidateBytes = 64 << 20

// runValidateStdin checks a Meta payload like Meta's Payload Helper: with
// capi.ValidatePayload, plus hints for raw personal data in hashed fields
// and whatever capirelay's pipeline would refuse. It prints one problem per
// line with its JSON path, then "N problems" or "payload is valid (K
// events)", and returns an error when there are problems or the JSON is
// malformed. Messages never repeat values.
func runValidateStdin(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("validate", stderr, "validate FILE.json|-")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError(stderr, fs.Usage, "validate: %s", oneArgument("FILE (or - for standard input)", fs.Args()))
	}
	name := fs.Arg(0)
	in := stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return fmt.Errorf("validate: %w", err)
		}
		defer f.Close()
		in = f
	}
	raw, err := io.ReadAll(io.LimitReader(in, maxValidateBytes+1))
	if err != nil {
		return fmt.Errorf("validate: read %s: %w", name, err)
	}
	if len(raw) > maxValidateBytes {
		return fmt.Errorf("validate: %s is larger than %d MiB", name, maxValidateBytes>>20)
	}
	probs, events, err := checkPayload(raw, time.Now())
	if err != nil {
		fmt.Fprintln(stdout, err)
		return fmt.Errorf("validate: %w", err)
	}
	for _, p := range probs {
		fmt.Fprintln(stdout, p)
	}
	if len(probs) == 0 {
		fmt.Fprintf(stdout, "payload is valid (%d %s)\n", events, plural(events, "event", "events"))
		return nil
	}
	fmt.Fprintf(stdout, "%d %s\n", len(probs), plural(len(probs), "problem", "problems"))
	return fmt.Errorf("validate: %d %s found", len(probs), plural(len(probs), "problem", "problems"))
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// payloadShape is what the user gave: a whole request, a bare array of
// events, or one event. Paths are shown relative to it.
type payloadShape int

const (
	shapeRequest payloadShape = iota
	shapeArray
	shapeEvent
)

// checkPayload validates raw at now and returns the problems as printable
// lines, in event order, and the number of events. err is set only when raw
// is not JSON.
func checkPayload(raw []byte, now time.Time) (lines []string, events int, err error) {
	raw = bytes.TrimSpace(bytes.TrimPrefix(raw, []byte("\ufeff")))
	if !json.Valid(raw) {
		return nil, 0, jsonSyntax(raw)
	}
	shape, body := shapeRequest, raw
	switch raw[0] {
	case '[':
		shape, body = shapeArray, concat(`{"data":`, raw, `}`)
	case '{':
		var top map[string]json.RawMessage
		if json.Unmarshal(raw, &top) == nil {
			if _, ok := top["data"]; !ok {
				shape, body = shapeEvent, concat(`{"data":[`, raw, `]}`)
			}
		}
	}
	probs := capi.ValidatePayload(body, now)

	var req struct {
		Data []json.RawMessage `json:"data"`
	}
	if json.Unmarshal(body, &req) == nil {
		events = len(req.Data)
		for i, ev := range req.Data {
			probs = extraProblems(probs, ev, "data["+strconv.Itoa(i)+"]", now)
		}
	}
	sort.SliceStable(probs, func(a, b int) bool { return eventIndex(probs[a].Path) < eventIndex(probs[b].Path) })
	for _, p := range probs {
		lines = append(lines, formatProblem(p, shape))
	}
	return lines, events, nil
}

func concat(pre string, raw []byte, post string) []byte {
	b := make([]byte, 0, len(pre)+len(raw)+len(post))
	return append(append(append(b, pre...), raw...), post...)
}

// jsonSyntax locates a JSON syntax error as line and column.
func jsonSyntax(raw []byte) error {
	if len(raw) == 0 {
		return errors.New("payload is empty")
	}
	var v any
	err := json.Unmarshal(raw, &v)
	var se *json.SyntaxError
	if !errors.As(err, &se) {
		return errors.New("payload is not valid JSON")
	}
	off := min(int(se.Offset), len(raw))
	line := 1 + bytes.Count(raw[:off], []byte("\n"))
	col := off - bytes.LastIndexByte(raw[:off], '\n')
	return fmt.Errorf("payload is not valid JSON: line %d, column %d: %s", line, col, strings.TrimPrefix(se.Error(), "json: "))
}

// eventIndex is N of a "data[N]..." path; -1 for payload-level paths.
func eventIndex(path string) int {
	rest, ok := strings.CutPrefix(path, "data[")
	if !ok {
		return -1
	}
	end := strings.IndexByte(rest, ']')
	if end < 0 {
		return -1
	}
	n, err := strconv.Atoi(rest[:end])
	if err != nil {
		return -1
	}
	return n
}

// formatProblem prints p with its path relative to the shape the user gave.
func formatProblem(p capi.Problem, shape payloadShape) string {
	path := p.Path
	switch shape {
	case shapeArray:
		if rest, ok := strings.CutPrefix(path, "data"); ok {
			path = rest
			if path == "" {
				path = "array"
			}
		}
	case shapeEvent:
		switch {
		case path == "data[0]":
			path = ""
		case strings.HasPrefix(path, "data[0]."):
			path = path[len("data[0]."):]
		case path == "data":
			path = "event"
		}
	}
	msg := p.Message
	if p.Subcode != 0 {
		msg += fmt.Sprintf(" (code %d, subcode %d)", p.Code, p.Subcode)
	}
	if path == "" {
		return msg
	}
	return path + ": " + msg
}

// hashedFields name the hashed user_data keys in hints (spec §3.1).
var hashedFields = map[string]string{
	"em": "email", "ph": "phone number", "fn": "first name", "ln": "last name", "db": "date of birth",
	"ge": "gender", "ct": "city", "st": "state", "zp": "zip code", "country": "country code",
}

// extraProblems adds to probs what capi.ValidatePayload does not say about
// the event at path: how to fix raw personal data in a hashed field, and
// anything capirelay's pipeline refuses that is not already reported for
// the same field.
func extraProblems(probs []capi.Problem, raw json.RawMessage, path string, now time.Time) []capi.Problem {
	// Raw PII hints, attached to capi's "not a SHA-256" problem at the path.
	var ev struct {
		UserData map[string]json.RawMessage `json:"user_data"`
	}
	if json.Unmarshal(raw, &ev) == nil {
		for key, field := range hashedFields {
			v, ok := ev.UserData[key]
			if !ok {
				continue
			}
			for vpath, s := range stringValues(path+".user_data."+key, v) {
				hint := rawHint(key, field, s)
				if hint == "" {
					continue
				}
				found := false
				for i := range probs {
					if probs[i].Path == vpath {
						probs[i].Message += "; " + hint
						found = true
					}
				}
				if !found {
					probs = append(probs, capi.Problem{Path: vpath, Message: hint, Code: capi.CodeInvalidParameter})
				}
			}
		}
	}

	// What the pipeline refuses: strict decoding (unknown fields), then
	// Prepare, then the thin-match rule after hashing.
	var fe *event.FieldError
	e, err := event.Decode(raw, path)
	if err == nil {
		if len(e.EventID) > 200 {
			err = &event.FieldError{Field: path + ".event_id", Message: "is longer than 200 characters"}
		} else if err = e.Prepare(now, path); err == nil {
			ud := e.UserData.Hashable()
			e.UserData.SetHashable(normalize.HashUserData(&ud, normalize.Options{Now: now}))
			err = e.CheckMatch(path)
		}
	}
	if !errors.As(err, &fe) || covered(probs, strings.TrimSuffix(fe.Field, ".")) {
		return probs
	}
	return append(probs, capi.Problem{Path: strings.TrimSuffix(fe.Field, "."), Message: fe.Message + " (capirelay refuses this event)", Code: capi.CodeInvalidParameter})
}

// covered reports whether a problem is already reported at path, at a field
// inside it, or at a field containing it.
func covered(probs []capi.Problem, path string) bool {
	for _, p := range probs {
		if p.Path == path || strings.HasPrefix(p.Path, path+".") || strings.HasPrefix(p.Path, path+"[") ||
			strings.HasPrefix(path, p.Path+".") || strings.HasPrefix(path, p.Path+"[") {
			return true
		}
	}
	return false
}

// stringValues returns the strings of a string-or-list value by JSON path.
func stringValues(path string, v json.RawMessage) map[string]string {
	out := map[string]string{}
	var s string
	if json.Unmarshal(v, &s) == nil {
		out[path] = s
		return out
	}
	var list []json.RawMessage
	if json.Unmarshal(v, &list) == nil {
		for i, item := range list {
			if json.Unmarshal(item, &s) == nil {
				out[path+"["+strconv.Itoa(i)+"]"] = s
			}
		}
	}
	return out
}

// rawHint says how to fix a value of a hashed key that is not a SHA-256
// hex digest; "" when it is one. It names what the value looks like, never
// the value.
func rawHint(key, field, s string) string {
	if len(s) == 64 && isHex(s) {
		if strings.ToLower(s) != s {
			return "lower-case the hex digest"
		}
		return ""
	}
	if len(s) > 65 && s[64] == '.' && isHex(s[:64]) {
		return "" // a Parameter Builder appendix; capi judges it
	}
	looks := "a raw value"
	switch {
	case key == "em" && strings.Contains(s, "@"):
		looks = "a raw email address"
	case key == "ph" && digits(s) >= 7:
		looks = "a raw phone number"
	case len(s) == 32 && isHex(s):
		looks = "an MD5 hash"
	case len(s) == 40 && isHex(s):
		looks = "a SHA-1 hash"
	}
	return "looks like " + looks + ": send the SHA-256 of the normalized " + field +
		" (try `capirelay hash --field " + key + " VALUE`); raw personal data must never be sent"
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

func digits(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case '0' <= c && c <= '9':
			n++
		case c == '+' || c == ' ' || c == '-' || c == '(' || c == ')' || c == '.':
		default:
			return 0
		}
	}
	return n
}

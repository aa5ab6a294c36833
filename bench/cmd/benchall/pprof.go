package main

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// cpuProfile is what benchall needs of a pprof CPU profile: each
// sample's CPU time, its stack as function names (leaf first) and its
// "bench" label (loadgen, sink, or "" for the relay).
type cpuProfile struct {
	samples []cpuSample
}

type cpuSample struct {
	cpu   time.Duration
	stack []string
	bench string
}

// parseCPUProfile decodes the gzipped profile.proto that runtime/pprof
// writes (github.com/google/pprof/proto/profile.proto), reading only the
// fields above.
func parseCPUProfile(data []byte) (*cpuProfile, error) {
	if zr, err := gzip.NewReader(bytes.NewReader(data)); err == nil {
		if data, err = io.ReadAll(zr); err != nil {
			return nil, fmt.Errorf("gunzip profile: %w", err)
		}
	}
	type rawSample struct {
		locs   []uint64
		values []int64
		labels [][2]int64 // key, str
	}
	var (
		strs      []string
		types     []int64 // string index of each sample type's unit
		samples   []rawSample
		locFuncs  = map[uint64][]uint64{} // location id → function ids, leaf first
		funcNames = map[uint64]int64{}    // function id → string index
	)
	err := fields(data, func(num protowire.Number, typ protowire.Type, v []byte, n uint64) error {
		switch num {
		case 1: // sample_type
			return fields(v, func(num protowire.Number, _ protowire.Type, _ []byte, n uint64) error {
				if num == 2 {
					types = append(types, int64(n))
				}
				return nil
			})
		case 2: // sample
			var s rawSample
			err := fields(v, func(num protowire.Number, typ protowire.Type, v []byte, n uint64) error {
				switch num {
				case 1:
					s.locs = appendVarints(s.locs, typ, v, n)
				case 2:
					for _, x := range appendVarints(nil, typ, v, n) {
						s.values = append(s.values, int64(x))
					}
				case 3:
					var kv [2]int64
					fields(v, func(num protowire.Number, _ protowire.Type, _ []byte, n uint64) error {
						if num == 1 || num == 2 {
							kv[num-1] = int64(n)
						}
						return nil
					})
					s.labels = append(s.labels, kv)
				}
				return nil
			})
			samples = append(samples, s)
			return err
		case 4: // location
			var id uint64
			var fns []uint64
			err := fields(v, func(num protowire.Number, _ protowire.Type, v []byte, n uint64) error {
				switch num {
				case 1:
					id = n
				case 4: // line: function_id is field 1
					return fields(v, func(num protowire.Number, _ protowire.Type, _ []byte, n uint64) error {
						if num == 1 {
							fns = append(fns, n)
						}
						return nil
					})
				}
				return nil
			})
			locFuncs[id] = fns
			return err
		case 5: // function
			var id uint64
			var name int64
			err := fields(v, func(num protowire.Number, _ protowire.Type, _ []byte, n uint64) error {
				switch num {
				case 1:
					id = n
				case 2:
					name = int64(n)
				}
				return nil
			})
			funcNames[id] = name
			return err
		case 6: // string_table
			strs = append(strs, string(v))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("decode profile: %w", err)
	}
	str := func(i int64) string {
		if i < 0 || int(i) >= len(strs) {
			return ""
		}
		return strs[i]
	}
	nsIdx := -1
	for i, u := range types {
		if str(u) == "nanoseconds" {
			nsIdx = i
		}
	}
	if nsIdx < 0 {
		return nil, fmt.Errorf("not a CPU profile: no nanoseconds sample type")
	}
	p := &cpuProfile{}
	for _, rs := range samples {
		if nsIdx >= len(rs.values) {
			continue
		}
		s := cpuSample{cpu: time.Duration(rs.values[nsIdx])}
		for _, l := range rs.locs {
			for _, f := range locFuncs[l] {
				s.stack = append(s.stack, str(funcNames[f]))
			}
		}
		for _, kv := range rs.labels {
			if str(kv[0]) == "bench" {
				s.bench = str(kv[1])
			}
		}
		p.samples = append(p.samples, s)
	}
	return p, nil
}

// fields calls f for each field of the protobuf message b: varints as n,
// length-delimited fields as v.
func fields(b []byte, f func(num protowire.Number, typ protowire.Type, v []byte, n uint64) error) error {
	for len(b) > 0 {
		num, typ, k := protowire.ConsumeTag(b)
		if k < 0 {
			return protowire.ParseError(k)
		}
		b = b[k:]
		var v []byte
		var n uint64
		switch typ {
		case protowire.VarintType:
			n, k = protowire.ConsumeVarint(b)
		case protowire.BytesType:
			v, k = protowire.ConsumeBytes(b)
		default:
			k = protowire.ConsumeFieldValue(num, typ, b)
		}
		if k < 0 {
			return protowire.ParseError(k)
		}
		b = b[k:]
		if err := f(num, typ, v, n); err != nil {
			return err
		}
	}
	return nil
}

// appendVarints reads a repeated integer field, packed or not.
func appendVarints(dst []uint64, typ protowire.Type, v []byte, n uint64) []uint64 {
	if typ == protowire.VarintType {
		return append(dst, n)
	}
	for len(v) > 0 {
		x, k := protowire.ConsumeVarint(v)
		if k < 0 {
			break
		}
		dst = append(dst, x)
		v = v[k:]
	}
	return dst
}

// isIdentityFunc reports whether fn is identity's work: the identity
// package, or a store function named for identities or their known
// keys (learning, loading, the filter's refresh). Helpers those call
// count through them, as the whole stack is searched.
func isIdentityFunc(fn string) bool {
	if strings.Contains(fn, "/internal/identity.") || strings.Contains(fn, "/internal/identity/") {
		return true
	}
	const store = "/internal/store/"
	i := strings.Index(fn, store)
	if i < 0 {
		return false
	}
	rest := fn[i+len(store):]
	j := strings.IndexByte(rest, '.')
	if j < 0 {
		return false
	}
	name := strings.ToLower(rest[j:])
	return strings.Contains(name, "identit") || strings.Contains(name, "knownkeys")
}

// share is a profile split by who spent the CPU.
type share struct {
	total, relay, loadgen, sink, identity time.Duration
}

// split sums the samples: relay is every sample without a bench label;
// identity those of the relay's with an identity function on the stack.
func (p *cpuProfile) split() share {
	var s share
	for _, x := range p.samples {
		s.total += x.cpu
		switch x.bench {
		case "loadgen":
			s.loadgen += x.cpu
		case "sink":
			s.sink += x.cpu
		default:
			s.relay += x.cpu
			for _, fn := range x.stack {
				if isIdentityFunc(fn) {
					s.identity += x.cpu
					break
				}
			}
		}
	}
	return s
}

// top lists the relay's functions by cumulative CPU (each counted once
// per sample), then by flat CPU, n of each, as percentages of the relay's.
func (p *cpuProfile) top(n int) string {
	flat, cum := map[string]time.Duration{}, map[string]time.Duration{}
	var relay time.Duration
	for _, x := range p.samples {
		if x.bench != "" {
			continue
		}
		relay += x.cpu
		if len(x.stack) > 0 {
			flat[x.stack[0]] += x.cpu
		}
		seen := map[string]bool{}
		for _, fn := range x.stack {
			if !seen[fn] {
				seen[fn] = true
				cum[fn] += x.cpu
			}
		}
	}
	var b strings.Builder
	list := func(title string, m map[string]time.Duration) {
		names := make([]string, 0, len(m))
		for k := range m {
			names = append(names, k)
		}
		sort.Slice(names, func(i, j int) bool {
			return m[names[i]] > m[names[j]] || m[names[i]] == m[names[j]] && names[i] < names[j]
		})
		fmt.Fprintf(&b, "%s:\n", title)
		for _, k := range names[:min(n, len(names))] {
			fmt.Fprintf(&b, "%6.1f%%  %8s  %s\n", 100*float64(m[k])/float64(max(relay, 1)), m[k].Round(time.Millisecond), k)
		}
	}
	list("cumulative", cum)
	list("flat", flat)
	return b.String()
}

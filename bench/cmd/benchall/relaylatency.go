package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/capirelay/capirelay/bench/relay"
)

// buckets is a snapshot of the relay's capirelay_ingest_request_seconds
// histogram for one endpoint: cumulative counts by upper bound (seconds).
type buckets map[float64]float64

// scrapeLatency reads the relay's ingest latency histogram for endpoint
// ("events" or "e") from its /metrics.
func scrapeLatency(ctx context.Context, baseURL, endpoint string) (b buckets, err error) {
	err = relay.ReadMetrics(ctx, baseURL, func(r io.Reader) error {
		b, err = parseLatency(r, endpoint)
		return err
	})
	return b, err
}

// parseLatency picks the bucket lines of endpoint out of the Prometheus
// text format.
func parseLatency(r io.Reader, endpoint string) (buckets, error) {
	prefix := `capirelay_ingest_request_seconds_bucket{endpoint="` + endpoint + `",le="`
	out := buckets{}
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, prefix)
		if !ok {
			continue
		}
		le, count, ok := strings.Cut(rest, `"} `)
		if !ok {
			return nil, fmt.Errorf("bucket line %q", line)
		}
		bound := math.Inf(1)
		if le != "+Inf" {
			var err error
			if bound, err = strconv.ParseFloat(le, 64); err != nil {
				return nil, fmt.Errorf("bucket line %q: %w", line, err)
			}
		}
		n, err := strconv.ParseFloat(count, 64)
		if err != nil {
			return nil, fmt.Errorf("bucket line %q: %w", line, err)
		}
		out[bound] = n
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no capirelay_ingest_request_seconds buckets for endpoint %q", endpoint)
	}
	return out, nil
}

// quantileSince is the upper bound of the bucket holding quantile q of the
// requests counted between before and b: the relay's own latency is at
// most that.
func (b buckets) quantileSince(before buckets, q float64) (time.Duration, bool) {
	bounds := make([]float64, 0, len(b))
	for le := range b {
		bounds = append(bounds, le)
	}
	sort.Float64s(bounds)
	total := b[math.Inf(1)] - before[math.Inf(1)]
	if total <= 0 {
		return 0, false
	}
	for _, le := range bounds {
		if b[le]-before[le] >= q*total {
			if math.IsInf(le, 1) {
				return 0, false
			}
			return time.Duration(le * float64(time.Second)), true
		}
	}
	return 0, false
}

package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// buckets is a snapshot of the relay's capirelay_ingest_request_seconds
// histogram for one endpoint: cumulative counts by upper bound (seconds).
type buckets map[float64]float64

// scrapeLatency reads the relay's ingest latency histogram for endpoint
// ("events" or "e") from its /metrics.
func scrapeLatency(ctx context.Context, baseURL, endpoint string) (buckets, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, baseURL+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	return parseLatency(resp.Body, endpoint)
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

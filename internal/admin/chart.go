package admin

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/capirelay/capirelay/internal/store"
)

// chart is a line chart drawn on the server as SVG: the template only places
// the numbers computed here.
type chart struct {
	W, H      int // viewBox size
	Left, Top int // plot origin
	PW, PH    int // plot size
	Series    []series
	YTicks    []tick
	XTicks    []tick
	Empty     bool
	MidX      int // centre of the plot, for the "no events" label
	MidY      int
	Label     string // accessible description
}

type series struct {
	Name   string
	Class  string
	Points string // "x,y x,y …" for <polyline>
	Total  int
}

type tick struct {
	Pos   float64
	Label string
}

// activityChart draws events in, delivered and dead per minute for the
// window [until-window, until), one point a minute.
func activityChart(counts []store.MinuteCount, until time.Time, window time.Duration) chart {
	c := chart{W: 960, H: 260, Left: 48, Top: 12, PW: 896, PH: 210}
	c.MidX, c.MidY = c.Left+c.PW/2, c.Top+c.PH/2
	n := int(window / time.Minute)
	end := until.Truncate(time.Minute).Add(time.Minute)
	start := end.Add(-time.Duration(n) * time.Minute)
	in, del, dead := make([]int, n), make([]int, n), make([]int, n)
	maxV := 0
	for _, mc := range counts {
		i := int(mc.Minute.Sub(start) / time.Minute)
		if i < 0 || i >= n {
			continue
		}
		in[i], del[i], dead[i] = mc.In, mc.Delivered, mc.Dead
		maxV = max(maxV, mc.In, mc.Delivered, mc.Dead)
	}
	top := niceCeil(maxV)
	c.Empty = maxV == 0
	x := func(i int) float64 { return float64(c.Left) + float64(i)*float64(c.PW)/float64(max(n-1, 1)) }
	y := func(v int) float64 { return float64(c.Top+c.PH) - float64(v)*float64(c.PH)/float64(top) }
	line := func(name, class string, vs []int) series {
		var b strings.Builder
		total := 0
		for i, v := range vs {
			total += v
			if i > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(strconv.FormatFloat(x(i), 'f', 1, 64))
			b.WriteByte(',')
			b.WriteString(strconv.FormatFloat(y(v), 'f', 1, 64))
		}
		return series{Name: name, Class: class, Points: b.String(), Total: total}
	}
	c.Series = []series{line("in", "s-in", in), line("delivered", "s-delivered", del), line("dead", "s-dead", dead)}
	for k := 0; k <= 4; k++ {
		v := top * k / 4
		c.YTicks = append(c.YTicks, tick{Pos: y(v), Label: strconv.Itoa(v)})
	}
	for i := 0; i < n; i++ {
		t := start.Add(time.Duration(i) * time.Minute).UTC()
		if t.Minute() == 0 && t.Hour()%4 == 0 {
			c.XTicks = append(c.XTicks, tick{Pos: x(i), Label: t.Format("15:04")})
		}
	}
	c.Label = fmt.Sprintf("Events per minute over the last %s (UTC): %d in, %d delivered, %d dead.",
		window, c.Series[0].Total, c.Series[1].Total, c.Series[2].Total)
	return c
}

// niceCeil rounds v up to four times a round step (1, 2, 2.5 or 5 times a
// power of ten), so the four grid lines fall on whole, readable numbers.
func niceCeil(v int) int {
	if v <= 4 {
		return 4
	}
	raw := float64(v) / 4
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		step := m * p
		if step != math.Trunc(step) {
			continue
		}
		if step >= raw {
			return int(4 * step)
		}
	}
	return int(40 * p)
}

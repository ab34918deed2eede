package simnet

import (
	"bytes"
	"fmt"
	"html/template"
	"io"
	"math"
	"sort"
	"strings"
)

// WriteHTML writes the report as one self-contained page: the table and
// its legend, and charts (inline SVG; no script, style sheet, font or
// image is fetched) of delivery over virtual time, the latency
// distributions, mailbox depth per relay, refusals by reason and churn.
func (r *Report) WriteHTML(w io.Writer) error {
	var table bytes.Buffer
	r.WriteTable(&table)
	data := struct {
		R      *Report
		Table  string
		Charts []template.HTML
	}{R: r, Table: table.String()}

	// Delivery over virtual time.
	var sent, delivered, offline []point
	for _, t := range r.Timeline {
		sent = append(sent, point{t.AtSeconds, float64(t.Sent)})
		delivered = append(delivered, point{t.AtSeconds, float64(t.Delivered)})
		offline = append(offline, point{t.AtSeconds, float64(t.Offline)})
	}
	data.Charts = append(data.Charts,
		lineChart("delivery", "Delivery over virtual time", "virtual time (s)", "items (shares to a target, requests, answers)",
			[]series{{"sent", "#4269d0", sent}, {"delivered", "#3ca951", delivered}}))

	// Latency distributions.
	labels := make([]string, 0, len(LatencyBuckets)+1)
	for _, b := range LatencyBuckets {
		labels = append(labels, formatMs(b))
	}
	labels = append(labels, ">"+formatMs(LatencyBuckets[len(LatencyBuckets)-1]))
	data.Charts = append(data.Charts, histogram("latency", "Latency distributions (virtual time; each bar: up to its bound)", labels,
		[]bars{{"share → target", "#4269d0", r.ShareLatency.Buckets}, {"pick → request", "#efb118", r.RequestLatency.Buckets},
			{"accept → answer", "#3ca951", r.AnswerLatency.Buckets}}))

	// Mailbox depth per relay.
	var depth []series
	for i := range r.PerRelay {
		var pts []point
		for _, d := range r.MailboxDepth {
			if i < len(d.PerRelay) {
				pts = append(pts, point{d.AtSeconds, float64(d.PerRelay[i])})
			}
		}
		depth = append(depth, series{fmt.Sprintf("relay %d", i), palette[i%len(palette)], pts})
	}
	data.Charts = append(data.Charts, lineChart("mailboxes", "Items waiting in the relays' mailboxes", "virtual time (s)", "items", depth))

	// Refusals by reason.
	var reasons []string
	for k := range r.Refusals {
		reasons = append(reasons, k)
	}
	sort.Strings(reasons)
	counts := make([]int, len(reasons))
	for i, k := range reasons {
		counts[i] = r.Refusals[k]
	}
	data.Charts = append(data.Charts, barList("refusals", "Relay refusals by reason", reasons, counts))

	// Churn.
	data.Charts = append(data.Charts, lineChart("churn", "Nodes offline (churn)", "virtual time (s)", "nodes offline",
		[]series{{"offline", "#ff725c", offline}}))

	return pageTemplate.Execute(w, data)
}

var palette = []string{"#4269d0", "#efb118", "#ff725c", "#6cc5b0", "#3ca951", "#ff8ab7", "#a463f2", "#97bbf5", "#9c6b4e", "#9498a0"}

type point struct{ x, y float64 }

type series struct {
	name, color string
	pts         []point
}

type bars struct {
	name, color string
	counts      []int
}

const (
	chartW, chartH = 640, 260
	padL, padR     = 64, 16
	padT, padB     = 32, 44
)

// svgOpen starts a chart: its frame, title and axis labels.
func svgOpen(b *strings.Builder, id, title, xlabel, ylabel string) {
	fmt.Fprintf(b, `<svg class="chart" id="chart-%s" width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="%s">`,
		id, chartW, chartH, chartW, chartH, template.HTMLEscapeString(title))
	fmt.Fprintf(b, `<text x="%d" y="18" class="title">%s</text>`, padL, template.HTMLEscapeString(title))
	fmt.Fprintf(b, `<text x="%d" y="%d" class="axis" text-anchor="middle">%s</text>`, padL+(chartW-padL-padR)/2, chartH-6, template.HTMLEscapeString(xlabel))
	fmt.Fprintf(b, `<text x="12" y="%d" class="axis" text-anchor="middle" transform="rotate(-90 12 %d)">%s</text>`,
		padT+(chartH-padT-padB)/2, padT+(chartH-padT-padB)/2, template.HTMLEscapeString(ylabel))
}

// niceMax rounds v up to 1, 2 or 5 times a power of ten.
func niceMax(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

func lineChart(id, title, xlabel, ylabel string, ss []series) template.HTML {
	var b strings.Builder
	svgOpen(&b, id, title, xlabel, ylabel)
	var xmin, xmax, ymax float64 = math.Inf(1), math.Inf(-1), 0
	for _, s := range ss {
		for _, p := range s.pts {
			xmin, xmax, ymax = math.Min(xmin, p.x), math.Max(xmax, p.x), math.Max(ymax, p.y)
		}
	}
	if math.IsInf(xmin, 0) {
		xmin, xmax = 0, 1
	}
	if xmax <= xmin {
		xmax = xmin + 1
	}
	ymax = niceMax(ymax)
	px := func(x float64) float64 { return padL + (x-xmin)/(xmax-xmin)*float64(chartW-padL-padR) }
	py := func(y float64) float64 { return float64(chartH-padB) - y/ymax*float64(chartH-padT-padB) }
	axes(&b, ymax, func(i int) (float64, string) {
		x := xmin + (xmax-xmin)*float64(i)/4
		return px(x), fmt.Sprintf("%.0f", x)
	}, 5)
	for i, s := range ss {
		if len(s.pts) == 0 {
			continue
		}
		var d strings.Builder
		for j, p := range s.pts {
			fmt.Fprintf(&d, "%s%.1f,%.1f", map[bool]string{true: "M", false: " L"}[j == 0], px(p.x), py(p.y))
		}
		fmt.Fprintf(&b, `<path class="line" d="%s" stroke="%s"/>`, d.String(), s.color)
		legend(&b, i, s.name, s.color)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// axes draws the y axis from 0 to ymax with grid lines, and the x axis
// with n ticks from xtick.
func axes(b *strings.Builder, ymax float64, xtick func(int) (float64, string), n int) {
	for i := 0; i <= 4; i++ {
		y := float64(chartH-padB) - float64(i)/4*float64(chartH-padT-padB)
		fmt.Fprintf(b, `<line class="grid" x1="%d" x2="%d" y1="%.1f" y2="%.1f"/>`, padL, chartW-padR, y, y)
		fmt.Fprintf(b, `<text class="tick" x="%d" y="%.1f" text-anchor="end">%s</text>`, padL-6, y+4, formatCount(ymax*float64(i)/4))
	}
	for i := 0; i < n; i++ {
		x, label := xtick(i)
		fmt.Fprintf(b, `<text class="tick" x="%.1f" y="%d" text-anchor="middle">%s</text>`, x, chartH-padB+16, template.HTMLEscapeString(label))
	}
	fmt.Fprintf(b, `<line class="axisline" x1="%d" x2="%d" y1="%d" y2="%d"/>`, padL, chartW-padR, chartH-padB, chartH-padB)
}

func legend(b *strings.Builder, i int, name, color string) {
	x := chartW - padR - 150
	y := padT + 4 + 16*i
	fmt.Fprintf(b, `<rect x="%d" y="%d" width="10" height="10" fill="%s"/><text class="legend" x="%d" y="%d">%s</text>`,
		x, y, color, x+14, y+9, template.HTMLEscapeString(name))
}

func histogram(id, title string, labels []string, groups []bars) template.HTML {
	var b strings.Builder
	svgOpen(&b, id, title, "latency", "items")
	ymax := 0
	for _, g := range groups {
		for _, c := range g.counts {
			ymax = max(ymax, c)
		}
	}
	ym := niceMax(float64(ymax))
	slot := float64(chartW-padL-padR) / float64(len(labels))
	bw := slot * 0.8 / float64(len(groups))
	py := func(y float64) float64 { return float64(chartH-padB) - y/ym*float64(chartH-padT-padB) }
	axes(&b, ym, func(i int) (float64, string) {
		return padL + slot*(float64(i)+0.5), labels[i]
	}, len(labels))
	for gi, g := range groups {
		for i, c := range g.counts {
			if c == 0 {
				continue
			}
			x := padL + slot*float64(i) + slot*0.1 + bw*float64(gi)
			fmt.Fprintf(&b, `<rect class="bar" x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s %s: %d</title></rect>`,
				x, py(float64(c)), bw, float64(chartH-padB)-py(float64(c)), g.color, template.HTMLEscapeString(g.name), template.HTMLEscapeString(labels[i]), c)
		}
		legend(&b, gi, g.name, g.color)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

func barList(id, title string, labels []string, counts []int) template.HTML {
	var b strings.Builder
	h := max(chartH, padT+padB+22*len(labels))
	fmt.Fprintf(&b, `<svg class="chart" id="chart-%s" width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="%s">`,
		id, chartW, h, chartW, h, template.HTMLEscapeString(title))
	fmt.Fprintf(&b, `<text x="%d" y="18" class="title">%s</text>`, padL, template.HTMLEscapeString(title))
	if len(labels) == 0 {
		fmt.Fprintf(&b, `<text class="legend" x="%d" y="%d">no refusals</text>`, padL, padT+20)
	}
	most := 1
	for _, c := range counts {
		most = max(most, c)
	}
	left, width := 230, chartW-230-padR-60
	for i, l := range labels {
		y := padT + 22*i
		w := float64(counts[i]) / float64(most) * float64(width)
		fmt.Fprintf(&b, `<text class="tick" x="%d" y="%d" text-anchor="end">%s</text>`, left-6, y+13, template.HTMLEscapeString(l))
		fmt.Fprintf(&b, `<rect class="bar" x="%d" y="%d" width="%.1f" height="16" fill="%s"/>`, left, y, w, palette[2])
		fmt.Fprintf(&b, `<text class="tick" x="%.1f" y="%d">%d</text>`, float64(left)+w+4, y+13, counts[i])
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

func formatMs(ms float64) string {
	switch {
	case ms >= 60_000:
		return fmt.Sprintf("%.0fmin", ms/60_000)
	case ms >= 1000:
		return fmt.Sprintf("%.0fs", ms/1000)
	}
	return fmt.Sprintf("%.0fms", ms)
}

func formatCount(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.1fM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.0fk", v/1e3)
	case v == math.Trunc(v):
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

var pageTemplate = template.Must(template.New("report").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>kith-simnet: {{.R.Nodes}} nodes, {{.R.Relays}} relays, seed {{.R.Seed}}</title>
<style>
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px; color: #1d1d1f; background: #fff; }
h1 { font-size: 20px; margin: 0 0 4px; }
.verdict { font-weight: 600; margin: 0 0 16px; }
.verdict.ok { color: #1f7a3a; } .verdict.broken { color: #b3261e; }
.charts { display: flex; flex-wrap: wrap; gap: 16px; }
svg.chart { border: 1px solid #ddd; border-radius: 6px; background: #fcfcfd; }
svg .title { font-size: 14px; font-weight: 600; fill: #1d1d1f; }
svg .axis, svg .tick, svg .legend { font-size: 11px; fill: #555; }
svg .grid { stroke: #e6e6e6; } svg .axisline { stroke: #999; }
svg .line { fill: none; stroke-width: 2; }
pre { background: #f6f6f8; padding: 12px; border-radius: 6px; overflow-x: auto; font-size: 12px; }
</style>
</head>
<body>
<h1>kith-simnet: {{.R.Nodes}} nodes, {{.R.Relays}} relays, churn {{.R.Churn}}, {{.R.Adversaries}} adversaries, seed {{.R.Seed}}</h1>
{{if .R.OK}}<p class="verdict ok" id="verdict">Every promise held: everything valid delivered, nothing shown twice, nothing forged accepted.</p>
{{else}}<p class="verdict broken" id="verdict">A promise broke: see the table below.</p>{{end}}
<div class="charts">
{{range .Charts}}{{.}}
{{end}}</div>
<h2>The report</h2>
<pre id="table">{{.Table}}</pre>
</body>
</html>
`))

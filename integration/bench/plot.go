package main

import (
	"fmt"
	"image/color"
	"math"
	"path/filepath"
	"sort"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// toolColors gives every tool and filter the same color in every plot.
var toolColors = map[string]color.RGBA{
	"dockerfence":       {R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
	"nft -f":            {R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff},
	"iptables-restore":  {R: 0xff, G: 0x7f, B: 0x0e, A: 0xff},
	"iptables per rule": {R: 0xd6, G: 0x27, B: 0x28, A: 0xff},
	"iptables linear":   {R: 0xff, G: 0x7f, B: 0x0e, A: 0xff},
	"none":              {R: 0x7f, G: 0x7f, B: 0x7f, A: 0xff},
}

// plotApply draws apply time against prefixes, log-log, one line per tool
// and network count (dashed for 50 networks); extrapolated points are
// drawn hollow.
func plotApply(r *Report, file string) error {
	p := plot.New()
	p.Title.Text = "Apply time against prefixes (median; hollow = extrapolated)"
	p.X.Label.Text = "prefixes"
	p.Y.Label.Text = "apply time (ms)"
	p.X.Scale, p.Y.Scale = plot.LogScale{}, plot.LogScale{}
	p.X.Tick.Marker, p.Y.Tick.Marker = plot.LogTicks{Prec: -1}, plot.LogTicks{Prec: -1}
	p.Legend.Top, p.Legend.Left = true, true
	type key struct {
		tool     string
		networks int
	}
	series := map[key][]ApplyResult{}
	for _, a := range r.Apply {
		if a.MedianMS > 0 {
			k := key{a.Tool, a.Networks}
			series[k] = append(series[k], a)
		}
	}
	keys := make([]key, 0, len(series))
	for k := range series {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].tool != keys[j].tool {
			return keys[i].tool < keys[j].tool
		}
		return keys[i].networks < keys[j].networks
	})
	for _, k := range keys {
		pts := series[k]
		sort.Slice(pts, func(i, j int) bool { return pts[i].Prefixes < pts[j].Prefixes })
		xy := make(plotter.XYs, len(pts))
		for i, a := range pts {
			xy[i] = plotter.XY{X: float64(a.Prefixes), Y: a.MedianMS}
		}
		line, points, err := plotter.NewLinePoints(xy)
		if err != nil {
			return err
		}
		c := toolColors[k.tool]
		line.Color, points.Color = c, c
		line.Width = vg.Points(1.5)
		if k.networks > 1 {
			line.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
		}
		points.Shape = draw.CircleGlyph{}
		p.Add(line, points)
		var hollow plotter.XYs
		for _, a := range pts {
			if a.Extrapolated {
				hollow = append(hollow, plotter.XY{X: float64(a.Prefixes), Y: a.MedianMS})
			}
		}
		if len(hollow) > 0 {
			h, err := plotter.NewScatter(hollow)
			if err != nil {
				return err
			}
			h.Color, h.Shape, h.Radius = color.White, draw.CircleGlyph{}, vg.Points(2)
			p.Add(h)
		}
		p.Legend.Add(fmt.Sprintf("%s, %d network%s", k.tool, k.networks, plural(k.networks)), line, points)
	}
	return p.Save(8*vg.Inch, 5*vg.Inch, file)
}

// plotDatapath draws throughput as a ratio of the baseline against
// prefixes, one line per filter.
func plotDatapath(r *Report, file string) error {
	p := plot.New()
	p.Title.Text = "TCP throughput through the fenced host, ratio to no filter (same run)"
	p.X.Label.Text = "deny prefixes, none of which match the traffic (0 is drawn at 100)"
	p.Y.Label.Text = "throughput / baseline"
	p.Legend.Top = false
	p.Legend.Left = true
	series := map[string]plotter.XYs{}
	for _, d := range r.Datapath {
		if d.Filter == "none" {
			continue
		}
		// A log axis cannot show 0 prefixes: it is drawn at 100.
		x := math.Max(float64(d.Prefixes), 100)
		series[d.Filter] = append(series[d.Filter], plotter.XY{X: x, Y: d.Ratio})
	}
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Y.Min, p.Y.Max = 0, 1.1
	base := plotter.NewFunction(func(float64) float64 { return 1 })
	base.Color, base.Dashes = toolColors["none"], []vg.Length{vg.Points(2), vg.Points(2)}
	p.Add(base)
	p.Legend.Add("no filter (baseline = 1)", base)
	target := plotter.NewFunction(func(float64) float64 { return 0.95 })
	target.Color, target.Dashes = color.RGBA{R: 0xbb, G: 0xbb, B: 0xbb, A: 0xff}, []vg.Length{vg.Points(1), vg.Points(3)}
	p.Add(target)
	p.Legend.Add("target 0.95", target)
	names := make([]string, 0, len(series))
	for n := range series {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		xy := series[n]
		sort.Slice(xy, func(i, j int) bool { return xy[i].X < xy[j].X })
		line, points, err := plotter.NewLinePoints(xy)
		if err != nil {
			return err
		}
		line.Color, points.Color = toolColors[n], toolColors[n]
		line.Width = vg.Points(1.5)
		points.Shape = draw.CircleGlyph{}
		p.Add(line, points)
		p.Legend.Add(n, line, points)
	}
	return p.Save(8*vg.Inch, 5*vg.Inch, file)
}

// writePlots draws every plot into dir and returns their file names.
func writePlots(r *Report, dir string) ([]string, error) {
	var files []string
	if len(r.Apply) > 0 {
		f := filepath.Join(dir, "apply.png")
		if err := plotApply(r, f); err != nil {
			return nil, fmt.Errorf("apply plot: %w", err)
		}
		files = append(files, f)
	}
	if len(r.Datapath) > 0 {
		f := filepath.Join(dir, "datapath.png")
		if err := plotDatapath(r, f); err != nil {
			return nil, fmt.Errorf("data path plot: %w", err)
		}
		files = append(files, f)
	}
	return files, nil
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// Package emf writes a few of the service's Prometheus metrics as
// CloudWatch embedded metric format (EMF): one JSON line per interval in
// the log, which CloudWatch Logs turns into metrics, with no agent, no
// sidecar and no AWS call from the service. Only what an operator alarms
// on or graphs goes out, aggregated over the fleet (no per-task
// dimension), because every metric and dimension value is billed.
package emf

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// metric says how one Prometheus family becomes one CloudWatch metric:
// counters and histograms as what happened since the last line (a sum, or
// an average of the observations), gauges as they are now. When label is
// set, its values become those of the dimension; other labels are summed
// over.
type metric struct {
	family, name, unit string
	label, dimension   string
}

// metrics is what goes to CloudWatch.
var metrics = []metric{
	{"resizer_webhook_records_total", "WebhookRecords", "Count", "outcome", "Outcome"},
	{"resizer_gate_rejected_total", "Shed", "Count", "", ""},
	{"resizer_webhook_lag_seconds", "EventLag", "Seconds", "", ""},
	{"resizer_image_process_seconds", "ProcessSeconds", "Seconds", "", ""},
	{"resizer_gate_working", "Working", "Count", "", ""},
}

// Writer turns the registry's metrics into EMF lines.
type Writer struct {
	namespace string
	gatherer  prometheus.Gatherer
	out       io.Writer
	last      map[string]float64 // counters' and histograms' sums and counts at the last line
}

// New returns a Writer of gatherer's metrics into out, in namespace.
func New(namespace string, gatherer prometheus.Gatherer, out io.Writer) *Writer {
	return &Writer{namespace: namespace, gatherer: gatherer, out: out, last: map[string]float64{}}
}

// Run writes every interval until ctx ends, then once more, so that the
// last minute of a stopping task is counted too.
func (w *Writer) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			w.Flush(time.Now())
			return
		case now := <-t.C:
			w.Flush(now)
		}
	}
}

// Flush writes the lines for the time since the last one: one without
// dimensions, and one per value of each dimension (EMF takes one value of
// a dimension per line). Each line is a single Write, so that it does not
// interleave with the log's.
func (w *Writer) Flush(now time.Time) error {
	families, err := w.gatherer.Gather()
	if err != nil {
		return fmt.Errorf("emf: gather: %w", err)
	}
	byName := map[string]*dto.MetricFamily{}
	for _, f := range families {
		byName[f.GetName()] = f
	}
	plain := map[string]float64{}
	units := map[string]string{}
	split := map[[2]string]map[string]float64{} // dimension and value -> metric -> value
	for _, m := range metrics {
		f := byName[m.family]
		if f == nil {
			continue
		}
		groups := map[string][2]float64{} // label value -> sum, count
		for _, s := range f.GetMetric() {
			key := ""
			if m.label != "" {
				key = labelValue(s, m.label)
			}
			g := groups[key]
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				g[0] += s.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				g[0] += s.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				g[0] += s.GetHistogram().GetSampleSum()
				g[1] += float64(s.GetHistogram().GetSampleCount())
			}
			groups[key] = g
		}
		units[m.name] = m.unit
		for key, g := range groups {
			v, ok := w.value(f.GetType(), m.name+"|"+key, g)
			if !ok {
				continue
			}
			if m.label == "" {
				plain[m.name] = v
				continue
			}
			dim := [2]string{m.dimension, key}
			if split[dim] == nil {
				split[dim] = map[string]float64{}
			}
			split[dim][m.name] = v
		}
	}
	if err := w.write(now, nil, plain, units); err != nil {
		return err
	}
	dims := make([][2]string, 0, len(split))
	for d := range split {
		dims = append(dims, d)
	}
	sort.Slice(dims, func(i, j int) bool { return dims[i][0]+dims[i][1] < dims[j][0]+dims[j][1] })
	for _, d := range dims {
		if err := w.write(now, map[string]string{d[0]: d[1]}, split[d], units); err != nil {
			return err
		}
	}
	return nil
}

// value is what a family reports for this line: a gauge as it is, a
// counter's growth since the last line, a histogram's average over the
// observations since then (none: nothing to report).
func (w *Writer) value(typ dto.MetricType, key string, g [2]float64) (float64, bool) {
	switch typ {
	case dto.MetricType_GAUGE:
		return g[0], true
	case dto.MetricType_COUNTER:
		d := g[0] - w.last[key]
		w.last[key] = g[0]
		return max(d, 0), true
	case dto.MetricType_HISTOGRAM:
		sum, n := g[0]-w.last[key+"|sum"], g[1]-w.last[key+"|count"]
		w.last[key+"|sum"], w.last[key+"|count"] = g[0], g[1]
		if n <= 0 {
			return 0, false
		}
		return sum / n, true
	}
	return 0, false
}

func labelValue(s *dto.Metric, name string) string {
	for _, l := range s.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// write writes one EMF line with values and, when given, dimensions.
func (w *Writer) write(now time.Time, dims map[string]string, values map[string]float64, units map[string]string) error {
	if len(values) == 0 {
		return nil
	}
	type def struct {
		Name string `json:"Name"`
		Unit string `json:"Unit"`
	}
	names := make([]string, 0, len(values))
	for n := range values {
		names = append(names, n)
	}
	sort.Strings(names)
	defs := make([]def, len(names))
	for i, n := range names {
		defs[i] = def{n, units[n]}
	}
	dimSet := []string{}
	line := map[string]any{}
	for k, v := range dims {
		dimSet = append(dimSet, k)
		line[k] = v
	}
	sort.Strings(dimSet)
	for n, v := range values {
		line[n] = v
	}
	line["_aws"] = map[string]any{
		"Timestamp": now.UnixMilli(),
		"CloudWatchMetrics": []any{map[string]any{
			"Namespace":  w.namespace,
			"Dimensions": [][]string{dimSet},
			"Metrics":    defs,
		}},
	}
	b, err := json.Marshal(line)
	if err != nil {
		return err
	}
	_, err = w.out.Write(append(b, '\n'))
	return err
}

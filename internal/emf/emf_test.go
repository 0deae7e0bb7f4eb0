package emf

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// line is what the test reads back of an EMF line.
type line struct {
	AWS struct {
		Timestamp         int64
		CloudWatchMetrics []struct {
			Namespace  string
			Dimensions [][]string
			Metrics    []struct{ Name, Unit string }
		}
	} `json:"_aws"`
	Values map[string]any `json:"-"`
}

func parse(t *testing.T, out string) []line {
	t.Helper()
	var lines []line
	for _, s := range strings.Split(strings.TrimSpace(out), "\n") {
		var l line
		if err := json.Unmarshal([]byte(s), &l); err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		json.Unmarshal([]byte(s), &l.Values)
		// Every metric the directive names is a number in the line, and
		// every dimension a string: what CloudWatch Logs requires.
		for _, d := range l.AWS.CloudWatchMetrics {
			for _, m := range d.Metrics {
				if _, ok := l.Values[m.Name].(float64); !ok {
					t.Errorf("%s: metric %s has no number", s, m.Name)
				}
			}
			for _, set := range d.Dimensions {
				for _, k := range set {
					if _, ok := l.Values[k].(string); !ok {
						t.Errorf("%s: dimension %s has no string", s, k)
					}
				}
			}
		}
		lines = append(lines, l)
	}
	return lines
}

// Counters go out as their growth since the last line, histograms as the
// average of the new observations, gauges as they are; a labelled counter
// is one line per value of its dimension.
func TestFlush(t *testing.T) {
	reg := prometheus.NewRegistry()
	records := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "resizer_webhook_records_total"}, []string{"event", "outcome"})
	shed := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "resizer_gate_rejected_total"}, []string{"reason"})
	lag := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "resizer_webhook_lag_seconds"})
	working := prometheus.NewGauge(prometheus.GaugeOpts{Name: "resizer_gate_working"})
	other := prometheus.NewCounter(prometheus.CounterOpts{Name: "resizer_http_requests_total"})
	reg.MustRegister(records, shed, lag, working, other)

	records.WithLabelValues("created", "processed").Add(5)
	records.WithLabelValues("removed", "processed").Add(2)
	records.WithLabelValues("created", "error").Add(1)
	shed.WithLabelValues("queue_full").Add(3)
	shed.WithLabelValues("timeout").Add(1)
	lag.Observe(1)
	lag.Observe(3)
	working.Set(2)
	other.Add(100)

	var out bytes.Buffer
	w := New("resizer/prod", reg, &out)
	at := time.Unix(1795600000, 0)
	if err := w.Flush(at); err != nil {
		t.Fatal(err)
	}
	lines := parse(t, out.String())
	if len(lines) != 3 {
		t.Fatalf("%d lines, want 3 (plain, error, processed):\n%s", len(lines), out.String())
	}
	plain, errs, processed := lines[0], lines[1], lines[2]
	if plain.AWS.Timestamp != at.UnixMilli() || plain.AWS.CloudWatchMetrics[0].Namespace != "resizer/prod" {
		t.Errorf("directive %+v", plain.AWS)
	}
	if plain.Values["Shed"] != 4.0 || plain.Values["EventLag"] != 2.0 || plain.Values["Working"] != 2.0 {
		t.Errorf("plain line %v", plain.Values)
	}
	if _, ok := plain.Values["resizer_http_requests_total"]; ok || len(plain.AWS.CloudWatchMetrics[0].Metrics) != 3 {
		t.Errorf("metrics not asked for went out: %v", plain.Values)
	}
	if processed.Values["Outcome"] != "processed" || processed.Values["WebhookRecords"] != 7.0 ||
		errs.Values["Outcome"] != "error" || errs.Values["WebhookRecords"] != 1.0 ||
		processed.AWS.CloudWatchMetrics[0].Dimensions[0][0] != "Outcome" {
		t.Errorf("outcome lines %v %v", errs.Values, processed.Values)
	}

	// The next line counts only what happened since; a histogram with no
	// new observation says nothing.
	out.Reset()
	records.WithLabelValues("created", "processed").Add(1)
	working.Set(0)
	if err := w.Flush(at.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	lines = parse(t, out.String())
	if lines[0].Values["Shed"] != 0.0 || lines[0].Values["Working"] != 0.0 {
		t.Errorf("second plain line %v", lines[0].Values)
	}
	if _, ok := lines[0].Values["EventLag"]; ok {
		t.Errorf("EventLag without observations: %v", lines[0].Values)
	}
	if lines[2].Values["WebhookRecords"] != 1.0 || lines[1].Values["WebhookRecords"] != 0.0 {
		t.Errorf("second outcome lines %v %v", lines[1].Values, lines[2].Values)
	}
}

package imageproc

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the collectors of image work. A nil *metrics records nothing,
// so a Gate or Processor built without a registry works in tests.
type metrics struct {
	process   *prometheus.HistogramVec
	bytes     *prometheus.CounterVec
	wait      prometheus.Histogram
	admitted  prometheus.Gauge
	working   prometheus.Gauge
	rejection *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		process: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "resizer_image_process_seconds",
			Help:    "Time spent in libvips per image, by output format.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"format"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "resizer_image_bytes_total",
			Help: "Image bytes processed, by direction (in, out).",
		}, []string{"direction"}),
		wait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "resizer_gate_wait_seconds",
			Help:    "Time a request waited for a processing slot.",
			Buckets: []float64{.001, .005, .01, .05, .1, .25, .5, 1, 2.5, 5},
		}),
		admitted: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "resizer_gate_admitted",
			Help: "Requests admitted to image work (reading, waiting or working).",
		}),
		working: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "resizer_gate_working",
			Help: "Requests holding a processing slot.",
		}),
		rejection: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "resizer_gate_rejected_total",
			Help: "Requests refused with 503 by the gate, by reason.",
		}, []string{"reason"}),
	}
	for _, c := range []prometheus.Collector{m.process, m.bytes, m.wait, m.admitted, m.working, m.rejection} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) processed(f Format, d time.Duration, in, out int) {
	if m == nil {
		return
	}
	m.process.WithLabelValues(f.String()).Observe(d.Seconds())
	m.bytes.WithLabelValues("in").Add(float64(in))
	m.bytes.WithLabelValues("out").Add(float64(out))
}

func (m *metrics) waited(d time.Duration) {
	if m != nil {
		m.wait.Observe(d.Seconds())
	}
}

func (m *metrics) admittedInc(n float64) {
	if m != nil {
		m.admitted.Add(n)
	}
}

func (m *metrics) workingInc(n float64) {
	if m != nil {
		m.working.Add(n)
	}
}

func (m *metrics) rejected(reason string) {
	if m != nil {
		m.rejection.WithLabelValues(reason).Inc()
	}
}

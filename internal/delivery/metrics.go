package delivery

import "github.com/prometheus/client_golang/prometheus"

// metrics count the answers by where they came from, and what purges
// removed. A nil *metrics records nothing.
type metrics struct {
	answers     *prometheus.CounterVec
	deleted     prometheus.Counter
	invalidated prometheus.Counter
	remembered  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	m := &metrics{
		answers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "resizer_delivery_images_total",
			Help: "Images served by URL, by where they came from (hit, variant, rendered, shared: waited on another request's render).",
		}, []string{"outcome"}),
		deleted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "resizer_delivery_purged_total",
			Help: "Derived images deleted because their original changed or went.",
		}),
		invalidated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "resizer_delivery_invalidated_paths_total",
			Help: "Paths invalidated at the CDN.",
		}),
		remembered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "resizer_delivery_failures_remembered_total",
			Help: "Requests answered with the remembered failure of an earlier render of the same image (FAILURE_TTL), without rendering.",
		}),
	}
	for _, c := range []prometheus.Collector{m.answers, m.deleted, m.invalidated, m.remembered} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) served(o Outcome) {
	if m != nil {
		m.answers.WithLabelValues(string(o)).Inc()
	}
}

func (m *metrics) purged(images, paths int) {
	if m != nil {
		m.deleted.Add(float64(images))
		m.invalidated.Add(float64(paths))
	}
}

func (m *metrics) failureRemembered() {
	if m != nil {
		m.remembered.Inc()
	}
}

package nameserver

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the nameserver's Prometheus metrics, in a registry of its own
// (no global state: several nameservers can share a process in tests).
type metrics struct {
	reg           *prometheus.Registry
	commands      *prometheus.CounterVec
	fsyncs        prometheus.Counter
	batchSize     prometheus.Histogram
	commitSeconds prometheus.Histogram
	assigns       prometheus.Counter
	leased        prometheus.Counter
	requests      *prometheus.CounterVec
	latency       *prometheus.HistogramVec
	bytesIn       prometheus.Counter
	bytesOut      prometheus.Counter
	forwarded     prometheus.Counter
	repeats       prometheus.Counter
	keptDeletes   prometheus.Counter
	// lifecycle worker
	lifecyclePasses      prometheus.Counter
	lifecycleLastPass    prometheus.Gauge
	lifecyclePassSeconds prometheus.Gauge
	lifecycleScanned     prometheus.Counter
	lifecycleActions     *prometheus.CounterVec
	lifecycleSkipped     *prometheus.CounterVec
}

// Registry returns the registry /metrics serves, to which a command may
// add its own collectors (depot_build_info).
func (s *Server) Registry() *prometheus.Registry { return s.metrics.reg }

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "depot_nameserver_commands_total", Help: "Commands committed, by type.",
		}, []string{"type"}),
		fsyncs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "depot_nameserver_commits_total", Help: "bbolt transactions committed (one fsync each).",
		}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "depot_nameserver_commit_batch_commands", Help: "Commands per group commit.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 12),
		}),
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "depot_nameserver_commit_seconds", Help: "Time to apply and commit one batch.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 14),
		}),
		assigns: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "depot_nameserver_assigns_total", Help: "Successful assign calls.",
		}),
		leased: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "depot_nameserver_needles_leased_total", Help: "Needle ids leased.",
		}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "depot_nameserver_http_requests_total", Help: "HTTP requests, by route and status code.",
		}, []string{"route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "depot_nameserver_http_request_seconds", Help: "HTTP request latency, by route.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}, []string{"route"}),
		bytesIn: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "depot_nameserver_http_bytes_in_total", Help: "Request body bytes read by the HTTP API (metadata only).",
		}),
		bytesOut: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "depot_nameserver_http_bytes_out_total", Help: "Response body bytes written by the HTTP API (metadata only).",
		}),
		forwarded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "depot_nameserver_forwarded_total", Help: "API requests a raft follower forwarded to the leader.",
		}),
		repeats: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "depot_nameserver_command_repeats_total",
			Help: "Commands answered with the result recorded for their request id instead of being applied again.",
		}),
		keptDeletes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "depot_nameserver_delete_queue_referenced_total",
			Help: "Delete queue entries dropped without deleting because their segment is referenced (should stay 0).",
		}),
		lifecyclePasses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "depot_nameserver_lifecycle_passes_total",
			Help: "Lifecycle passes completed over every bucket with rules.",
		}),
		lifecycleLastPass: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "depot_nameserver_lifecycle_last_pass_timestamp_seconds",
			Help: "Unix time the last lifecycle pass ended.",
		}),
		lifecyclePassSeconds: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "depot_nameserver_lifecycle_pass_seconds",
			Help: "How long the last lifecycle pass took.",
		}),
		lifecycleScanned: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "depot_nameserver_lifecycle_versions_scanned_total",
			Help: "Object versions the lifecycle worker read.",
		}),
		lifecycleActions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "depot_nameserver_lifecycle_actions_total",
			Help: "Lifecycle actions applied, by kind (expire, noncurrent, marker, abort).",
		}, []string{"kind"}),
		lifecycleSkipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "depot_nameserver_lifecycle_skipped_total",
			Help: "Lifecycle actions refused when proposed (the object changed, Object Lock, already gone), by kind.",
		}, []string{"kind"}),
	}
	m.reg.MustRegister(m.commands, m.fsyncs, m.batchSize, m.commitSeconds, m.assigns, m.leased, m.requests,
		m.latency, m.bytesIn, m.bytesOut, m.forwarded, m.repeats, m.keptDeletes,
		m.lifecyclePasses, m.lifecycleLastPass, m.lifecyclePassSeconds, m.lifecycleScanned, m.lifecycleActions, m.lifecycleSkipped,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

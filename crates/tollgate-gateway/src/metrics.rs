//! The gateway's own cost, exported for Prometheus on `GET /metrics`.
//!
//! The headline series is `tollgate_overhead_seconds`: per request, total time in the handler
//! minus the time spent waiting on the provider (the same `overhead_ms` every record carries).
//! Observing is a few relaxed atomic adds on a pre-resolved histogram, so it stays on the hot
//! path; building the text happens only when something scrapes.

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};
use tollgate_store::RecordWriter;

use crate::breaker::{Breaker, CircuitState};

/// Bucket bounds in seconds: 10 µs to 1 s. Dense below 1 ms, where a healthy gateway lives, so
/// p50/p99 of the overhead can be read from the buckets without a per-request log.
const OVERHEAD_BUCKETS: &[f64] = &[
    0.000_01, 0.000_025, 0.000_05, 0.000_075, 0.000_1, 0.000_15, 0.000_2, 0.000_3, 0.000_5, 0.000_75, 0.001, 0.002,
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

/// Upstream time spans provider latencies: 100 µs (a local mock) to 10 min (a long reasoning call).
const UPSTREAM_BUCKETS: &[f64] = &[
    0.000_1, 0.000_5, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

/// The series one gateway exports. Each gateway owns its own registry, so several gateways in one
/// process (tests, benches) do not mix their counts.
pub struct Metrics {
    registry: Registry,
    overhead_plain: Histogram,
    overhead_stream: Histogram,
    upstream: Histogram,
    requests: IntCounter,
    /// Requests refused before any work, per `reason` (the refusal's error code).
    refused: IntCounterVec,
    /// Keys whose spend crossed their `soft_budget` (once per key and budget period per instance).
    soft_budget_crossed: IntCounter,
    /// Read from the gateway's in-flight count at scrape time.
    in_flight: IntGauge,
    records_written: IntGauge,
    records_dropped: IntGauge,
    records_failed: IntGauge,
    records_catch_ups: IntGauge,
    /// Per sink (`sink="sqlite"|"jsonl"`); read from the writer at scrape time, hence gauges
    /// that only ever grow (the `_total` ones) or go up and down (`pending`).
    sink_written: IntGaugeVec,
    sink_failed: IntGaugeVec,
    sink_write_failures: IntGaugeVec,
    sink_pending: IntGaugeVec,
    circuit_state: IntGaugeVec,
    dependency_ops: IntGaugeVec,
    /// Shipping to the shared store (only set when there is one).
    shared_backlog: IntGauge,
    shared_shipped: IntGauge,
    shared_failures: IntGauge,
    shared_connected: IntGauge,
    /// Requests whose rate limits were counted in this process because their Redis did not answer.
    rate_limit_fallbacks: IntGauge,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot set up the metrics registry: {0}")]
pub struct MetricsError(#[from] prometheus::Error);

impl Metrics {
    /// `shared_store`: the gateway ships records to Postgres, so the shipping series exist.
    pub fn new(shared_store: bool) -> Result<Self, MetricsError> {
        let registry = Registry::new();
        let overhead = prometheus::HistogramVec::new(
            HistogramOpts::new(
                "tollgate_overhead_seconds",
                "Time the gateway itself spent on a request: total handler time minus time waiting on the provider (for streams: before sending plus per chunk).",
            )
            .buckets(OVERHEAD_BUCKETS.to_vec()),
            &["stream"],
        )?;
        let upstream = Histogram::with_opts(
            HistogramOpts::new(
                "tollgate_upstream_seconds",
                "Time spent waiting on the provider, from sending the request to the end of its answer.",
            )
            .buckets(UPSTREAM_BUCKETS.to_vec()),
        )?;
        let requests = IntCounter::new(
            "tollgate_requests_total",
            "Requests that produced a record (success or failure; unauthenticated ones are not counted).",
        )?;
        let refused = IntCounterVec::new(
            Opts::new(
                "tollgate_requests_refused_total",
                "Requests refused at admission, by reason (global_max_parallel_requests: the gateway-wide cap on requests in flight was reached; rpm_limit, tpm_limit, max_parallel_requests: a key's or other scope's rate limit; all answered 429).",
            ),
            &["reason"],
        )?;
        // Exported at 0 from the start, so a rate() over it works before the first refusal.
        refused.with_label_values(&[crate::in_flight::CAP_SETTING]);
        let soft_budget_crossed = IntCounter::new(
            "tollgate_soft_budget_crossed_total",
            "Virtual keys whose spend reached their soft_budget (counted once per key and budget period by each instance; the key keeps working).",
        )?;
        let in_flight = IntGauge::new(
            "tollgate_requests_in_flight",
            "Requests in flight in the gateway right now (streams until they end), over all endpoints.",
        )?;
        let records_written = IntGauge::new(
            "tollgate_records_written_total",
            "Records the writer stored in every sink.",
        )?;
        let records_dropped = IntGauge::new(
            "tollgate_records_dropped_total",
            "Records dropped because the writer's queue was full.",
        )?;
        let records_failed = IntGauge::new(
            "tollgate_records_failed_total",
            "Records missing for good from at least one sink because of write errors.",
        )?;
        let records_catch_ups = IntGauge::new(
            "tollgate_records_writer_catch_ups_total",
            "Times the record writer's normal-priority thread took over from the one that writes in the machine's idle time (every core busy, or durability sync).",
        )?;
        let per_sink = |name: &str, help: &str| IntGaugeVec::new(Opts::new(name, help), &["sink"]);
        let sink_written = per_sink("tollgate_records_sink_written_total", "Records a sink stored.")?;
        let sink_failed = per_sink(
            "tollgate_records_sink_failed_total",
            "Records a sink gave up on after write errors (its retry buffer overflowed, or shutdown came first).",
        )?;
        let sink_write_failures = per_sink(
            "tollgate_records_write_failures_total",
            "Failed write attempts per sink (disk full, permissions); alert on any increase.",
        )?;
        let sink_pending = per_sink(
            "tollgate_records_retry_pending",
            "Records a failing sink keeps in memory for its next retry.",
        )?;
        registry.register(Box::new(records_failed.clone()))?;
        registry.register(Box::new(records_catch_ups.clone()))?;
        registry.register(Box::new(sink_written.clone()))?;
        registry.register(Box::new(sink_failed.clone()))?;
        registry.register(Box::new(sink_write_failures.clone()))?;
        registry.register(Box::new(sink_pending.clone()))?;
        let circuit_state = IntGaugeVec::new(
            Opts::new(
                "tollgate_dependency_circuit_state",
                "1 for the state the dependency's circuit breaker is in (closed, open, half_open), 0 for the others.",
            ),
            &["dependency", "state"],
        )?;
        let dependency_ops = IntGaugeVec::new(
            Opts::new(
                "tollgate_dependency_operations_total",
                "Operations on a dependency: attempted (a real round trip, probes included), failed (of those), skipped (the circuit was open: no round trip).",
            ),
            &["dependency", "result"],
        )?;
        let shared_backlog = IntGauge::new(
            "tollgate_store_shared_backlog_records",
            "Records committed to the local SQLite outbox and not yet shipped to the shared store (Postgres).",
        )?;
        let shared_shipped = IntGauge::new(
            "tollgate_store_shared_shipped_total",
            "Records shipped to the shared store since start (rows it already had included).",
        )?;
        let shared_failures = IntGauge::new(
            "tollgate_store_shared_failures_total",
            "Shipping batches that failed (the shared store unreachable or refusing); they are retried.",
        )?;
        let shared_connected = IntGauge::new(
            "tollgate_store_shared_connected",
            "1 when the last attempt to reach the shared store worked, else 0.",
        )?;
        let rate_limit_fallbacks = IntGauge::new(
            "tollgate_rate_limit_local_fallbacks_total",
            "Requests whose rate limits were counted in this gateway process because the rate-limit Redis did not answer (limits then hold per instance, not across them).",
        )?;
        registry.register(Box::new(rate_limit_fallbacks.clone()))?;
        if shared_store {
            for g in [&shared_backlog, &shared_shipped, &shared_failures, &shared_connected] {
                registry.register(Box::new(g.clone()))?;
            }
        }
        registry.register(Box::new(circuit_state.clone()))?;
        registry.register(Box::new(dependency_ops.clone()))?;
        registry.register(Box::new(overhead.clone()))?;
        registry.register(Box::new(upstream.clone()))?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(refused.clone()))?;
        registry.register(Box::new(soft_budget_crossed.clone()))?;
        registry.register(Box::new(in_flight.clone()))?;
        registry.register(Box::new(records_written.clone()))?;
        registry.register(Box::new(records_dropped.clone()))?;
        Ok(Metrics {
            // Resolved once, so observing never hashes a label.
            overhead_plain: overhead.get_metric_with_label_values(&["false"])?,
            overhead_stream: overhead.get_metric_with_label_values(&["true"])?,
            upstream,
            requests,
            refused,
            soft_budget_crossed,
            in_flight,
            records_written,
            records_dropped,
            records_failed,
            records_catch_ups,
            sink_written,
            sink_failed,
            sink_write_failures,
            sink_pending,
            circuit_state,
            dependency_ops,
            shared_backlog,
            shared_shipped,
            shared_failures,
            shared_connected,
            rate_limit_fallbacks,
            registry,
        })
    }

    /// Called once per finished record. Requests that never reached a provider have no overhead
    /// split and count only in `tollgate_requests_total`.
    pub fn observe(&self, stream: bool, overhead_ms: Option<f64>, upstream_ms: Option<f64>) {
        self.requests.inc();
        if let Some(o) = overhead_ms {
            let h = if stream {
                &self.overhead_stream
            } else {
                &self.overhead_plain
            };
            h.observe(o / 1000.0);
        }
        if let Some(u) = upstream_ms {
            self.upstream.observe(u / 1000.0);
        }
    }

    /// Counts a key whose spend reached its soft budget.
    pub fn count_soft_budget_crossed(&self) {
        self.soft_budget_crossed.inc();
    }

    /// Read from the rate limits at scrape time (they keep their own count).
    pub fn set_rate_limit_fallbacks(&self, n: u64) {
        self.rate_limit_fallbacks.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Counts one request refused at admission; `reason` is the refusal's error code.
    pub fn count_refusal(&self, reason: &str) {
        self.refused.with_label_values(&[reason]).inc();
    }

    /// The Prometheus text exposition (format 0.0.4). `breakers`: the circuits of the live
    /// config (a reload may have removed or replaced one, so they are read afresh each scrape);
    /// `in_flight`: requests in flight now.
    pub fn render(&self, writer: &RecordWriter, breakers: &[&Breaker], in_flight: u64) -> String {
        self.in_flight.set(i64::try_from(in_flight).unwrap_or(i64::MAX));
        self.circuit_state.reset();
        self.dependency_ops.reset();
        for b in breakers {
            let snap = b.snapshot();
            for state in [CircuitState::Closed, CircuitState::Open, CircuitState::HalfOpen] {
                self.circuit_state
                    .with_label_values(&[b.name(), state.as_str()])
                    .set(i64::from(snap.state == state));
            }
            for (result, n) in [
                ("attempted", snap.attempted),
                ("failed", snap.failed),
                ("skipped", snap.skipped),
            ] {
                self.dependency_ops
                    .with_label_values(&[b.name(), result])
                    .set(i64::try_from(n).unwrap_or(i64::MAX));
            }
        }
        // Read at scrape time: the writer keeps its own counters.
        let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        let store = writer.status();
        self.records_written.set(gauge(store.written));
        self.records_dropped.set(gauge(store.dropped));
        self.records_failed.set(gauge(store.failed));
        self.records_catch_ups.set(gauge(store.catch_ups));
        for s in &store.sinks {
            let label = [s.kind.as_str()];
            for (vec, n) in [
                (&self.sink_written, s.written),
                (&self.sink_failed, s.failed),
                (&self.sink_write_failures, s.write_errors),
                (&self.sink_pending, s.pending),
            ] {
                match vec.get_metric_with_label_values(&label) {
                    Ok(g) => g.set(gauge(n)),
                    Err(e) => tracing::debug!("cannot set a sink metric: {e}"),
                }
            }
        }
        if let Some(shared) = &store.shared {
            self.shared_backlog.set(gauge(shared.backlog));
            self.shared_shipped.set(gauge(shared.shipped));
            self.shared_failures.set(gauge(shared.failures));
            self.shared_connected.set(i64::from(shared.connected));
        }
        let mut out = Vec::with_capacity(8 * 1024);
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!("cannot encode metrics: {e}");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_the_right_series() {
        let m = Metrics::new(false).unwrap();
        m.observe(false, Some(0.04), Some(1.5));
        m.observe(false, Some(0.2), Some(2.0));
        m.observe(true, Some(0.5), Some(30.0));
        m.observe(false, None, None);
        let families = m.registry.gather();
        let overhead = families
            .iter()
            .find(|f| f.name() == "tollgate_overhead_seconds")
            .unwrap();
        let count = |label: &str| {
            overhead
                .get_metric()
                .iter()
                .find(|mm| mm.get_label().iter().any(|l| l.value() == label))
                .map(|mm| mm.get_histogram().get_sample_count())
                .unwrap()
        };
        assert_eq!(count("false"), 2);
        assert_eq!(count("true"), 1);
        let requests = families.iter().find(|f| f.name() == "tollgate_requests_total").unwrap();
        assert_eq!(requests.get_metric()[0].get_counter().get_value(), 4.0);
    }
}

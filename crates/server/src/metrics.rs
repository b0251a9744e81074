//! Prometheus metrics, kept in atomics and rendered as text on `GET /metrics`.
//!
//! A handful of counters and histograms do not justify a metrics framework; the exposition format is a
//! few lines of text.

use std::{
    collections::BTreeMap,
    fmt::Write,
    sync::{
        Mutex,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

/// Upper bounds, in seconds, of latency histogram buckets.
const BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// A cumulative latency histogram.
#[derive(Debug, Default)]
struct Histogram {
    counts: [AtomicU64; 12],
    sum_micros: AtomicU64,
    total: AtomicU64,
}

impl Histogram {
    fn observe(&self, value: Duration) {
        let secs = value.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|bound| secs <= *bound) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.sum_micros
            .fetch_add(u64::try_from(value.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
        self.total.fetch_add(1, Ordering::Relaxed);
    }

    fn render(&self, name: &str, out: &mut String) {
        let mut cumulative = 0;
        for (bound, count) in BUCKETS.iter().zip(&self.counts) {
            cumulative += count.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let total = self.total.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {total}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {total}");
    }
}

/// Every metric the server exports.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    in_flight: AtomicU64,
    time_to_first_byte: Histogram,
    request_duration: Histogram,
}

impl Metrics {
    /// Counts a finished request by route and status.
    pub fn record(&self, route: &'static str, status: u16, elapsed: Duration) {
        if let Ok(mut requests) = self.requests.lock() {
            *requests.entry((route, status)).or_default() += 1;
        }
        self.request_duration.observe(elapsed);
    }

    /// Records the time until a model endpoint's answer started (first token for streams).
    pub fn first_byte(&self, elapsed: Duration) {
        self.time_to_first_byte.observe(elapsed);
    }

    /// Marks a model request as started; the guard marks it finished when dropped.
    pub fn start(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self)
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP finllm_requests_total HTTP requests by route and status.\n");
        out.push_str("# TYPE finllm_requests_total counter\n");
        if let Ok(requests) = self.requests.lock() {
            for ((route, status), count) in requests.iter() {
                let _ = writeln!(
                    out,
                    "finllm_requests_total{{route=\"{route}\",status=\"{status}\"}} {count}"
                );
            }
        }
        out.push_str("# HELP finllm_requests_in_flight Model requests being answered now.\n");
        out.push_str("# TYPE finllm_requests_in_flight gauge\n");
        let _ =
            writeln!(out, "finllm_requests_in_flight {}", self.in_flight.load(Ordering::Relaxed));
        out.push_str(
            "# HELP finllm_time_to_first_byte_seconds Time until a model answer starts.\n",
        );
        out.push_str("# TYPE finllm_time_to_first_byte_seconds histogram\n");
        self.time_to_first_byte.render("finllm_time_to_first_byte_seconds", &mut out);
        out.push_str("# HELP finllm_request_duration_seconds Time to answer a request (headers, for streams).\n");
        out.push_str("# TYPE finllm_request_duration_seconds histogram\n");
        self.request_duration.render("finllm_request_duration_seconds", &mut out);
        out
    }
}

/// Decrements the in-flight gauge when the request ends, however it ends.
#[derive(Debug)]
pub struct InFlight<'a>(&'a Metrics);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Appends the engine scheduler's gauges and counters.
pub fn render_scheduler(stats: &crate::scheduler::SchedulerStats, out: &mut String) {
    let rows: [(&str, &str, &str, &AtomicUsize); 7] = [
        ("finllm_queue_depth", "gauge", "Requests waiting for admission.", &stats.waiting),
        ("finllm_running_sequences", "gauge", "Sequences generating now.", &stats.running),
        (
            "finllm_kv_cache_used_tokens",
            "gauge",
            "KV-cache token slots in use.",
            &stats.kv_used_tokens,
        ),
        (
            "finllm_kv_cache_total_tokens",
            "gauge",
            "KV-cache token slots in all.",
            &stats.kv_total_tokens,
        ),
        ("finllm_generated_tokens_total", "counter", "Tokens generated.", &stats.generated_tokens),
        ("finllm_prompt_tokens_total", "counter", "Prompt tokens computed.", &stats.prompt_tokens),
        (
            "finllm_cached_prompt_tokens_total",
            "counter",
            "Prompt tokens reused from cached prefixes.",
            &stats.cached_prompt_tokens,
        ),
    ];
    for (name, kind, help, value) in rows {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
    }
}

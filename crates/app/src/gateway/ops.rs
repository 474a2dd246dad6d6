//! Operations: `/health`, `/health/ready` and `/metrics`, and the [`Metrics`] every handler
//! reports to.
//!
//! The metrics are rendered by hand in the Prometheus text format (version 0.0.4): counters and
//! fixed-bucket histograms behind one mutex. A gateway request touches the mutex once, after the
//! upstream call, so contention stays far below the cost of the call itself.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use exllm_core::{Decimal, Usage};
use serde_json::json;

use super::server::Shared;

/// Upper bounds (seconds) of the request latency buckets: upstream calls take from tens of
/// milliseconds (a cache hit) to minutes (a long generation).
const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

/// Upper bounds (seconds) of the gateway overhead buckets: the gateway's own work should stay
/// well under a millisecond, so the buckets start at 50 µs.
const OVERHEAD_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
];

/// How long `/health/ready` waits for each provider before calling it unavailable.
const READY_TIMEOUT: Duration = Duration::from_secs(3);

/// A histogram with fixed buckets (counts per bucket, not cumulative; cumulated when rendered).
#[derive(Debug, Clone)]
struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: vec![0; bounds.len()],
            sum: 0.0,
            count: 0,
        }
    }

    fn observe(&mut self, value: f64) {
        if let Some(slot) = self.bounds.iter().position(|b| value <= *b)
            && let Some(count) = self.counts.get_mut(slot)
        {
            *count += 1;
        }
        self.sum += value;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            cumulative += count;
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let braced = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braced} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braced} {}", self.count);
    }
}

#[derive(Debug, Default)]
struct Counters {
    /// (route, provider, status) → requests.
    requests: BTreeMap<(String, String, u16), u64>,
    /// route → latency histogram.
    latency: BTreeMap<String, Histogram>,
    /// route → overhead histogram.
    overhead: BTreeMap<String, Histogram>,
    /// (provider, direction) → tokens.
    tokens: BTreeMap<(String, &'static str), u64>,
    /// provider → cost in USD.
    cost: BTreeMap<String, Decimal>,
    /// provider → response-cache hits.
    cache_hits: BTreeMap<String, u64>,
}

/// The gateway's Prometheus metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    counters: Mutex<Counters>,
    streams_in_flight: AtomicI64,
}

impl Metrics {
    /// Empty metrics.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one finished request: `route` is the path template (`/v1/chat/completions`),
    /// `provider` the provider that served it (empty when none was reached), `latency` the
    /// whole time in the gateway and `overhead` the part not spent waiting for the upstream.
    #[allow(clippy::too_many_arguments)]
    pub fn observe(
        &self,
        route: &str,
        provider: &str,
        status: u16,
        latency: Duration,
        overhead: Duration,
        usage: &Usage,
        cost: Option<Decimal>,
    ) {
        let mut c = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        *c.requests
            .entry((route.to_owned(), provider.to_owned(), status))
            .or_default() += 1;
        c.latency
            .entry(route.to_owned())
            .or_insert_with(|| Histogram::new(LATENCY_BUCKETS))
            .observe(latency.as_secs_f64());
        c.overhead
            .entry(route.to_owned())
            .or_insert_with(|| Histogram::new(OVERHEAD_BUCKETS))
            .observe(overhead.as_secs_f64());
        if !provider.is_empty() {
            for (direction, n) in [
                ("input", usage.input_tokens),
                ("output", usage.output_tokens),
            ] {
                if n > 0 {
                    *c.tokens
                        .entry((provider.to_owned(), direction))
                        .or_default() += n;
                }
            }
            if let Some(cost) = cost {
                *c.cost.entry(provider.to_owned()).or_default() += cost;
            }
        }
    }

    /// Records a response served from the response cache.
    pub fn cache_hit(&self, provider: &str) {
        let mut c = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        *c.cache_hits.entry(provider.to_owned()).or_default() += 1;
    }

    /// A stream began sending to its client.
    pub fn stream_started(&self) {
        self.streams_in_flight.fetch_add(1, Ordering::Relaxed);
    }

    /// A stream ended (completed, failed or its client went away).
    pub fn stream_ended(&self) {
        self.streams_in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    /// Streams currently sending.
    pub fn streams_in_flight(&self) -> i64 {
        self.streams_in_flight.load(Ordering::Relaxed)
    }

    /// The metrics in the Prometheus text format 0.0.4.
    pub fn render(&self) -> String {
        let c = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::new();
        out.push_str(
            "# HELP exllm_requests_total Requests answered, by route, provider and status.\n",
        );
        out.push_str("# TYPE exllm_requests_total counter\n");
        for ((route, provider, status), n) in &c.requests {
            let _ = writeln!(
                out,
                "exllm_requests_total{{route=\"{}\",provider=\"{}\",status=\"{status}\"}} {n}",
                escape(route),
                escape(provider)
            );
        }
        out.push_str("# HELP exllm_request_duration_seconds Time from request to response end.\n");
        out.push_str("# TYPE exllm_request_duration_seconds histogram\n");
        for (route, h) in &c.latency {
            h.render(
                &mut out,
                "exllm_request_duration_seconds",
                &format!("route=\"{}\"", escape(route)),
            );
        }
        out.push_str(
            "# HELP exllm_overhead_seconds Time spent in the gateway itself, not waiting upstream.\n",
        );
        out.push_str("# TYPE exllm_overhead_seconds histogram\n");
        for (route, h) in &c.overhead {
            h.render(
                &mut out,
                "exllm_overhead_seconds",
                &format!("route=\"{}\"", escape(route)),
            );
        }
        out.push_str("# HELP exllm_tokens_total Tokens, by provider and direction.\n");
        out.push_str("# TYPE exllm_tokens_total counter\n");
        for ((provider, direction), n) in &c.tokens {
            let _ = writeln!(
                out,
                "exllm_tokens_total{{provider=\"{}\",direction=\"{direction}\"}} {n}",
                escape(provider)
            );
        }
        out.push_str("# HELP exllm_cost_usd_total Cost in USD, by provider.\n");
        out.push_str("# TYPE exllm_cost_usd_total counter\n");
        for (provider, usd) in &c.cost {
            let _ = writeln!(
                out,
                "exllm_cost_usd_total{{provider=\"{}\"}} {usd}",
                escape(provider)
            );
        }
        out.push_str("# HELP exllm_cache_hits_total Responses served from the response cache.\n");
        out.push_str("# TYPE exllm_cache_hits_total counter\n");
        for (provider, n) in &c.cache_hits {
            let _ = writeln!(
                out,
                "exllm_cache_hits_total{{provider=\"{}\"}} {n}",
                escape(provider)
            );
        }
        out.push_str("# HELP exllm_streams_in_flight Streams currently sending.\n");
        out.push_str("# TYPE exllm_streams_in_flight gauge\n");
        let _ = writeln!(out, "exllm_streams_in_flight {}", self.streams_in_flight());
        out
    }
}

/// Escapes a Prometheus label value (backslash, quote, newline).
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// `/health`, `/health/ready`, `/metrics`.
pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/health", get(health))
        .route("/health/ready", get(ready))
        .route("/metrics", get(metrics))
}

async fn health() -> Response {
    (StatusCode::OK, axum::Json(json!({"status": "ok"}))).into_response()
}

/// Calls `health()` on every configured provider at once, each with a short timeout: 200 when
/// all answer, 503 naming the ones that do not.
async fn ready(State(state): State<Shared>) -> Response {
    let exllm = &state.wired.exllm;
    let names: Vec<String> = exllm
        .list_providers()
        .into_iter()
        // The built-in mock is always there and always healthy: it says nothing about readiness.
        .filter(|name| name != "mock")
        .collect();
    let checks = names.iter().map(|name| async move {
        let status = match exllm.provider(name) {
            Ok(provider) => match tokio::time::timeout(READY_TIMEOUT, provider.health()).await {
                Ok(Ok(())) => json!({"status": "ok"}),
                Ok(Err(err)) => json!({"status": "unavailable", "error": err.to_string()}),
                Err(_) => json!({"status": "unavailable", "error": "health check timed out"}),
            },
            Err(err) => json!({"status": "unavailable", "error": err.to_string()}),
        };
        (name.clone(), status)
    });
    let results = futures_util::future::join_all(checks).await;
    let all_ok = results.iter().all(|(_, s)| s["status"] == "ok");
    let providers: serde_json::Map<String, serde_json::Value> = results.into_iter().collect();
    let status = if all_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if all_ok { "ok" } else { "unavailable" },
        "providers": providers,
    });
    (status, axum::Json(body)).into_response()
}

async fn metrics(State(state): State<Shared>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sample_line_is_name_labels_value() {
        let m = Metrics::new();
        m.observe(
            "/v1/chat/completions",
            "openai",
            200,
            Duration::from_millis(120),
            Duration::from_micros(80),
            &Usage::new(10, 5),
            Some(Decimal::new(15, 6)),
        );
        m.cache_hit("openai");
        m.stream_started();
        let text = m.render();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (series, value) = line.rsplit_once(' ').unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
            assert!(series.starts_with("exllm_"), "{line}");
        }
        assert!(text.contains(
            "exllm_requests_total{route=\"/v1/chat/completions\",provider=\"openai\",status=\"200\"} 1"
        ));
        assert!(text.contains("exllm_streams_in_flight 1"));
        assert!(text.contains("exllm_cost_usd_total{provider=\"openai\"} 0.000015"));
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let mut h = Histogram::new(&[1.0, 2.0]);
        h.observe(0.5);
        h.observe(1.5);
        h.observe(9.0);
        let mut out = String::new();
        h.render(&mut out, "x", "");
        assert!(out.contains("x_bucket{le=\"1\"} 1"));
        assert!(out.contains("x_bucket{le=\"2\"} 2"));
        assert!(out.contains("x_bucket{le=\"+Inf\"} 3"));
    }
}

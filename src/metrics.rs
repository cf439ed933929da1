//! The gateway's Prometheus metrics (SPEC §7), behind one [`Metrics`] type whose
//! methods are the only way the rest of the code records anything: metric names,
//! label sets and buckets live here alone, and the exposition crate
//! (`prometheus-client`) could be swapped without touching a caller.
//!
//! Label values are either `&'static str` literals, numbers or configured
//! provider names, so the number of series stays bounded whatever callers send.
//!
//! ```
//! use std::time::Duration;
//! use chatgate::metrics::Metrics;
//!
//! let metrics = Metrics::new();
//! metrics.request("list", 200, Duration::from_millis(3));
//! assert!(metrics.render().contains(r#"chatgate_requests_total{route="list",status="200"} 1"#));
//! ```

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::{
    EncodeLabelSet, EncodeLabelValue, EncodeMetric, LabelValueEncoder, MetricEncoder,
};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

/// The `Content-Type` the `/metrics` handler must send with [`Metrics::render`]'s
/// output, which is OpenMetrics 1.0 text (Prometheus ≥ 2.5 negotiates and
/// parses it; it ends with `# EOF`).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The content type of the Prometheus text format (0.0.4), for scrapers and
/// tools (`promtool check metrics`) that ask for `text/plain`.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Which exposition format a scraper asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0 text: the default, and what Prometheus asks for first.
    OpenMetrics,
    /// The Prometheus text format 0.0.4.
    Prometheus,
}

impl Format {
    /// Content negotiation on an `Accept` header: OpenMetrics when it is
    /// accepted (or nothing is said), else the Prometheus text format when
    /// `text/plain` is, else OpenMetrics.
    pub fn negotiate(accept: Option<&str>) -> Self {
        let Some(accept) = accept else {
            return Self::OpenMetrics;
        };
        let mut best: Option<(f32, Self)> = None;
        for item in accept.split(',') {
            let mut parts = item.split(';').map(str::trim);
            let media = parts.next().unwrap_or_default().to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.strip_prefix("q="))
                .find_map(|v| v.parse::<f32>().ok())
                .unwrap_or(1.0);
            let format = match media.as_str() {
                "application/openmetrics-text" => Self::OpenMetrics,
                "text/plain" => Self::Prometheus,
                _ => continue,
            };
            if q > 0.0 && best.is_none_or(|(bq, _)| q > bq) {
                best = Some((q, format));
            }
        }
        best.map_or(Self::OpenMetrics, |(_, f)| f)
    }

    /// The `Content-Type` of an answer in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::OpenMetrics => CONTENT_TYPE,
            Self::Prometheus => PROMETHEUS_CONTENT_TYPE,
        }
    }
}

/// Rewrites OpenMetrics text as the Prometheus text format: a counter's
/// `HELP`/`TYPE` lines name its `_total` samples (OpenMetrics names the family
/// without the suffix, which promtool reads as a metric with no help text), and
/// the `UNIT` and `EOF` lines, which that format lacks, are dropped.
fn to_prometheus_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| line.strip_prefix(p).map(|rest| (p, rest)));
        match meta {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                let suffix = if counters.contains(name) {
                    "_total"
                } else {
                    ""
                };
                out.push_str(prefix);
                out.push_str(name);
                out.push_str(suffix);
                out.push(' ');
                out.push_str(tail);
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// Histogram buckets in seconds, for the gateway's own requests and for vendor
/// calls alike: from a cache hit (sub-millisecond) to a slow vendor page near
/// the request timeout.
const DURATION_BUCKETS: [f64; 15] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Histogram buckets in seconds for the gateway's own cost per request: a cache
/// hit is tens of microseconds, normalizing a large vendor page about a
/// millisecond; past 100 ms something is wrong (a CPU-starved host).
const OVERHEAD_BUCKETS: [f64; 14] = [
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.5,
];

/// Histogram buckets in seconds for Redis round trips: sub-millisecond on a
/// healthy network, up to the largest `redis.timeout_ms` worth having.
const REDIS_BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// The known values of the `result` label of `chatgate_cache_events_total`.
const CACHE_RESULTS: [&str; 4] = ["hit", "miss", "stale", "bypass"];
/// The known values of the `scope` label of `chatgate_rate_limited_total`.
const RATE_LIMIT_SCOPES: [&str; 4] = ["client", "provider", "auth_ip", "upstream"];

/// How one vendor call ended, for `chatgate_upstream_requests_total{status}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UpstreamOutcome {
    /// The vendor answered with this HTTP status (label: the number as text).
    Status(u16),
    /// No answer within the provider's timeout (label: `timeout`).
    Timeout,
    /// A transport failure: connect, TLS, reset, oversized body (label: `error`).
    Error,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RouteStatus {
    route: &'static str,
    status: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct Route {
    route: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ProviderStatus {
    provider: String,
    status: OutcomeLabel,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct Provider {
    provider: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct Scope {
    scope: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct Op {
    op: &'static str,
}

/// A gauge rendered only once set, so `chatgate_redis_up` is absent, not 0,
/// without `[redis]` (an alert on 0 must not fire where there is no Redis).
#[derive(Debug, Clone, Default)]
struct GaugeOnceSet {
    gauge: Gauge,
    set: Arc<AtomicBool>,
}

impl GaugeOnceSet {
    fn set(&self, value: i64) {
        self.gauge.set(value);
        self.set.store(true, Ordering::Relaxed);
    }

    /// Absent again, as if never set.
    fn unset(&self) {
        self.set.store(false, Ordering::Relaxed);
    }
}

impl EncodeMetric for GaugeOnceSet {
    fn encode(&self, encoder: MetricEncoder) -> std::fmt::Result {
        self.gauge.encode(encoder)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Gauge
    }

    fn is_empty(&self) -> bool {
        !self.set.load(Ordering::Relaxed)
    }
}

/// Keeps the exposition crate's trait off the public [`UpstreamOutcome`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct OutcomeLabel(UpstreamOutcome);

impl EncodeLabelValue for OutcomeLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> std::fmt::Result {
        match self.0 {
            UpstreamOutcome::Status(code) => write!(encoder, "{code}"),
            UpstreamOutcome::Timeout => encoder.write_str("timeout"),
            UpstreamOutcome::Error => encoder.write_str("error"),
        }
    }
}

type DurationFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

fn redis_histogram() -> Histogram {
    Histogram::new(REDIS_BUCKETS)
}

fn overhead_histogram() -> Histogram {
    Histogram::new(OVERHEAD_BUCKETS)
}

/// Every metric the gateway exports. `Send + Sync`; share one through an `Arc`
/// across all workers. Once a series exists, recording takes only a shared read
/// lock on its family (plus a short per-series lock for a histogram).
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RouteStatus, Counter>,
    request_duration: DurationFamily<Route>,
    overhead: DurationFamily<Route>,
    upstream_requests: Family<ProviderStatus, Counter>,
    upstream_duration: DurationFamily<Provider>,
    cache_events: Family<ResultLabel, Counter>,
    rate_limited: Family<Scope, Counter>,
    circuit_state: Family<Provider, Gauge>,
    config_reloads: Family<ResultLabel, Counter>,
    config_last_reload: Gauge<f64, std::sync::atomic::AtomicU64>,
    cache_weight: Gauge<u64, std::sync::atomic::AtomicU64>,
    redis_up: GaugeOnceSet,
    redis_errors: Family<Op, Counter>,
    redis_duration: DurationFamily<Op>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every metric registered. Label values known in advance
    /// (cache results, rate-limit scopes, reload results) start at 0, so rates
    /// and alerts work before the first event.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::default();
        let request_duration =
            DurationFamily::new_with_constructor(duration_histogram as fn() -> _);
        let overhead = DurationFamily::new_with_constructor(overhead_histogram as fn() -> _);
        let upstream_requests = Family::default();
        let upstream_duration =
            DurationFamily::new_with_constructor(duration_histogram as fn() -> _);
        let cache_events: Family<ResultLabel, Counter> = Family::default();
        let rate_limited: Family<Scope, Counter> = Family::default();
        let circuit_state = Family::default();
        let config_reloads: Family<ResultLabel, Counter> = Family::default();
        let config_last_reload = Gauge::default();
        let cache_weight = Gauge::default();
        let redis_up = GaugeOnceSet::default();
        let redis_errors = Family::default();
        let redis_duration = DurationFamily::new_with_constructor(redis_histogram as fn() -> _);

        // prometheus-client appends `_total` to counters, the unit to names
        // registered with one, and a full stop to every help text.
        registry.register(
            "chatgate_requests",
            "API requests answered, by route and HTTP status",
            requests.clone(),
        );
        registry.register_with_unit(
            "chatgate_request_duration",
            "Time to answer an API request, by route",
            Unit::Seconds,
            request_duration.clone(),
        );
        registry.register_with_unit(
            "chatgate_overhead",
            "The gateway's own time per API request, by route: its duration less the time \
             spent waiting on vendors (calls, their rate-limit pauses, quota slots and \
             backoffs) and on the same answer's fetch by another request or instance",
            Unit::Seconds,
            overhead.clone(),
        );
        registry.register(
            "chatgate_upstream_requests",
            "Vendor calls (each attempt), by provider and the vendor's HTTP status, \
             or timeout / error when there was no answer",
            upstream_requests.clone(),
        );
        registry.register_with_unit(
            "chatgate_upstream_duration",
            "Time of one vendor call (each attempt), by provider",
            Unit::Seconds,
            upstream_duration.clone(),
        );
        registry.register(
            "chatgate_cache_events",
            "Response cache lookups, by result: hit, miss, stale or bypass",
            cache_events.clone(),
        );
        registry.register(
            "chatgate_rate_limited",
            "Requests refused or paused by a rate limit, by scope: client, provider, \
             auth_ip (failed authentications) or upstream (the vendor said 429)",
            rate_limited.clone(),
        );
        registry.register(
            "chatgate_circuit_state",
            "Circuit breaker state per provider: 0 closed, 1 open, 2 half-open",
            circuit_state.clone(),
        );
        registry.register(
            "chatgate_config_reloads",
            "Configuration reloads, by result: ok or rejected (the old one stays)",
            config_reloads.clone(),
        );
        registry.register_with_unit(
            "chatgate_config_last_reload_timestamp",
            "Unix time at which the running configuration was loaded",
            Unit::Seconds,
            config_last_reload.clone(),
        );
        registry.register_with_unit(
            "chatgate_cache_weighted",
            "Weight of the response cache: the serialized bytes it holds",
            Unit::Bytes,
            cache_weight.clone(),
        );
        registry.register(
            "chatgate_redis_up",
            "Whether the shared Redis store answers: 1 up, 0 down (operations skipped \
             and limits and cache local); absent without [redis]",
            redis_up.clone(),
        );
        registry.register(
            "chatgate_redis_errors",
            "Redis operations that failed or timed out, by operation",
            redis_errors.clone(),
        );
        registry.register_with_unit(
            "chatgate_redis",
            "Round trip of one Redis operation, by operation",
            Unit::Seconds,
            redis_duration.clone(),
        );

        for result in CACHE_RESULTS {
            cache_events
                .get_or_create(&ResultLabel { result })
                .inc_by(0);
        }
        for scope in RATE_LIMIT_SCOPES {
            rate_limited.get_or_create(&Scope { scope }).inc_by(0);
        }
        for result in ["ok", "rejected"] {
            config_reloads
                .get_or_create(&ResultLabel { result })
                .inc_by(0);
        }

        Self {
            registry,
            requests,
            request_duration,
            overhead,
            upstream_requests,
            upstream_duration,
            cache_events,
            rate_limited,
            circuit_state,
            config_reloads,
            config_last_reload,
            cache_weight,
            redis_up,
            redis_errors,
            redis_duration,
        }
    }

    /// One API request on `route` answered with `status` after `elapsed`:
    /// counts it and observes its duration.
    pub fn request(&self, route: &'static str, status: u16, elapsed: Duration) {
        self.requests
            .get_or_create(&RouteStatus { route, status })
            .inc();
        self.request_duration
            .get_or_create(&Route { route })
            .observe(elapsed.as_secs_f64());
    }

    /// The gateway's own time on one API request on `route`: its duration
    /// less its waits on vendors and on other fetches ([`crate::waits`]).
    pub fn overhead(&self, route: &'static str, own: Duration) {
        self.overhead
            .get_or_create(&Route { route })
            .observe(own.as_secs_f64());
    }

    /// One vendor call (one attempt) to `provider` ended with `outcome` after
    /// `elapsed`: counts it and observes its duration.
    pub fn upstream(&self, provider: &str, outcome: UpstreamOutcome, elapsed: Duration) {
        self.upstream_requests
            .get_or_create(&ProviderStatus {
                provider: provider.to_owned(),
                status: OutcomeLabel(outcome),
            })
            .inc();
        self.upstream_duration
            .get_or_create(&Provider {
                provider: provider.to_owned(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// One cache lookup with `result`: `hit`, `miss`, `stale` or `bypass`.
    pub fn cache(&self, result: &'static str) {
        self.cache_events
            .get_or_create(&ResultLabel { result })
            .inc();
    }

    /// One request refused or paused by the limit of `scope`: `client`,
    /// `provider`, `auth_ip` or `upstream`.
    pub fn rate_limited(&self, scope: &'static str) {
        self.rate_limited.get_or_create(&Scope { scope }).inc();
    }

    /// `provider`'s circuit is now in `state`, as
    /// [`CircuitState::as_gauge`](crate::circuit::CircuitState::as_gauge) gives it.
    pub fn circuit_state(&self, provider: &str, state: i64) {
        self.circuit_state
            .get_or_create(&Provider {
                provider: provider.to_owned(),
            })
            .set(state);
    }

    /// A configuration reload was applied (`ok`) or rejected.
    pub fn config_reload(&self, ok: bool) {
        let result = if ok { "ok" } else { "rejected" };
        self.config_reloads
            .get_or_create(&ResultLabel { result })
            .inc();
    }

    /// The running configuration was loaded at `unix_secs`: call at startup and
    /// after every successful reload.
    pub fn config_loaded(&self, unix_secs: f64) {
        self.config_last_reload.set(unix_secs);
    }

    /// The response cache now weighs `bytes`.
    pub fn cache_weight(&self, bytes: u64) {
        self.cache_weight.set(bytes);
    }

    /// Every metric in `format`, to be served with its content type.
    pub fn render_as(&self, format: Format) -> String {
        match format {
            Format::OpenMetrics => self.render(),
            Format::Prometheus => to_prometheus_text(&self.render()),
        }
    }

    /// The shared Redis store is now reachable (`up`) or not.
    pub fn redis_up(&self, up: bool) {
        self.redis_up.set(i64::from(up));
    }

    /// The instance no longer uses Redis (a reload removed `[redis]`):
    /// `chatgate_redis_up` is absent again, as without `[redis]`.
    pub fn redis_unused(&self) {
        self.redis_up.unset();
    }

    /// A Redis operation `op` failed or timed out.
    pub fn redis_error(&self, op: &'static str) {
        self.redis_errors.get_or_create(&Op { op }).inc();
    }

    /// A Redis operation `op` took `elapsed`.
    pub fn redis_round_trip(&self, op: &'static str, elapsed: Duration) {
        self.redis_duration
            .get_or_create(&Op { op })
            .observe(elapsed.as_secs_f64());
    }

    /// The OpenMetrics text exposition of every metric, to be served with
    /// [`CONTENT_TYPE`].
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(8 * 1024);
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect(
            "writing to a String cannot fail, and every metric here is a text-encodable \
             counter, gauge or classic histogram",
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn the_format_follows_the_accept_header_with_openmetrics_by_default() {
        use Format::{OpenMetrics, Prometheus};
        assert_eq!(Format::negotiate(None), OpenMetrics);
        assert_eq!(Format::negotiate(Some("*/*")), OpenMetrics);
        assert_eq!(Format::negotiate(Some("text/plain")), Prometheus);
        assert_eq!(
            Format::negotiate(Some("text/plain;version=0.0.4;q=0.5,*/*;q=0.1")),
            Prometheus
        );
        // What Prometheus itself sends.
        assert_eq!(
            Format::negotiate(Some(
                "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
                 version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
            )),
            OpenMetrics
        );
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text;q=0, text/plain")),
            Prometheus
        );
    }

    #[test]
    fn prometheus_text_names_counter_samples_and_drops_openmetrics_only_lines() {
        let om = "# HELP x_requests Requests.\n# TYPE x_requests counter\nx_requests_total 3\n\
                  # HELP x_up Up.\n# TYPE x_up gauge\n# UNIT x_up seconds\nx_up 1\n# EOF\n";
        assert_eq!(
            to_prometheus_text(om),
            "# HELP x_requests_total Requests.\n# TYPE x_requests_total counter\n\
             x_requests_total 3\n# HELP x_up Up.\n# TYPE x_up gauge\nx_up 1\n"
        );
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn assert_line(rendered: &str, line: &str) {
        assert!(
            rendered.lines().any(|l| l == line),
            "missing line {line:?} in:\n{rendered}"
        );
    }

    #[test]
    fn request_counts_by_route_and_status_and_observes_duration() {
        let m = Metrics::new();
        // Durations exact in binary, so the sum prints exactly.
        m.request("list", 200, ms(250));
        m.request("list", 200, ms(500));
        m.request("list", 400, ms(2_000));
        m.request("bots", 200, ms(1));
        let out = m.render();
        for line in [
            r#"chatgate_requests_total{route="list",status="200"} 2"#,
            r#"chatgate_requests_total{route="list",status="400"} 1"#,
            r#"chatgate_requests_total{route="bots",status="200"} 1"#,
            r#"chatgate_request_duration_seconds_count{route="list"} 3"#,
            r#"chatgate_request_duration_seconds_sum{route="list"} 2.75"#,
            r#"chatgate_request_duration_seconds_bucket{le="0.1",route="list"} 0"#,
            // Upper bounds are inclusive.
            r#"chatgate_request_duration_seconds_bucket{le="0.25",route="list"} 1"#,
            r#"chatgate_request_duration_seconds_bucket{le="0.5",route="list"} 2"#,
            r#"chatgate_request_duration_seconds_bucket{le="1.0",route="list"} 2"#,
            r#"chatgate_request_duration_seconds_bucket{le="2.5",route="list"} 3"#,
            r#"chatgate_request_duration_seconds_bucket{le="+Inf",route="list"} 3"#,
            r#"chatgate_request_duration_seconds_bucket{le="0.0005",route="bots"} 0"#,
            r#"chatgate_request_duration_seconds_bucket{le="0.001",route="bots"} 1"#,
            r#"chatgate_request_duration_seconds_bucket{le="30.0",route="bots"} 1"#,
            "# TYPE chatgate_request_duration_seconds histogram",
            "# UNIT chatgate_request_duration_seconds seconds",
        ] {
            assert_line(&out, line);
        }
    }

    #[test]
    fn overhead_is_a_histogram_by_route_with_sub_millisecond_buckets() {
        let m = Metrics::new();
        m.overhead("list", Duration::from_micros(30));
        m.overhead("list", ms(2));
        let out = m.render();
        for line in [
            "# TYPE chatgate_overhead_seconds histogram",
            "# UNIT chatgate_overhead_seconds seconds",
            r#"chatgate_overhead_seconds_count{route="list"} 2"#,
            r#"chatgate_overhead_seconds_bucket{le="0.000025",route="list"} 0"#,
            r#"chatgate_overhead_seconds_bucket{le="0.00005",route="list"} 1"#,
            r#"chatgate_overhead_seconds_bucket{le="0.001",route="list"} 1"#,
            r#"chatgate_overhead_seconds_bucket{le="0.0025",route="list"} 2"#,
        ] {
            assert_line(&out, line);
        }
    }

    #[test]
    fn upstream_status_is_the_code_or_timeout_or_error() {
        let m = Metrics::new();
        m.upstream("chatbase", UpstreamOutcome::Status(200), ms(500));
        m.upstream("chatbase", UpstreamOutcome::Status(503), ms(500));
        m.upstream("chatbase", UpstreamOutcome::Timeout, ms(10_000));
        m.upstream("chatling", UpstreamOutcome::Error, ms(5));
        let out = m.render();
        for line in [
            r#"chatgate_upstream_requests_total{provider="chatbase",status="200"} 1"#,
            r#"chatgate_upstream_requests_total{provider="chatbase",status="503"} 1"#,
            r#"chatgate_upstream_requests_total{provider="chatbase",status="timeout"} 1"#,
            r#"chatgate_upstream_requests_total{provider="chatling",status="error"} 1"#,
            r#"chatgate_upstream_duration_seconds_count{provider="chatbase"} 3"#,
            r#"chatgate_upstream_duration_seconds_sum{provider="chatbase"} 11.0"#,
            r#"chatgate_upstream_duration_seconds_bucket{le="10.0",provider="chatbase"} 3"#,
            r#"chatgate_upstream_duration_seconds_bucket{le="5.0",provider="chatbase"} 2"#,
            r#"chatgate_upstream_duration_seconds_count{provider="chatling"} 1"#,
        ] {
            assert_line(&out, line);
        }
    }

    #[test]
    fn cache_limits_circuit_and_config_render_their_samples() {
        let m = Metrics::new();
        m.cache("hit");
        m.cache("hit");
        m.cache("stale");
        m.rate_limited("client");
        m.rate_limited("upstream");
        m.circuit_state("chatzuri", 1);
        m.circuit_state("chatbase", 2);
        m.circuit_state("chatbase", 0);
        m.config_reload(true);
        m.config_reload(false);
        m.config_reload(true);
        m.config_loaded(1_700_000_000.5);
        m.cache_weight(12_345);
        let out = m.render();
        for line in [
            r#"chatgate_cache_events_total{result="hit"} 2"#,
            r#"chatgate_cache_events_total{result="stale"} 1"#,
            r#"chatgate_cache_events_total{result="miss"} 0"#,
            r#"chatgate_cache_events_total{result="bypass"} 0"#,
            r#"chatgate_rate_limited_total{scope="client"} 1"#,
            r#"chatgate_rate_limited_total{scope="upstream"} 1"#,
            r#"chatgate_rate_limited_total{scope="provider"} 0"#,
            r#"chatgate_rate_limited_total{scope="auth_ip"} 0"#,
            r#"chatgate_circuit_state{provider="chatzuri"} 1"#,
            r#"chatgate_circuit_state{provider="chatbase"} 0"#,
            r#"chatgate_config_reloads_total{result="ok"} 2"#,
            r#"chatgate_config_reloads_total{result="rejected"} 1"#,
            "chatgate_config_last_reload_timestamp_seconds 1700000000.5",
            "chatgate_cache_weighted_bytes 12345",
        ] {
            assert_line(&out, line);
        }
    }

    #[test]
    fn every_metric_has_help_and_type_and_the_exposition_ends_with_eof() {
        let m = Metrics::new();
        // A labelled family renders nothing, not even HELP, until it has a series.
        m.request("list", 200, ms(1));
        m.upstream("chatbase", UpstreamOutcome::Status(200), ms(1));
        m.circuit_state("chatbase", 0);
        let out = m.render();
        for (name, kind) in [
            ("chatgate_requests", "counter"),
            ("chatgate_request_duration_seconds", "histogram"),
            ("chatgate_upstream_requests", "counter"),
            ("chatgate_upstream_duration_seconds", "histogram"),
            ("chatgate_cache_events", "counter"),
            ("chatgate_rate_limited", "counter"),
            ("chatgate_circuit_state", "gauge"),
            ("chatgate_config_reloads", "counter"),
            ("chatgate_config_last_reload_timestamp_seconds", "gauge"),
            ("chatgate_cache_weighted_bytes", "gauge"),
        ] {
            assert!(
                out.lines()
                    .any(|l| l.starts_with(&format!("# HELP {name} "))),
                "no HELP for {name} in:\n{out}"
            );
            assert_line(&out, &format!("# TYPE {name} {kind}"));
        }
        assert!(out.ends_with("# EOF\n"));
    }

    #[test]
    fn redis_metrics_appear_only_once_redis_is_used() {
        let m = Metrics::new();
        assert!(!m.render().contains("chatgate_redis"), "{}", m.render());
        m.redis_up(true);
        m.redis_up(false);
        m.redis_error("gcra");
        m.redis_error("gcra");
        m.redis_round_trip("gcra", ms(2));
        let out = m.render();
        for line in [
            "# TYPE chatgate_redis_up gauge",
            "chatgate_redis_up 0",
            r#"chatgate_redis_errors_total{op="gcra"} 2"#,
            "# TYPE chatgate_redis_seconds histogram",
            r#"chatgate_redis_seconds_bucket{le="0.001",op="gcra"} 0"#,
            r#"chatgate_redis_seconds_bucket{le="0.0025",op="gcra"} 1"#,
            r#"chatgate_redis_seconds_count{op="gcra"} 1"#,
        ] {
            assert_line(&out, line);
        }
    }

    #[test]
    fn metrics_can_be_shared_by_all_workers() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Metrics>();
    }

    #[test]
    fn concurrent_recording_from_many_threads_gives_exact_totals() {
        let m = Arc::new(Metrics::new());
        let threads = 8;
        let per_thread = 1_000;
        let handles: Vec<_> = (0..threads)
            .map(|i| {
                let m = Arc::clone(&m);
                std::thread::spawn(move || {
                    let provider = if i % 2 == 0 { "chatbase" } else { "chatling" };
                    for _ in 0..per_thread {
                        m.request("list", 200, ms(1));
                        m.upstream(provider, UpstreamOutcome::Status(200), ms(1));
                        m.cache("miss");
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let out = m.render();
        for line in [
            r#"chatgate_requests_total{route="list",status="200"} 8000"#,
            r#"chatgate_request_duration_seconds_count{route="list"} 8000"#,
            r#"chatgate_request_duration_seconds_bucket{le="0.001",route="list"} 8000"#,
            r#"chatgate_upstream_requests_total{provider="chatbase",status="200"} 4000"#,
            r#"chatgate_upstream_requests_total{provider="chatling",status="200"} 4000"#,
            r#"chatgate_cache_events_total{result="miss"} 8000"#,
        ] {
            assert_line(&out, line);
        }
    }
}

//! Logs (tracing) and metrics (Prometheus).

use std::sync::LazyLock;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    Human,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Installs the global subscriber. The level comes from `PORTCULLIS_LOG` (or `RUST_LOG`),
/// e.g. `info` or `portcullis=debug`; pingora's own chatter is kept at `warn`.
pub fn init_logs(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = std::env::var("PORTCULLIS_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info,pingora_core=warn,pingora_proxy=warn,pingora=warn".to_owned());
    let filter = EnvFilter::try_new(&filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colour only for a terminal: files, journald and Kubernetes get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
}

/// The gateway's metrics, in their own registry.
pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub duration: HistogramVec,
    pub auth_failures: IntCounterVec,
    pub jwks_fetches: IntCounterVec,
    pub introspections: IntCounterVec,
}

/// The process-wide metrics.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

impl Metrics {
    fn new() -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("metric registered once");
            c
        };
        let requests = counter(
            "portcullis_requests_total",
            "Requests answered, by route and status.",
            &["route", "status"],
        );
        let auth_failures = counter(
            "portcullis_auth_failures_total",
            "Refused credentials, by reason.",
            &["reason"],
        );
        let jwks_fetches = counter(
            "portcullis_jwks_fetches_total",
            "JWKS documents fetched, by issuer.",
            &["issuer"],
        );
        let introspections = counter(
            "portcullis_introspections_total",
            "Token introspections, by issuer and whether the answer came from the cache.",
            &["issuer", "cached"],
        );
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "portcullis_request_duration_seconds",
                "Time from request to the end of the response, by route.",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ]),
            &["route"],
        )
        .expect("valid histogram");
        registry
            .register(Box::new(duration.clone()))
            .expect("metric registered once");
        Metrics {
            registry,
            requests,
            duration,
            auth_failures,
            jwks_fetches,
            introspections,
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        out
    }
}

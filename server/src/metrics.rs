//! What an instance reports to Prometheus at `GET /metrics`: HTTP requests
//! and their latency by route, sync sessions, records, bytes and errors by
//! kind (as a downstream and as an upstream), and the size of the store.
//! Counters only: never record contents, names or credentials.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};
use std::sync::atomic::AtomicU64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub method: String,
    /// The route's pattern (`/api/v1/records/{id}`), never the raw path.
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
}

/// `side`: this instance as a `downstream` (it syncs with its upstream) or
/// as an `upstream` (a downstream syncs with it).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SessionLabels {
    pub side: &'static str,
    pub result: &'static str,
}

/// `direction`: `in` to this instance or `out` of it.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FlowLabels {
    pub side: &'static str,
    pub direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub side: &'static str,
    pub kind: String,
}

type LatencyFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 0.5 ms to about 16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

pub struct Metrics {
    registry: Registry,
    pub http_requests: Family<HttpLabels, Counter>,
    pub http_duration: LatencyFamily,
    pub sync_sessions: Family<SessionLabels, Counter>,
    pub sync_records: Family<FlowLabels, Counter>,
    pub sync_bytes: Family<FlowLabels, Counter>,
    pub sync_file_bytes: Family<FlowLabels, Counter>,
    pub sync_errors: Family<ErrorLabels, Counter>,
    pub records: Gauge,
    pub store_bytes: Gauge<u64, AtomicU64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("tideline");
        let m = Metrics {
            http_requests: Family::default(),
            http_duration: Family::new_with_constructor(latency_histogram),
            sync_sessions: Family::default(),
            sync_records: Family::default(),
            sync_bytes: Family::default(),
            sync_file_bytes: Family::default(),
            sync_errors: Family::default(),
            records: Gauge::default(),
            store_bytes: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, route and status",
            m.http_requests.clone(),
        );
        registry.register_with_unit(
            "http_request_duration",
            "Time to answer an HTTP request, by route",
            Unit::Seconds,
            m.http_duration.clone(),
        );
        registry.register(
            "sync_sessions",
            "Sync exchanges, as downstream (one per sync) or upstream (one per request)",
            m.sync_sessions.clone(),
        );
        registry.register(
            "sync_records",
            "Records sent (out) and received (in) by sync",
            m.sync_records.clone(),
        );
        registry.register_with_unit(
            "sync_message",
            "Sync message bytes sent (out) and received (in)",
            Unit::Bytes,
            m.sync_bytes.clone(),
        );
        registry.register_with_unit(
            "sync_file",
            "Attachment file bytes sent (out) and received (in) by sync",
            Unit::Bytes,
            m.sync_file_bytes.clone(),
        );
        registry.register(
            "sync_errors",
            "Failed sync exchanges, by kind",
            m.sync_errors.clone(),
        );
        registry.register("records", "Records held", m.records.clone());
        registry.register_with_unit(
            "store_size",
            "Bytes on disk in the data directory (store and attachments)",
            Unit::Bytes,
            m.store_bytes.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Count one sync session and what it moved.
    pub fn sync_flow(&self, side: &'static str, records: (u64, u64), bytes: (u64, u64)) {
        for (direction, r, b) in [("in", records.0, bytes.0), ("out", records.1, bytes.1)] {
            let labels = FlowLabels { side, direction };
            self.sync_records.get_or_create(&labels).inc_by(r);
            self.sync_bytes.get_or_create(&labels).inc_by(b);
        }
        self.sync_sessions
            .get_or_create(&SessionLabels { side, result: "ok" })
            .inc();
    }

    /// Count one failed sync session.
    pub fn sync_failed(&self, side: &'static str, kind: &str) {
        self.sync_sessions
            .get_or_create(&SessionLabels {
                side,
                result: "error",
            })
            .inc();
        self.sync_errors
            .get_or_create(&ErrorLabels {
                side,
                kind: kind.to_string(),
            })
            .inc();
    }

    /// The text exposition format.
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// Bytes of every file under `dir`.
pub fn dir_size(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            match entry.metadata() {
                Ok(m) if m.is_dir() => stack.push(entry.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

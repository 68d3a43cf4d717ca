//! Prometheus metrics of one node, served at `GET /metrics`.

use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};

pub struct Metrics {
    pub registry: Registry,
    connections: IntGauge,
    connections_opened: IntCounter,
    connections_closed: IntCounterVec,
    deliveries: IntCounter,
    appended: IntCounterVec,
}

impl Metrics {
    pub fn new(node_id: &str) -> Self {
        let registry = Registry::new_custom(
            Some("herald".into()),
            Some([("node".into(), node_id.into())].into()),
        )
        .expect("valid registry");
        let connections = IntGauge::new("connections", "WebSocket connections open now").unwrap();
        let connections_opened =
            IntCounter::new("connections_opened_total", "WebSocket connections accepted").unwrap();
        let connections_closed = IntCounterVec::new(
            Opts::new(
                "connections_closed_total",
                "WebSocket connections ended, by reason",
            ),
            &["reason"],
        )
        .unwrap();
        let deliveries = IntCounter::new(
            "deliveries_total",
            "Live message frames written to connections (catch-up reads excluded)",
        )
        .unwrap();
        let appended = IntCounterVec::new(
            Opts::new("messages_appended_total", "Messages stored, by entry point"),
            &["source"],
        )
        .unwrap();
        for c in [
            Box::new(connections.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(connections_opened.clone()),
            Box::new(connections_closed.clone()),
            Box::new(deliveries.clone()),
            Box::new(appended.clone()),
        ] {
            registry.register(c).expect("metric registered once");
        }
        Metrics {
            registry,
            connections,
            connections_opened,
            connections_closed,
            deliveries,
            appended,
        }
    }

    pub fn connection_opened(&self) {
        self.connections.inc();
        self.connections_opened.inc();
    }

    pub fn connection_closed(&self, reason: &str) {
        self.connections.dec();
        self.connections_closed.with_label_values(&[reason]).inc();
    }

    /// Connections that have not finished closing.
    pub fn open_connections(&self) -> i64 {
        self.connections.get()
    }

    pub fn delivered(&self) {
        self.deliveries.inc();
    }

    pub fn appended(&self, source: &str) {
        self.appended.with_label_values(&[source]).inc();
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        prometheus::TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap_or_default()
    }
}

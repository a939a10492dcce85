//! The service's metrics in the Prometheus text format (version 0.0.4):
//! request counters and latency histograms kept here, and the bus's
//! counters (events handled, errors, DLQ, consumer lag, outbox lag) read
//! from the node each time `/metrics` is scraped.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds (+Inf is implied).
const BUCKETS: [f64; 14] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        for (bound, c) in BUCKETS.iter().zip(self.counts.iter_mut()) {
            if seconds <= *bound {
                *c += 1;
            }
        }
        self.count += 1;
        self.sum += seconds;
    }
}

/// Labels of one request series: context, route template, method, status.
type RequestKey = (String, String, String, u16);

/// What the HTTP layer records.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<RequestKey, u64>>,
    latency: Mutex<BTreeMap<(String, String, String), Histogram>>,
}

/// The counters of one consumer group, read from the node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupSample {
    pub group: String,
    pub handled: u64,
    pub failed: u64,
    pub dead_lettered: u64,
    /// Deliveries that changed nothing because their effect was already
    /// there (redeliveries, duplicates on the bus).
    pub deduplicated: u64,
    /// Records on the group's partitions not yet read (None when the bus
    /// does not say yet).
    pub lag: Option<u64>,
}

/// The state of one outbox relay, read from the node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RelaySample {
    pub context: String,
    pub published: u64,
    pub failed_attempts: u64,
    /// Events stored but not yet on the bus.
    pub lag: u64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Escapes a label value as the text format asks.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

impl Metrics {
    /// Records one answered request.
    pub fn observe(&self, context: &str, route: &str, method: &str, status: u16, took: Duration) {
        *lock(&self.requests).entry((context.to_owned(), route.to_owned(), method.to_owned(), status)).or_default() +=
            1;
        lock(&self.latency)
            .entry((context.to_owned(), route.to_owned(), method.to_owned()))
            .or_default()
            .observe(took.as_secs_f64());
    }

    /// The exposition: request metrics, then the node's.
    pub fn render(&self, groups: &[GroupSample], relays: &[RelaySample]) -> String {
        let mut out = String::new();
        out.push_str("# HELP platform_http_requests_total HTTP requests answered, by route and status.\n");
        out.push_str("# TYPE platform_http_requests_total counter\n");
        for ((ctx, route, method, status), n) in lock(&self.requests).iter() {
            let _ = writeln!(
                out,
                "platform_http_requests_total{{context=\"{}\",route=\"{}\",method=\"{method}\",status=\"{status}\"}} {n}",
                label(ctx),
                label(route)
            );
        }
        out.push_str("# HELP platform_http_request_duration_seconds Time from request to response.\n");
        out.push_str("# TYPE platform_http_request_duration_seconds histogram\n");
        for ((ctx, route, method), h) in lock(&self.latency).iter() {
            let labels = format!("context=\"{}\",route=\"{}\",method=\"{method}\"", label(ctx), label(route));
            for (bound, c) in BUCKETS.iter().zip(h.counts.iter()) {
                let _ = writeln!(out, "platform_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {c}");
            }
            let _ = writeln!(out, "platform_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}", h.count);
            let _ = writeln!(out, "platform_http_request_duration_seconds_sum{{{labels}}} {}", h.sum);
            let _ = writeln!(out, "platform_http_request_duration_seconds_count{{{labels}}} {}", h.count);
        }
        let counter = |out: &mut String, name: &str, help: &str, values: &mut dyn Iterator<Item = (String, u64)>| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            for (labels, v) in values {
                let _ = writeln!(out, "{name}{{{labels}}} {v}");
            }
        };
        let g = |s: &GroupSample| format!("group=\"{}\"", label(&s.group));
        counter(
            &mut out,
            "platform_events_handled_total",
            "Events a consumer group handled.",
            &mut groups.iter().map(|s| (g(s), s.handled)),
        );
        counter(
            &mut out,
            "platform_event_errors_total",
            "Handler attempts that failed (retried or dead-lettered).",
            &mut groups.iter().map(|s| (g(s), s.failed)),
        );
        counter(
            &mut out,
            "platform_events_dead_lettered_total",
            "Events sent to the dead-letter topic.",
            &mut groups.iter().map(|s| (g(s), s.dead_lettered)),
        );
        counter(
            &mut out,
            "platform_events_deduplicated_total",
            "Deliveries absorbed as repeats: their effect was already there.",
            &mut groups.iter().map(|s| (g(s), s.deduplicated)),
        );
        out.push_str("# HELP platform_consumer_lag_records Records on a group's partitions not yet consumed.\n");
        out.push_str("# TYPE platform_consumer_lag_records gauge\n");
        for s in groups {
            if let Some(lag) = s.lag {
                let _ = writeln!(out, "platform_consumer_lag_records{{{}}} {lag}", g(s));
            }
        }
        let r = |s: &RelaySample| format!("context=\"{}\"", label(&s.context));
        counter(
            &mut out,
            "platform_outbox_published_total",
            "Events the outbox relay put on the bus.",
            &mut relays.iter().map(|s| (r(s), s.published)),
        );
        counter(
            &mut out,
            "platform_outbox_failed_attempts_total",
            "Relay rounds the bus refused (retried from the checkpoint).",
            &mut relays.iter().map(|s| (r(s), s.failed_attempts)),
        );
        out.push_str("# HELP platform_outbox_lag_events Events stored but not yet relayed to the bus.\n");
        out.push_str("# TYPE platform_outbox_lag_events gauge\n");
        for s in relays {
            let _ = writeln!(out, "platform_outbox_lag_events{{{}}} {}", r(s), s.lag);
        }
        out
    }
}

/// The projections' gauges: position, lag in events and seconds, rate,
/// whether parked, and the copy's position while a rebuild runs.
pub fn projections(statuses: &[event_store::ProjectionStatus]) -> String {
    /// A gauge's value for one projection (`None`: not reported).
    type Reading = fn(&event_store::ProjectionStatus) -> Option<f64>;
    let mut out = String::new();
    let gauges: [(&str, &str, Reading); 6] = [
        ("platform_projection_position", "The next global-log position the projection applies.", |s| {
            Some(s.position as f64)
        }),
        ("platform_projection_lag_events", "Events stored and not yet applied.", |s| Some(s.lag_events as f64)),
        ("platform_projection_lag_seconds", "Event time between the head and the last event applied.", |s| {
            Some(s.lag_seconds)
        }),
        ("platform_projection_events_per_second", "Rate of the last catch-up that applied events.", |s| {
            Some(s.events_per_second)
        }),
        ("platform_projection_parked", "1 while the projection is parked on an event it cannot follow.", |s| {
            Some(if s.parked.is_some() { 1.0 } else { 0.0 })
        }),
        ("platform_projection_rebuild_position", "The next position of the copy a running rebuild feeds.", |s| {
            s.rebuilding.map(|p| p as f64)
        }),
    ];
    for (name, help, value) in gauges {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} gauge");
        for s in statuses {
            if let Some(v) = value(s) {
                let _ = writeln!(out, "{name}{{projection=\"{}\"}} {v}", label(&s.name));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_histogram_is_cumulative_and_labels_are_escaped() {
        let m = Metrics::default();
        m.observe("orders", "/orders/{id}", "GET", 200, Duration::from_millis(3));
        m.observe("orders", "/orders/{id}", "GET", 404, Duration::from_millis(700));
        let text = m.render(
            &[GroupSample {
                group: "a\"b".into(),
                handled: 5,
                failed: 1,
                dead_lettered: 1,
                deduplicated: 3,
                lag: Some(2),
            }],
            &[RelaySample { context: "orders".into(), published: 7, failed_attempts: 0, lag: 3 }],
        );
        let line = |prefix: &str| {
            text.lines()
                .find(|l| l.starts_with(prefix))
                .unwrap_or_else(|| panic!("no `{prefix}` in\n{text}"))
                .to_owned()
        };
        assert!(line("platform_http_request_duration_seconds_bucket{context=\"orders\",route=\"/orders/{id}\",method=\"GET\",le=\"0.005\"}").ends_with(" 1"));
        assert!(line("platform_http_request_duration_seconds_bucket{context=\"orders\",route=\"/orders/{id}\",method=\"GET\",le=\"1\"}").ends_with(" 2"));
        assert!(line("platform_http_request_duration_seconds_count").ends_with(" 2"));
        assert!(
            line(
                "platform_http_requests_total{context=\"orders\",route=\"/orders/{id}\",method=\"GET\",status=\"404\"}"
            )
            .ends_with(" 1")
        );
        assert_eq!(line("platform_events_handled_total"), "platform_events_handled_total{group=\"a\\\"b\"} 5");
        assert_eq!(
            line("platform_events_deduplicated_total"),
            "platform_events_deduplicated_total{group=\"a\\\"b\"} 3"
        );
        assert_eq!(line("platform_outbox_lag_events"), "platform_outbox_lag_events{context=\"orders\"} 3");
        assert_eq!(line("platform_consumer_lag_records"), "platform_consumer_lag_records{group=\"a\\\"b\"} 2");
    }
}

//! Counters and gauges, rendered in the Prometheus text exposition format (version 0.0.4).

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A monotonically increasing count.
#[derive(Debug, Clone, Default)]
pub struct Counter(Arc<AtomicU64>);

impl Counter {
    pub fn inc(&self) {
        self.add(1);
    }
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Debug, Clone, Default)]
pub struct Gauge(Arc<AtomicI64>);

impl Gauge {
    pub fn set(&self, v: i64) {
        self.0.store(v, Ordering::Relaxed);
    }
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Debug)]
enum Metric {
    Counter(Counter),
    Gauge(Gauge),
}

#[derive(Debug)]
struct Family {
    name: String,
    help: String,
    series: Vec<(Vec<(String, String)>, Metric)>,
}

/// The metrics of one process.
#[derive(Debug, Default, Clone)]
pub struct Registry {
    families: Arc<Mutex<Vec<Family>>>,
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

impl Registry {
    pub fn new() -> Registry {
        Registry::default()
    }

    fn register(&self, name: &str, help: &str, labels: &[(&str, &str)], m: Metric) {
        assert!(valid_name(name), "invalid metric name {name:?}");
        let labels: Vec<(String, String)> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let mut fams = self.families.lock().unwrap_or_else(|e| e.into_inner());
        match fams.iter_mut().find(|f| f.name == name) {
            Some(f) => f.series.push((labels, m)),
            None => fams.push(Family { name: name.into(), help: help.into(), series: vec![(labels, m)] }),
        }
    }

    /// A counter `name` with `labels` (registered once; keep the handle).
    pub fn counter(&self, name: &str, help: &str, labels: &[(&str, &str)]) -> Counter {
        let c = Counter::default();
        self.register(name, help, labels, Metric::Counter(c.clone()));
        c
    }

    /// A gauge `name` with `labels`.
    pub fn gauge(&self, name: &str, help: &str, labels: &[(&str, &str)]) -> Gauge {
        let g = Gauge::default();
        self.register(name, help, labels, Metric::Gauge(g.clone()));
        g
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let fams = self.families.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::new();
        for f in fams.iter() {
            let kind = match f.series.first() {
                Some((_, Metric::Counter(_))) => "counter",
                _ => "gauge",
            };
            let _ = writeln!(out, "# HELP {} {}", f.name, f.help.replace('\\', "\\\\").replace('\n', "\\n"));
            let _ = writeln!(out, "# TYPE {} {kind}", f.name);
            for (labels, m) in &f.series {
                let value = match m {
                    Metric::Counter(c) => c.get().to_string(),
                    Metric::Gauge(g) => g.get().to_string(),
                };
                if labels.is_empty() {
                    let _ = writeln!(out, "{} {value}", f.name);
                } else {
                    let l: Vec<String> = labels
                        .iter()
                        .map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")))
                        .collect();
                    let _ = writeln!(out, "{}{{{}}} {value}", f.name, l.join(","));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_text_format() {
        let r = Registry::new();
        let ok = r.counter("kubetron_reconciles_total", "Pods reconciled.", &[("result", "ok")]);
        let err = r.counter("kubetron_reconciles_total", "Pods reconciled.", &[("result", "error")]);
        let g = r.gauge("kubetron_leader", "1 when this replica leads.", &[]);
        ok.add(3);
        err.inc();
        g.set(1);
        let text = r.render();
        assert_eq!(
            text,
            "# HELP kubetron_reconciles_total Pods reconciled.\n# TYPE kubetron_reconciles_total counter\n\
             kubetron_reconciles_total{result=\"ok\"} 3\nkubetron_reconciles_total{result=\"error\"} 1\n\
             # HELP kubetron_leader 1 when this replica leads.\n# TYPE kubetron_leader gauge\nkubetron_leader 1\n"
        );
    }

    #[test]
    fn label_values_are_escaped() {
        let r = Registry::new();
        r.counter("x_total", "x", &[("v", "a\"b\\c")]).inc();
        assert!(r.render().contains("x_total{v=\"a\\\"b\\\\c\"} 1"));
    }
}

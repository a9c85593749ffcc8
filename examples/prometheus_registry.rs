//! Joining the observer's metrics with a service's own `prometheus` (tikv)
//! registry: a `Collector` that is a loop over
//! `ObserverHandle::metric_families`, not a copy of the crate's names and
//! help strings. Two observers (two Redis, say) share the page, each with
//! its `observer` label.
//!
//! ```text
//! cargo run --example prometheus_registry | promtool check metrics
//! ```

use std::collections::BTreeMap;

use heat_observer::{Config, LateObserver, MemoryStore, ObserverHandle, metrics::MetricKind};
use prometheus::core::{Collector, Desc};
use prometheus::proto;
use prometheus::{Encoder, IntCounter, Registry, TextEncoder};

/// The observers' series, collected whenever the registry is gathered.
pub struct ObserverCollector {
    observers: Vec<ObserverHandle>,
}

impl Collector for ObserverCollector {
    fn desc(&self) -> Vec<&Desc> {
        // Unchecked collector: the families are only known when collected.
        Vec::new()
    }

    fn collect(&self) -> Vec<proto::MetricFamily> {
        let sets = self.observers.iter().map(ObserverHandle::metric_families);
        heat_observer::metrics::MetricsFormat::merge(sets)
            .into_iter()
            .map(to_proto)
            .collect()
    }
}

fn pair(name: &str, value: &str) -> proto::LabelPair {
    let mut p = proto::LabelPair::default();
    p.set_name(name.to_owned());
    p.set_value(value.to_owned());
    p
}

/// A sample's labels but `le`, which a proto histogram keeps in its buckets.
fn labels(sample: &heat_observer::metrics::Sample) -> Vec<(String, String)> {
    let own = sample.labels.iter().filter(|(k, _)| *k != "le");
    own.map(|(k, v)| ((*k).to_owned(), v.clone())).collect()
}

fn metric(labels: Vec<(String, String)>) -> proto::Metric {
    proto::Metric::from_label(labels.iter().map(|(k, v)| pair(k, v)).collect())
}

fn to_proto(family: heat_observer::metrics::MetricFamily) -> proto::MetricFamily {
    let mut out = proto::MetricFamily::default();
    out.set_name(family.name.to_owned());
    out.set_help(family.help.to_owned());
    let metrics = match family.kind {
        MetricKind::Counter => {
            out.set_field_type(proto::MetricType::COUNTER);
            let counter = |s: &heat_observer::metrics::Sample| {
                let mut m = metric(labels(s));
                let mut c = proto::Counter::default();
                c.set_value(s.value);
                m.set_counter(c);
                m
            };
            family.samples.iter().map(counter).collect()
        }
        MetricKind::Gauge => {
            out.set_field_type(proto::MetricType::GAUGE);
            let gauge = |s: &heat_observer::metrics::Sample| {
                let mut m = metric(labels(s));
                let mut g = proto::Gauge::default();
                g.set_value(s.value);
                m.set_gauge(g);
                m
            };
            family.samples.iter().map(gauge).collect()
        }
        _ => {
            // One proto histogram per label set: its buckets, sum and count.
            out.set_field_type(proto::MetricType::HISTOGRAM);
            let mut by_labels: BTreeMap<Vec<(String, String)>, proto::Histogram> = BTreeMap::new();
            for s in &family.samples {
                let h = by_labels.entry(labels(s)).or_default();
                match s.suffix {
                    "_bucket" => {
                        let le = s.labels.iter().find(|(k, _)| *k == "le");
                        // +Inf is implied by the count.
                        if let Some(le) = le.and_then(|(_, v)| v.parse::<f64>().ok()) {
                            let mut bucket = proto::Bucket::default();
                            bucket.set_upper_bound(le);
                            bucket.set_cumulative_count(s.value as u64);
                            let mut buckets = h.get_bucket().to_vec();
                            buckets.push(bucket);
                            h.set_bucket(buckets);
                        }
                    }
                    "_sum" => h.set_sample_sum(s.value),
                    _ => h.set_sample_count(s.value as u64),
                }
            }
            let histogram = |(labels, h): (Vec<(String, String)>, proto::Histogram)| {
                let mut m = metric(labels);
                m.set_histogram(h);
                m
            };
            by_labels.into_iter().map(histogram).collect()
        }
    };
    out.set_metric(metrics);
    out
}

/// The page a service serves: its own series and both observers'.
pub fn page(observers: Vec<ObserverHandle>) -> String {
    let registry = Registry::new();
    let requests = IntCounter::new("apply_requests_total", "Requests Apply served.").unwrap();
    registry.register(Box::new(requests.clone())).unwrap();
    requests.inc_by(3);
    registry
        .register(Box::new(ObserverCollector { observers }))
        .unwrap();
    let mut buf = Vec::new();
    TextEncoder::new()
        .encode(&registry.gather(), &mut buf)
        .unwrap();
    String::from_utf8(buf).unwrap()
}

fn main() {
    let start = |name: &str| {
        let config = Config::builder().name(name).build().unwrap();
        let store = MemoryStore::new();
        store.insert_key(config.heat_key("p1"));
        LateObserver::start(config, store).unwrap()
    };
    let (eu, us) = (start("eu"), start("us"));
    eu.observe_late("p1", "BTCUSDT").unwrap();
    us.observe_now("p2", "ETHUSDT").unwrap();
    let text = page(vec![eu.handle(), us.handle()]);
    eu.shutdown(std::time::Duration::from_secs(3));
    us.shutdown(std::time::Duration::from_secs(3));
    print!("{text}");
}

#[cfg(test)]
mod tests {
    use heat_observer::metrics::MetricsFormat;
    use heat_observer::{Config, LateObserver, MemoryStore};
    use heat_observer_testkit::promtool;

    use super::page;

    #[test]
    fn several_observers_share_one_page_that_promtool_accepts() {
        let named = |name: &str| {
            let config = Config::builder().name(name).build().unwrap();
            LateObserver::start(config, MemoryStore::new()).unwrap()
        };
        let (a, b) = (named("eu"), named("us"));
        a.observe_late("p1", "S").unwrap();
        let families = MetricsFormat::merge([a.metric_families(), b.metric_families()]);
        let text = MetricsFormat::Prometheus.render(&families);
        assert_eq!(text.matches("# HELP p28_observed_total ").count(), 1);
        assert!(text.contains("p28_accepted_total{observer=\"eu\"} 1\n"));
        assert!(text.contains("p28_accepted_total{observer=\"us\"} 0\n"));
        // Joined with a `prometheus` crate registry by the collector above.
        let page = page(vec![a.handle(), b.handle()]);
        assert!(page.contains("apply_requests_total 3"));
        assert!(page.contains("p28_accepted_total{observer=\"eu\"} 1"));
        let Some((clean, said)) = promtool(&text) else {
            return;
        };
        assert!(clean, "promtool on the merged page: {said}");
        let (clean, said) = promtool(&page).unwrap();
        assert!(clean, "promtool on the registry's page: {said}");
    }
}

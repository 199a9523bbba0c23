//! Reading values back from the sink without rendering or parsing text.

#[test]
fn sink_lookups_without_parsing() {
    use stats_sink::{MetricType, StatsSink, VmMetricIds};
    let mut sink = StatsSink::new();
    let mut vm = VmMetricIds::default();
    let c = vm.define(&mut sink, MetricType::Counter, "a_total");
    let h = vm.define(&mut sink, MetricType::Histogram, "lat");
    vm.increment(&mut sink, c, 2).unwrap();
    vm.record(&mut sink, h, 7).unwrap();
    assert_eq!(sink.value("a_total"), Some(2));
    assert_eq!(sink.value("lat"), None);
    assert_eq!(sink.histogram("lat").map(|h| h.count()), Some(1));
    assert_eq!(
        sink.histogram("lat"),
        Some(&stats_sink::Histogram::from_samples(&[7]))
    );
    assert_eq!(sink.histogram("a_total"), None);
    assert_eq!(sink.value("missing"), None);
}

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

#[test]
fn metric_ids_follow_cpp_host_encoding_and_unknown_ids_are_not_found() {
    use stats_sink::{MetricError, MetricType, StatsSink, VmMetricIds};
    let mut sink = StatsSink::new();
    let mut vm = VmMetricIds::default();
    // cpp-host: the n-th id of a type is 4n | type (kMetricIdIncrement 4, type in the low bits).
    let c1 = vm.define(&mut sink, MetricType::Counter, "c1");
    let g1 = vm.define(&mut sink, MetricType::Gauge, "g1");
    let c2 = vm.define(&mut sink, MetricType::Counter, "c2");
    let h1 = vm.define(&mut sink, MetricType::Histogram, "h1");
    assert_eq!((c1, g1, c2, h1), (4, 5, 8, 6));
    vm.record(&mut sink, c2, 3).unwrap();
    vm.record(&mut sink, g1, 9).unwrap();
    assert_eq!(
        (sink.value("c1"), sink.value("c2"), sink.value("g1")),
        (Some(0), Some(3), Some(9))
    );
    // Never issued: 0 and 3 (no type 3), 12 (third counter), 10 (second histogram), 7.
    for id in [0, 3, 7, 10, 12, u32::MAX] {
        assert_eq!(
            vm.record(&mut sink, id, 1),
            Err(MetricError::NotFound),
            "id {id}"
        );
        assert_eq!(vm.get(&sink, id), Err(MetricError::NotFound), "id {id}");
    }
}

//! Times inside a line: `duration_ms` and the HTTP stream's timing plan (timed gRPC batches,
//! `stop_after_ms`), checked against the stream.

use crate::stream::{GrpcProgress, HttpPlan};

const NS_PER_MS: f64 = 1_000_000.0;

pub(super) fn duration_ns(ms: Option<f64>) -> Result<i64, String> {
    let ms = ms.unwrap_or(1.0);
    if !(0.0..=1e12).contains(&ms) {
        return Err(format!("duration_ms: must be a number ≥ 0, got {ms}"));
    }
    Ok((ms * NS_PER_MS).round() as i64)
}

/// `at_ms` / `stop_after_ms` → ns, checked against the stream: a time is a number ≥ 0 within
/// the stream (`at_ms` ≤ `duration_ms`, `stop_after_ms` < `duration_ms`), timed batches in
/// time order.
pub(super) fn http_plan(
    batches: &[(Option<f64>, u64, u64)],
    stop_after_ms: Option<f64>,
    duration_ns: i64,
) -> Result<HttpPlan, String> {
    let duration_ms = duration_ns as f64 / NS_PER_MS;
    let mut plan = HttpPlan::default();
    let (mut q, mut r) = (0u64, 0u64);
    let mut last_at = 0i64;
    for (i, (at_ms, req, resp)) in batches.iter().enumerate() {
        let Some(at_ms) = at_ms else {
            plan.grpc_initial.0 = plan.grpc_initial.0.saturating_add(*req);
            plan.grpc_initial.1 = plan.grpc_initial.1.saturating_add(*resp);
            continue;
        };
        let field = format!("grpc_messages[{i}].at_ms");
        if !(0.0..=1e12).contains(at_ms) {
            return Err(format!("{field}: must be a number ≥ 0, got {at_ms}"));
        }
        let at_ns = (at_ms * NS_PER_MS).round() as i64;
        if at_ns > duration_ns {
            return Err(format!(
                "{field}: {at_ms} is after the stream's end (duration_ms {duration_ms})"
            ));
        }
        if at_ns < last_at {
            return Err(format!(
                "{field}: {at_ms} is before the previous timed batch; give batches in time order"
            ));
        }
        last_at = at_ns;
        q = q.saturating_add(*req);
        r = r.saturating_add(*resp);
        plan.grpc_timeline.push(GrpcProgress {
            at_ns,
            requests: q,
            responses: r,
        });
    }
    // Running totals include what was there from the headers on.
    for p in &mut plan.grpc_timeline {
        p.requests = p.requests.saturating_add(plan.grpc_initial.0);
        p.responses = p.responses.saturating_add(plan.grpc_initial.1);
    }
    if let Some(stop) = stop_after_ms {
        if !(0.0..=1e12).contains(&stop) {
            return Err(format!("stop_after_ms: must be a number ≥ 0, got {stop}"));
        }
        let stop_ns = (stop * NS_PER_MS).round() as i64;
        if stop_ns >= duration_ns {
            return Err(format!(
                "stop_after_ms: {stop} is not before the stream's end (duration_ms {duration_ms}); a stream that ends needs no stop"
            ));
        }
        plan.stop_after_ns = Some(stop_ns);
    }
    Ok(plan)
}

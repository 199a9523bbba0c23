//! Metrics: `proxy_define_metric`, `proxy_increment_metric`, `proxy_record_metric`,
//! `proxy_get_metric` (Envoy `context.cc` `defineMetric`, `incrementMetric`, `recordMetric`,
//! `getMetric`; cpp-host `src/exports.cc`; abi-host §1.5, §1.9).

use wasmtime::Linker;

use super::{lossy, Res};
use crate::abi::Status;
use crate::host_calls::memory::{read, write_u32, write_u64, INVALID};
use crate::host_calls::{enter, finish, st, Cx};
use crate::host_state::VmHost;
use stats_sink::{MetricError, MetricType};

fn metric_status(e: MetricError) -> Status {
    match e {
        MetricError::NotFound => Status::NotFound,
        MetricError::BadArgument => Status::BadArgument,
    }
}

pub(super) fn register(l: &mut Linker<VmHost>) -> wasmtime::Result<()> {
    l.func_wrap(
        "env",
        "proxy_define_metric",
        |mut c: Cx<'_>, ty: i32, np: i32, nl: i32, ret: i32| -> Res {
            guard!(c, "proxy_define_metric");
            let kind = match ty {
                0 => MetricType::Counter,
                1 => MetricType::Gauge,
                2 => MetricType::Histogram,
                _ => {
                    return Ok(finish(
                        &mut c,
                        "proxy_define_metric",
                        st(Status::BadArgument),
                    ))
                }
            };
            let Some(name) = read(&mut c, np, nl) else {
                return Ok(INVALID);
            };
            let name = lossy(&name);
            let h = c.data_mut();
            let Some(w) = h.world.as_deref_mut() else {
                return Ok(st(Status::InternalFailure));
            };
            let id = h.metric_ids.define(&mut w.stats, kind, &name);
            Ok(if write_u32(&mut c, ret, id) {
                0
            } else {
                INVALID
            })
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_increment_metric",
        |mut c: Cx<'_>, id: i32, delta: i64| -> Res {
            guard!(c, "proxy_increment_metric");
            let h = c.data_mut();
            let Some(w) = h.world.as_deref_mut() else {
                return Ok(st(Status::InternalFailure));
            };
            let s = match h.metric_ids.increment(&mut w.stats, id as u32, delta) {
                Ok(()) => Status::Ok,
                Err(e) => metric_status(e),
            };
            Ok(finish(&mut c, "proxy_increment_metric", st(s)))
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_record_metric",
        |mut c: Cx<'_>, id: i32, value: i64| -> Res {
            guard!(c, "proxy_record_metric");
            let h = c.data_mut();
            let Some(w) = h.world.as_deref_mut() else {
                return Ok(st(Status::InternalFailure));
            };
            let s = match h.metric_ids.record(&mut w.stats, id as u32, value as u64) {
                Ok(()) => Status::Ok,
                Err(e) => metric_status(e),
            };
            Ok(finish(&mut c, "proxy_record_metric", st(s)))
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_get_metric",
        |mut c: Cx<'_>, id: i32, ret: i32| -> Res {
            guard!(c, "proxy_get_metric");
            let h = c.data();
            let Some(w) = h.world.as_deref() else {
                return Ok(st(Status::InternalFailure));
            };
            match h.metric_ids.get(&w.stats, id as u32) {
                Ok(v) => Ok(if write_u64(&mut c, ret, v) {
                    0
                } else {
                    INVALID
                }),
                Err(e) => Ok(finish(&mut c, "proxy_get_metric", st(metric_status(e)))),
            }
        },
    )?;
    Ok(())
}

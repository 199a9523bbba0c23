//! Logging and the clock: `proxy_log`, `proxy_get_log_level`, `proxy_get_current_time_nanoseconds`,
//! `proxy_set_tick_period_milliseconds` (Envoy `context.cc` `log`, `getLogLevel`,
//! `getCurrentTimeNanoseconds`, `setTickPeriod`; cpp-host `src/exports.cc`; abi-host §1.5).

use wasmtime::Linker;

use super::{lossy, Res};
use crate::abi::{LogLevel, Status};
use crate::host_calls::memory::{read, write_u32, write_u64, INVALID};
use crate::host_calls::{enter, finish, st, Cx};
use crate::host_state::{LogEntry, LogSource, VmHost};

pub(super) fn register(l: &mut Linker<VmHost>) -> wasmtime::Result<()> {
    l.func_wrap(
        "env",
        "proxy_log",
        |mut c: Cx<'_>, level: i32, ptr: i32, len: i32| -> Res {
            guard!(c, "proxy_log");
            let Some(level) = LogLevel::from_i32(level) else {
                return Ok(finish(&mut c, "proxy_log", st(Status::BadArgument)));
            };
            let Some(msg) = read(&mut c, ptr, len) else {
                return Ok(INVALID);
            };
            let source = c.data().log_source();
            if let Some(w) = c.data_mut().world() {
                if level >= w.log_level {
                    w.logs.push(LogEntry {
                        source: LogSource::Plugin(source),
                        level,
                        message: lossy(&msg),
                    });
                }
            }
            Ok(0)
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_get_log_level",
        |mut c: Cx<'_>, ret: i32| -> Res {
            guard!(c, "proxy_get_log_level");
            let level = c
                .data()
                .world
                .as_deref()
                .map(|w| w.log_level as u32)
                .unwrap_or(2);
            Ok(if write_u32(&mut c, ret, level) {
                0
            } else {
                INVALID
            })
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_get_current_time_nanoseconds",
        |mut c: Cx<'_>, ret: i32| -> Res {
            guard!(c, "proxy_get_current_time_nanoseconds");
            let now = c.data().world.as_deref().map(|w| w.now_ns).unwrap_or(0);
            Ok(if write_u64(&mut c, ret, now as u64) {
                0
            } else {
                INVALID
            })
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_set_tick_period_milliseconds",
        |mut c: Cx<'_>, period: i32| -> Res {
            guard!(c, "proxy_set_tick_period_milliseconds");
            let h = c.data_mut();
            let now = h.world.as_deref().map(|w| w.now_ns).unwrap_or(0);
            // The timer belongs to the root of the effective context.
            if let Some(root) = h.contexts.get(&h.effective_ctx).copied() {
                if let Some(r) = h.roots.get_mut(&root) {
                    r.tick_period_ms = period as u32 as u64;
                    r.next_tick_ns =
                        now.saturating_add((r.tick_period_ms as i64).saturating_mul(1_000_000));
                    if r.tick_period_ms > 0 {
                        h.ticking = true;
                    }
                }
            }
            Ok(0)
        },
    )?;
    Ok(())
}

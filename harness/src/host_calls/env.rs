//! `env.proxy_*`: Envoy's semantics per host call (Envoy `source/extensions/common/wasm/context.cc`
//! and cpp-host `src/exports.cc`, as tabulated in abi-host §1.5).

use wasmtime::Linker;

use super::memory::{
    copy_out, copy_out_scratch, read, with_bytes, with_two, write_u32, write_u64, INVALID,
};
use super::{enter, finish, st, Cx};
use crate::abi::{LogLevel, Status};
use crate::host_state::{
    Deferred, HttpCallScript, LocalReply, LogEntry, LogSource, PendingHttpCall, Phase, SharedQueue,
    VmHost, MAP_REQ_TRAILERS,
};
use crate::properties::{get_property, is_lowered, PropertyView, RootRef};
use stats_sink::{MetricError, MetricType};

type Res = wasmtime::Result<i32>;

macro_rules! guard {
    ($c:expr, $name:literal) => {
        if let Some(s) = enter(&mut $c, $name, concat!("env.", $name))? {
            return Ok(s);
        }
    };
}

fn metric_status(e: MetricError) -> Status {
    match e {
        MetricError::NotFound => Status::NotFound,
        MetricError::BadArgument => Status::BadArgument,
    }
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Decodes a pairs buffer passed by the module (cpp-host `toPairs`: > 1 MiB, > 1024 pairs or
/// malformed → empty); keys are lower-cased like Envoy's `LowerCaseString`.
fn to_pairs(bytes: &[u8]) -> Vec<(String, String)> {
    if bytes.len() > 1 << 20 {
        return Vec::new();
    }
    match proxy_attributes::values::decode_pairs(bytes) {
        Some(p) if p.len() <= 1024 => p
            .into_iter()
            .map(|(k, v)| (lossy(k).to_ascii_lowercase(), lossy(v)))
            .collect(),
        _ => Vec::new(),
    }
}

/// Envoy returns an empty map as a zero-length result.
fn pairs_bytes(map: &[(String, String)], out: &mut Vec<u8>) {
    out.clear();
    if !map.is_empty() {
        out.extend_from_slice(&proxy_attributes::values::encode_pairs(map));
    }
}

/// Which map a `proxy_map_type_t` refers to right now: `Ok(Some(i))` a stream map, `Ok(None)` the
/// http-call response maps, `Err` unavailable (status to return).
enum MapRef {
    Stream(usize),
    CallHeaders,
    CallTrailers,
}

fn map_ref(h: &VmHost, ty: i32, for_write: bool) -> Result<MapRef, Status> {
    match ty {
        0..=3 => {
            let i = ty as usize;
            let Some(s) = h.stream_for_effective() else {
                return Err(Status::BadArgument);
            };
            if s.live[i] {
                return Ok(MapRef::Stream(i));
            }
            if s.log_phase {
                // Access-log copies: readable (not request trailers), never writable.
                if !for_write && i != MAP_REQ_TRAILERS {
                    return Ok(MapRef::Stream(i));
                }
                return Err(if for_write {
                    Status::BadArgument
                } else {
                    Status::NotFound
                });
            }
            Err(Status::BadArgument)
        }
        6 | 7
            if h.phase == Phase::HttpCallResponse
                && h.http_call_response.is_some()
                && !for_write =>
        {
            Ok(if ty == 6 {
                MapRef::CallHeaders
            } else {
                MapRef::CallTrailers
            })
        }
        _ => Err(Status::BadArgument),
    }
}

fn map_of<'a>(h: &'a VmHost, r: &MapRef) -> &'a [(String, String)] {
    match r {
        MapRef::Stream(i) => h
            .stream
            .as_deref()
            .map(|s| s.maps[*i].as_slice())
            .unwrap_or(&[]),
        MapRef::CallHeaders => h
            .http_call_response
            .as_ref()
            .map(|r| r.headers.as_slice())
            .unwrap_or(&[]),
        MapRef::CallTrailers => h
            .http_call_response
            .as_ref()
            .map(|r| r.trailers.as_slice())
            .unwrap_or(&[]),
    }
}

fn stream_map_mut(h: &mut VmHost, i: usize) -> Option<&mut Vec<(String, String)>> {
    h.stream.as_deref_mut().map(|s| &mut s.maps[i])
}

pub(crate) fn register(l: &mut Linker<VmHost>) -> wasmtime::Result<()> {
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

    // ---- buffers ----
    l.func_wrap(
        "env",
        "proxy_get_buffer_bytes",
        |mut c: Cx<'_>, ty: i32, start: i32, max: i32, ret_ptr: i32, ret_len: i32| -> Res {
            guard!(c, "proxy_get_buffer_bytes");
            let (start, max) = (start as u32 as usize, max as u32 as usize);
            let Some(end) = start.checked_add(max) else {
                return Ok(finish(
                    &mut c,
                    "proxy_get_buffer_bytes",
                    st(Status::BadArgument),
                ));
            };
            let r = {
                let h = c.data_mut();
                let mut scratch = std::mem::take(&mut h.scratch);
                scratch.clear();
                let r = buffer(h, ty).map(|b| {
                    let s = start.min(b.len());
                    scratch.extend_from_slice(&b[s..end.min(b.len())]);
                });
                h.scratch = scratch;
                r
            };
            match r {
                Ok(()) => copy_out_scratch(&mut c, ret_ptr, ret_len),
                Err(s) => Ok(finish(&mut c, "proxy_get_buffer_bytes", st(s))),
            }
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_get_buffer_status",
        |mut c: Cx<'_>, ty: i32, len_ptr: i32, flags_ptr: i32| -> Res {
            guard!(c, "proxy_get_buffer_status");
            let len = match buffer(c.data(), ty) {
                Ok(b) => b.len(),
                Err(s) => return Ok(st(s)),
            };
            Ok(
                if write_u32(&mut c, len_ptr, len as u32) && write_u32(&mut c, flags_ptr, 0) {
                    0
                } else {
                    INVALID
                },
            )
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_set_buffer_bytes",
        |mut c: Cx<'_>, ty: i32, start: i32, size: i32, ptr: i32, len: i32| -> Res {
            guard!(c, "proxy_set_buffer_bytes");
            let Some(data) = read(&mut c, ptr, len) else {
                return Ok(INVALID);
            };
            let h = c.data_mut();
            let ok_type = h
                .stream_for_effective()
                .map(|s| s.buffer_type == Some(ty))
                .unwrap_or(false);
            if !ok_type {
                let s = if ty > 8 {
                    Status::BadArgument
                } else {
                    Status::NotFound
                };
                return Ok(finish(&mut c, "proxy_set_buffer_bytes", st(s)));
            }
            let Some(s) = h.stream.as_deref_mut() else {
                return Ok(st(Status::NotFound));
            };
            let (start, size) = (start as u32 as usize, size as u32 as usize);
            // Envoy `Buffer::copyFrom`: start 0 drains `size` and prepends; start ≥ len appends.
            if start == 0 {
                let n = size.min(s.buffer.len());
                s.buffer.drain(..n);
                s.buffer.splice(0..0, data);
            } else if start >= s.buffer.len() {
                s.buffer.extend_from_slice(&data);
            } else {
                return Ok(finish(
                    &mut c,
                    "proxy_set_buffer_bytes",
                    st(Status::BadArgument),
                ));
            }
            Ok(0)
        },
    )?;

    // ---- header maps ----
    l.func_wrap(
        "env",
        "proxy_get_header_map_pairs",
        |mut c: Cx<'_>, ty: i32, ret_ptr: i32, ret_len: i32| -> Res {
            guard!(c, "proxy_get_header_map_pairs");
            let h = c.data_mut();
            let mut scratch = std::mem::take(&mut h.scratch);
            match map_ref(h, ty, false) {
                Ok(r) => pairs_bytes(map_of(h, &r), &mut scratch),
                // Envoy: an absent map reads as empty.
                Err(_) => scratch.clear(),
            }
            h.scratch = scratch;
            copy_out_scratch(&mut c, ret_ptr, ret_len)
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_set_header_map_pairs",
        |mut c: Cx<'_>, ty: i32, ptr: i32, len: i32| -> Res {
            guard!(c, "proxy_set_header_map_pairs");
            let Some(bytes) = read(&mut c, ptr, len) else {
                return Ok(INVALID);
            };
            let h = c.data_mut();
            match map_ref(h, ty, true) {
                Ok(MapRef::Stream(i)) => {
                    if let Some(m) = stream_map_mut(h, i) {
                        *m = to_pairs(&bytes);
                    }
                    Ok(0)
                }
                _ => Ok(finish(
                    &mut c,
                    "proxy_set_header_map_pairs",
                    st(Status::BadArgument),
                )),
            }
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_get_header_map_size",
        |mut c: Cx<'_>, ty: i32, ret: i32| -> Res {
            guard!(c, "proxy_get_header_map_size");
            let size = match map_ref(c.data(), ty, false) {
                Ok(r) => crate::properties::header_bytes(map_of(c.data(), &r)),
                Err(s) => return Ok(st(s)),
            };
            Ok(if write_u32(&mut c, ret, size as u32) {
                0
            } else {
                INVALID
            })
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_get_header_map_value",
        |mut c: Cx<'_>, ty: i32, kp: i32, kl: i32, ret_ptr: i32, ret_len: i32| -> Res {
            guard!(c, "proxy_get_header_map_value");
            let r = with_bytes(&mut c, kp, kl, |key, h| {
                let r = map_ref(h, ty, false)?;
                let mut scratch = std::mem::take(&mut h.scratch);
                let map = map_of(h, &r);
                // The name lower-cased (Envoy `LowerCaseString`); compared in place when it is
                // UTF-8, through the lossy copy otherwise.
                let hit = if key.is_ascii() || std::str::from_utf8(key).is_ok() {
                    map.iter().find(|(k, _)| is_lowered(k, key))
                } else {
                    let key = String::from_utf8_lossy(key).to_ascii_lowercase();
                    map.iter().find(|(k, _)| *k == key)
                };
                scratch.clear();
                let found = hit.map(|(_, v)| {
                    scratch.extend_from_slice(v.as_bytes());
                });
                h.scratch = scratch;
                found.ok_or(Status::NotFound)
            });
            match r {
                None => Ok(INVALID),
                Some(Ok(())) => copy_out_scratch(&mut c, ret_ptr, ret_len),
                Some(Err(s)) => Ok(finish(&mut c, "proxy_get_header_map_value", st(s))),
            }
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_add_header_map_value",
        |mut c: Cx<'_>, ty: i32, kp: i32, kl: i32, vp: i32, vl: i32| -> Res {
            guard!(c, "proxy_add_header_map_value");
            set_header(
                &mut c,
                "proxy_add_header_map_value",
                ty,
                kp,
                kl,
                Some((vp, vl)),
                false,
            )
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_replace_header_map_value",
        |mut c: Cx<'_>, ty: i32, kp: i32, kl: i32, vp: i32, vl: i32| -> Res {
            guard!(c, "proxy_replace_header_map_value");
            set_header(
                &mut c,
                "proxy_replace_header_map_value",
                ty,
                kp,
                kl,
                Some((vp, vl)),
                true,
            )
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_remove_header_map_value",
        |mut c: Cx<'_>, ty: i32, kp: i32, kl: i32| -> Res {
            guard!(c, "proxy_remove_header_map_value");
            set_header(
                &mut c,
                "proxy_remove_header_map_value",
                ty,
                kp,
                kl,
                None,
                true,
            )
        },
    )?;

    // ---- properties ----
    l.func_wrap(
        "env",
        "proxy_get_property",
        |mut c: Cx<'_>, pp: i32, pl: i32, ret_ptr: i32, ret_len: i32| -> Res {
            guard!(c, "proxy_get_property");
            let r = with_bytes(&mut c, pp, pl, |path, h| {
                let mut scratch = std::mem::take(&mut h.scratch);
                let r = match h.world.as_deref() {
                    Some(w) => {
                        let (root, stream) = h.effective_view();
                        let view = PropertyView {
                            node: &w.local_node,
                            root: RootRef::Lazy(&h.roots, root),
                            stream,
                        };
                        get_property(&view, path, &mut scratch)
                    }
                    None => Err(Status::InternalFailure),
                };
                h.scratch = scratch;
                r
            });
            match r {
                None => Ok(INVALID),
                Some(Ok(())) => copy_out_scratch(&mut c, ret_ptr, ret_len),
                Some(Err(s)) => Ok(finish(&mut c, "proxy_get_property", st(s))),
            }
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_set_property",
        |mut c: Cx<'_>, pp: i32, pl: i32, vp: i32, vl: i32| -> Res {
            guard!(c, "proxy_set_property");
            // Path and value read in place (either out of bounds: INVALID_MEMORY_ACCESS).
            let r = with_two(&mut c, (vp, vl), (pp, pl), |value, path, h| {
                // Needs stream info: a root context has none (Envoy: NOT_FOUND).
                if !h.effective_is_stream() {
                    return Status::NotFound;
                }
                match h.stream.as_deref_mut() {
                    Some(s) => {
                        if s.filter_state.set_wasm(path, value) {
                            Status::Ok
                        } else {
                            Status::BadArgument
                        }
                    }
                    None => Status::NotFound,
                }
            });
            match r {
                None => Ok(INVALID),
                Some(s) => Ok(finish(&mut c, "proxy_set_property", st(s))),
            }
        },
    )?;

    // ---- stream control (deferred until the callback returns) ----
    l.func_wrap(
        "env",
        "proxy_continue_stream",
        |mut c: Cx<'_>, ty: i32| -> Res {
            guard!(c, "proxy_continue_stream");
            if !(0..=1).contains(&ty) {
                return Ok(finish(
                    &mut c,
                    "proxy_continue_stream",
                    st(Status::BadArgument),
                ));
            }
            if c.data().effective_is_stream() {
                if let Some(s) = c.data_mut().stream.as_deref_mut() {
                    s.deferred.push(Deferred::Continue(ty));
                }
            }
            Ok(0)
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_close_stream",
        |mut c: Cx<'_>, ty: i32| -> Res {
            guard!(c, "proxy_close_stream");
            if !(0..=3).contains(&ty) {
                return Ok(finish(
                    &mut c,
                    "proxy_close_stream",
                    st(Status::BadArgument),
                ));
            }
            if c.data().effective_is_stream() {
                if let Some(s) = c.data_mut().stream.as_deref_mut() {
                    s.deferred.push(Deferred::Close(ty));
                }
            }
            Ok(0)
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_send_local_response",
        |mut c: Cx<'_>,
         status: i32,
         dp: i32,
         dl: i32,
         bp: i32,
         bl: i32,
         hp: i32,
         hl: i32,
         grpc: i32|
         -> Res {
            guard!(c, "proxy_send_local_response");
            let (Some(details), Some(body), Some(hdrs)) = (
                read(&mut c, dp, dl),
                read(&mut c, bp, bl),
                read(&mut c, hp, hl),
            ) else {
                return Ok(INVALID);
            };
            let plugin = c.data().log_source();
            if c.data().effective_is_stream() {
                if let Some(s) = c.data_mut().stream.as_deref_mut() {
                    s.deferred.push(Deferred::LocalReply(LocalReply {
                        status: status as u32,
                        details: lossy(&details),
                        body,
                        headers: to_pairs(&hdrs),
                        grpc_status: (0..=16).contains(&grpc).then_some(grpc),
                        plugin,
                    }));
                }
            }
            Ok(0)
        },
    )?;

    // ---- callouts ----
    l.func_wrap(
        "env",
        "proxy_http_call",
        |mut c: Cx<'_>,
         up: i32,
         ul: i32,
         hp: i32,
         hl: i32,
         bp: i32,
         bl: i32,
         tp: i32,
         tl: i32,
         _timeout: i32,
         ret: i32|
         -> Res {
            guard!(c, "proxy_http_call");
            let (Some(cluster), Some(hdrs), Some(_body), Some(_trl)) = (
                read(&mut c, up, ul),
                read(&mut c, hp, hl),
                read(&mut c, bp, bl),
                read(&mut c, tp, tl),
            ) else {
                return Ok(INVALID);
            };
            let cluster = lossy(&cluster);
            let hdrs = to_pairs(&hdrs);
            let has = |n: &str| hdrs.iter().any(|(k, v)| k == n && !v.is_empty());
            let h = c.data_mut();
            let Some(w) = h.world.as_deref_mut() else {
                return Ok(st(Status::InternalFailure));
            };
            let known = match &w.http_clusters {
                Some(list) => list.contains(&cluster),
                None => !cluster.is_empty(),
            };
            if !known || !has(":method") || !has(":path") || !has(":authority") {
                return Ok(finish(&mut c, "proxy_http_call", st(Status::BadArgument)));
            }
            let script = w
                .http_scripts
                .get_mut(&cluster)
                .and_then(|q| q.pop_front())
                .or_else(|| w.http_scripts.get_mut("").and_then(|q| q.pop_front()))
                .unwrap_or(HttpCallScript::Fail);
            // Tokens are per VM and type-tagged like metric ids (cpp-host `nextHttpCallId`).
            h.next_http_token += 4;
            let token = h.next_http_token;
            // The call belongs to the root context (cpp-host `http_call` uses `root_context()`).
            let root = h.contexts.get(&h.effective_ctx).copied().unwrap_or(0);
            h.http_calls.push(PendingHttpCall {
                token,
                root,
                script,
            });
            Ok(if write_u32(&mut c, ret, token) {
                0
            } else {
                INVALID
            })
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_grpc_call",
        |mut c: Cx<'_>,
         _a: i32,
         _b: i32,
         _p3: i32,
         _d: i32,
         _e: i32,
         _f: i32,
         _g: i32,
         _h: i32,
         _i: i32,
         _j: i32,
         _k: i32,
         _l: i32|
         -> Res {
            guard!(c, "proxy_grpc_call");
            // No gRPC upstreams in this model: Envoy's "send failed".
            Ok(finish(
                &mut c,
                "proxy_grpc_call",
                st(Status::InternalFailure),
            ))
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_grpc_stream",
        |mut c: Cx<'_>,
         _a: i32,
         _b: i32,
         _p3: i32,
         _d: i32,
         _e: i32,
         _f: i32,
         _g: i32,
         _h: i32,
         _i: i32|
         -> Res {
            guard!(c, "proxy_grpc_stream");
            Ok(finish(
                &mut c,
                "proxy_grpc_stream",
                st(Status::InternalFailure),
            ))
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_grpc_send",
        |mut c: Cx<'_>, _t: i32, _p: i32, _l: i32, _e: i32| -> Res {
            guard!(c, "proxy_grpc_send");
            Ok(finish(&mut c, "proxy_grpc_send", st(Status::NotFound)))
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_grpc_cancel",
        |mut c: Cx<'_>, _t: i32| -> Res {
            guard!(c, "proxy_grpc_cancel");
            Ok(finish(&mut c, "proxy_grpc_cancel", st(Status::NotFound)))
        },
    )?;
    l.func_wrap("env", "proxy_grpc_close", |mut c: Cx<'_>, _t: i32| -> Res {
        guard!(c, "proxy_grpc_close");
        Ok(finish(&mut c, "proxy_grpc_close", st(Status::NotFound)))
    })?;
    l.func_wrap(
        "env",
        "proxy_get_status",
        |mut c: Cx<'_>, code_ptr: i32, mp: i32, ml: i32| -> Res {
            guard!(c, "proxy_get_status");
            let (code, msg) = c.data().last_status.clone();
            if !write_u32(&mut c, code_ptr, code) {
                return Ok(INVALID);
            }
            copy_out(&mut c, msg.as_bytes(), mp, ml)
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_set_effective_context",
        |mut c: Cx<'_>, id: i32| -> Res {
            guard!(c, "proxy_set_effective_context");
            let h = c.data_mut();
            if h.contexts.contains_key(&(id as u32)) {
                h.effective_ctx = id as u32;
                Ok(0)
            } else {
                Ok(finish(
                    &mut c,
                    "proxy_set_effective_context",
                    st(Status::BadArgument),
                ))
            }
        },
    )?;
    l.func_wrap("env", "proxy_done", |mut c: Cx<'_>| -> Res {
        guard!(c, "proxy_done");
        // Only a root context pending shutdown may call it; the harness never shuts down roots.
        c.data_mut().done_called = true;
        Ok(finish(&mut c, "proxy_done", st(Status::NotFound)))
    })?;

    // ---- metrics ----
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

    // ---- shared data and queues (per vm_id, cpp-host `SharedData` / `SharedQueue`) ----
    l.func_wrap(
        "env",
        "proxy_get_shared_data",
        |mut c: Cx<'_>, kp: i32, kl: i32, ret_ptr: i32, ret_len: i32, ret_cas: i32| -> Res {
            guard!(c, "proxy_get_shared_data");
            let Some(key) = read(&mut c, kp, kl) else {
                return Ok(INVALID);
            };
            let h = c.data();
            let found = h
                .world
                .as_deref()
                .and_then(|w| w.shared.data.get(&(h.vm_id.clone(), lossy(&key))))
                .cloned();
            match found {
                None => Ok(finish(
                    &mut c,
                    "proxy_get_shared_data",
                    st(Status::NotFound),
                )),
                Some((value, cas)) => {
                    let r = copy_out(&mut c, &value, ret_ptr, ret_len)?;
                    if r != 0 {
                        return Ok(r);
                    }
                    Ok(if write_u32(&mut c, ret_cas, cas) {
                        0
                    } else {
                        INVALID
                    })
                }
            }
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_set_shared_data",
        |mut c: Cx<'_>, kp: i32, kl: i32, vp: i32, vl: i32, cas: i32| -> Res {
            guard!(c, "proxy_set_shared_data");
            let (Some(key), Some(value)) = (read(&mut c, kp, kl), read(&mut c, vp, vl)) else {
                return Ok(INVALID);
            };
            let h = c.data_mut();
            let vm_id = h.vm_id.clone();
            let Some(w) = h.world.as_deref_mut() else {
                return Ok(st(Status::InternalFailure));
            };
            let key = (vm_id, lossy(&key));
            let cas = cas as u32;
            if let Some((_, stored)) = w.shared.data.get(&key) {
                if cas != 0 && cas != *stored {
                    return Ok(finish(
                        &mut c,
                        "proxy_set_shared_data",
                        st(Status::CasMismatch),
                    ));
                }
            }
            w.shared.next_cas = w.shared.next_cas.wrapping_add(1).max(1);
            let next = w.shared.next_cas;
            w.shared.data.insert(key, (value, next));
            Ok(0)
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_register_shared_queue",
        |mut c: Cx<'_>, np: i32, nl: i32, ret: i32| -> Res {
            guard!(c, "proxy_register_shared_queue");
            let Some(name) = read(&mut c, np, nl) else {
                return Ok(INVALID);
            };
            let name = lossy(&name);
            let h = c.data_mut();
            let owner = (
                h.vm_index,
                h.contexts.get(&h.effective_ctx).copied().unwrap_or(0),
            );
            let vm_id = h.vm_id.clone();
            let Some(w) = h.world.as_deref_mut() else {
                return Ok(st(Status::InternalFailure));
            };
            let id = match w
                .shared
                .queues
                .iter()
                .position(|q| q.vm_id == vm_id && q.name == name)
            {
                Some(i) => {
                    w.shared.queues[i].owner = owner;
                    i
                }
                None => {
                    w.shared.queues.push(SharedQueue {
                        vm_id,
                        name,
                        owner,
                        items: Default::default(),
                    });
                    w.shared.queues.len() - 1
                }
            };
            Ok(if write_u32(&mut c, ret, id as u32 + 1) {
                0
            } else {
                INVALID
            })
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_resolve_shared_queue",
        |mut c: Cx<'_>, vp: i32, vl: i32, np: i32, nl: i32, ret: i32| -> Res {
            guard!(c, "proxy_resolve_shared_queue");
            let (Some(vm), Some(name)) = (read(&mut c, vp, vl), read(&mut c, np, nl)) else {
                return Ok(INVALID);
            };
            let (vm, name) = (lossy(&vm), lossy(&name));
            let found = c.data().world.as_deref().and_then(|w| {
                w.shared
                    .queues
                    .iter()
                    .position(|q| q.vm_id == vm && q.name == name)
            });
            match found {
                Some(i) => Ok(if write_u32(&mut c, ret, i as u32 + 1) {
                    0
                } else {
                    INVALID
                }),
                None => Ok(finish(
                    &mut c,
                    "proxy_resolve_shared_queue",
                    st(Status::NotFound),
                )),
            }
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_enqueue_shared_queue",
        |mut c: Cx<'_>, id: i32, vp: i32, vl: i32| -> Res {
            guard!(c, "proxy_enqueue_shared_queue");
            let Some(value) = read(&mut c, vp, vl) else {
                return Ok(INVALID);
            };
            let h = c.data_mut();
            let Some(w) = h.world.as_deref_mut() else {
                return Ok(st(Status::InternalFailure));
            };
            let idx = (id as u32 as usize).wrapping_sub(1);
            match w.shared.queues.get_mut(idx) {
                Some(q) => {
                    q.items.push_back(value);
                    w.shared.ready.push(id as u32);
                    Ok(0)
                }
                None => Ok(finish(
                    &mut c,
                    "proxy_enqueue_shared_queue",
                    st(Status::NotFound),
                )),
            }
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_dequeue_shared_queue",
        |mut c: Cx<'_>, id: i32, ret_ptr: i32, ret_len: i32| -> Res {
            guard!(c, "proxy_dequeue_shared_queue");
            let h = c.data_mut();
            let Some(w) = h.world.as_deref_mut() else {
                return Ok(st(Status::InternalFailure));
            };
            let idx = (id as u32 as usize).wrapping_sub(1);
            match w.shared.queues.get_mut(idx) {
                None => Ok(finish(
                    &mut c,
                    "proxy_dequeue_shared_queue",
                    st(Status::NotFound),
                )),
                Some(q) => match q.items.pop_front() {
                    None => Ok(st(Status::Empty)),
                    Some(v) => copy_out(&mut c, &v, ret_ptr, ret_len),
                },
            }
        },
    )?;

    // ---- foreign functions ----
    l.func_wrap(
        "env",
        "proxy_call_foreign_function",
        |mut c: Cx<'_>, np: i32, nl: i32, ap: i32, al: i32, ret_ptr: i32, ret_len: i32| -> Res {
            guard!(c, "proxy_call_foreign_function");
            let (Some(name), Some(_args)) = (read(&mut c, np, nl), read(&mut c, ap, al)) else {
                return Ok(INVALID);
            };
            let name = lossy(&name);
            // Envoy's `declare_property` accepts any declaration (filter state created on first
            // set); scripted functions answer fixed bytes; everything else is unknown.
            if name == "declare_property" {
                return copy_out(&mut c, &[], ret_ptr, ret_len);
            }
            let scripted = c
                .data()
                .world
                .as_deref()
                .and_then(|w| w.foreign_functions.get(&name))
                .cloned();
            match scripted {
                Some(v) => copy_out(&mut c, &v, ret_ptr, ret_len),
                None => Ok(finish(
                    &mut c,
                    "proxy_call_foreign_function",
                    st(Status::NotFound),
                )),
            }
        },
    )?;

    // ---- emscripten leftovers cpp-host registers for every module ----
    l.func_wrap(
        "env",
        "pthread_equal",
        |_c: Cx<'_>, a: i32, b: i32| -> i32 { (a == b) as i32 },
    )?;
    l.func_wrap(
        "env",
        "emscripten_notify_memory_growth",
        |_c: Cx<'_>, _a: i32| {},
    )?;
    Ok(())
}

/// The buffer a `proxy_buffer_type_t` names in the current callback.
fn buffer(h: &VmHost, ty: i32) -> Result<&[u8], Status> {
    match ty {
        0..=3 => match h.stream_for_effective() {
            Some(s) if s.buffer_type == Some(ty) => Ok(&s.buffer),
            _ => Err(Status::NotFound),
        },
        4 if h.phase == Phase::HttpCallResponse => h
            .http_call_response
            .as_ref()
            .map(|r| r.body.as_slice())
            .ok_or(Status::NotFound),
        6 => Ok(&h.vm_configuration),
        7 if h.phase == Phase::Configure => h
            .contexts
            .get(&h.current_ctx)
            .and_then(|r| h.roots.get(r))
            .map(|r| r.plugin_configuration.as_slice())
            .ok_or(Status::NotFound),
        8 if h.phase == Phase::Foreign => Ok(&h.call_data),
        4..=8 => Err(Status::NotFound),
        _ => Err(Status::BadArgument),
    }
}

fn set_header(
    c: &mut Cx<'_>,
    name: &'static str,
    ty: i32,
    kp: i32,
    kl: i32,
    value: Option<(i32, i32)>,
    replace: bool,
) -> Res {
    let Some(key) = read(c, kp, kl) else {
        return Ok(INVALID);
    };
    let value = match value {
        Some((vp, vl)) => match read(c, vp, vl) {
            Some(v) => Some(lossy(&v)),
            None => return Ok(INVALID),
        },
        None => None,
    };
    let key = lossy(&key).to_ascii_lowercase();
    let h = c.data_mut();
    let Ok(MapRef::Stream(i)) = map_ref(h, ty, true) else {
        return Ok(finish(c, name, st(Status::BadArgument)));
    };
    let Some(m) = stream_map_mut(h, i) else {
        return Ok(st(Status::BadArgument));
    };
    match (value, replace) {
        // add: `addCopy` appends a duplicate.
        (Some(v), false) => m.push((key, v)),
        // replace: `setCopy` replaces the first and drops the rest, or adds.
        (Some(v), true) => match m.iter().position(|(k, _)| *k == key) {
            Some(pos) => {
                m[pos].1 = v;
                let mut idx = 0;
                m.retain(|(k, _)| {
                    let keep = idx <= pos || *k != key;
                    idx += 1;
                    keep
                });
            }
            None => m.push((key, v)),
        },
        (None, _) => m.retain(|(k, _)| *k != key),
    }
    Ok(0)
}

//! Header maps: `proxy_{get,set}_header_map_pairs`, `proxy_get_header_map_size`,
//! `proxy_{get,add,replace,remove}_header_map_value` (Envoy `context.cc` `getHeaderMap*`,
//! `addHeaderMapValue`, `replaceHeaderMapValue`, `removeHeaderMapValue`; cpp-host `src/exports.cc`
//! and `src/pairs_util.cc`; abi-host §1.5).

use wasmtime::Linker;

use super::{lossy, Res};
use crate::abi::Status;
use crate::host_calls::memory::{copy_out_scratch, read, with_bytes, write_u32, INVALID};
use crate::host_calls::{enter, finish, st, Cx};
use crate::host_state::{Phase, VmHost, MAP_REQ_TRAILERS};
use crate::properties::is_lowered;

/// Decodes a pairs buffer passed by the module (cpp-host `toPairs`: > 1 MiB, > 1024 pairs or
/// malformed → empty); keys are lower-cased like Envoy's `LowerCaseString`.
pub(super) fn to_pairs(bytes: &[u8]) -> Vec<(String, String)> {
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

pub(super) fn register(l: &mut Linker<VmHost>) -> wasmtime::Result<()> {
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
    Ok(())
}

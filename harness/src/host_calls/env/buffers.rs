//! Buffers: `proxy_get_buffer_bytes`, `proxy_get_buffer_status`, `proxy_set_buffer_bytes` (Envoy
//! `context.cc` `getBuffer`, body edits as `Buffer::copyFrom`; cpp-host `src/exports.cc`; abi-host
//! §1.5).

use wasmtime::Linker;

use super::Res;
use crate::abi::Status;
use crate::host_calls::memory::{copy_out_scratch, read, write_u32, INVALID};
use crate::host_calls::{enter, finish, st, Cx};
use crate::host_state::{Phase, VmHost};

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

pub(super) fn register(l: &mut Linker<VmHost>) -> wasmtime::Result<()> {
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
    Ok(())
}

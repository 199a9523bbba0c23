//! Properties: `proxy_get_property`, `proxy_set_property` (Envoy `context.cc` `getProperty`,
//! `setProperty` → filter state `wasm.<path>`; cpp-host `src/exports.cc`; abi-host §1.5, §2).

use wasmtime::Linker;

use super::Res;
use crate::abi::Status;
use crate::host_calls::memory::{copy_out_scratch, with_bytes, with_two, INVALID};
use crate::host_calls::{enter, finish, st, Cx};
use crate::host_state::VmHost;
use crate::properties::get_property;

pub(super) fn register(l: &mut Linker<VmHost>) -> wasmtime::Result<()> {
    l.func_wrap(
        "env",
        "proxy_get_property",
        |mut c: Cx<'_>, pp: i32, pl: i32, ret_ptr: i32, ret_len: i32| -> Res {
            guard!(c, "proxy_get_property");
            let r = with_bytes(&mut c, pp, pl, |path, h| match h.property_view() {
                (Some(view), out) => get_property(&view, path, out),
                (None, _) => Err(Status::InternalFailure),
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
    Ok(())
}

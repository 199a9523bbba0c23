//! Foreign functions: `proxy_call_foreign_function` (Envoy
//! `source/extensions/common/wasm/foreign.cc`; cpp-host `src/exports.cc`; abi-host §1.5).

use wasmtime::Linker;

use super::{lossy, Res};
use crate::abi::Status;
use crate::host_calls::memory::{copy_out, read, INVALID};
use crate::host_calls::{enter, finish, st, Cx};
use crate::host_state::VmHost;

pub(super) fn register(l: &mut Linker<VmHost>) -> wasmtime::Result<()> {
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
    Ok(())
}

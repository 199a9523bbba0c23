//! Context switching and shutdown: `proxy_set_effective_context`, `proxy_done` (Envoy
//! `context.cc`; cpp-host `src/exports.cc`, `src/wasm.cc` `startShutdown`; abi-host §1.5).

use wasmtime::Linker;

use super::Res;
use crate::abi::Status;
use crate::host_calls::{enter, finish, st, Cx};
use crate::host_state::VmHost;

pub(super) fn register(l: &mut Linker<VmHost>) -> wasmtime::Result<()> {
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
    Ok(())
}

//! `env.proxy_*`: Envoy's semantics per host call (Envoy `source/extensions/common/wasm/context.cc`
//! and cpp-host `src/exports.cc`, as tabulated in abi-host §1.5), one module per ABI area. Each
//! module registers its own imports; `register` calls them in the ABI's order.

use wasmtime::Linker;

use super::Cx;
use crate::host_state::VmHost;

type Res = wasmtime::Result<i32>;

macro_rules! guard {
    ($c:expr, $name:literal) => {
        if let Some(s) = enter(&mut $c, $name, concat!("env.", $name))? {
            return Ok(s);
        }
    };
}

mod buffers;
mod callouts;
mod context;
mod foreign;
mod header_maps;
mod log_time;
mod metrics;
mod properties;
mod shared;
mod stream;

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub(crate) fn register(l: &mut Linker<VmHost>) -> wasmtime::Result<()> {
    log_time::register(l)?;
    buffers::register(l)?;
    header_maps::register(l)?;
    properties::register(l)?;
    stream::register(l)?;
    callouts::register(l)?;
    context::register(l)?;
    metrics::register(l)?;
    shared::register(l)?;
    foreign::register(l)?;

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

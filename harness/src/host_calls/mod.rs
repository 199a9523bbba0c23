//! The Proxy-Wasm ABI 0.2.1 imports, registered the way proxy-wasm-cpp-host's
//! `WasmBase::registerCallbacks` does for a 0.2.x module: every `env.proxy_*` host function plus
//! `env.pthread_equal` / `env.emscripten_notify_memory_growth`, and the profile's WASI functions
//! under both `wasi_unstable` and `wasi_snapshot_preview1`.
//!
//! Every call returns Envoy's status (abi-host §1.5). A status the Rust SDK 0.2.5 would panic on
//! is logged as a harness warning before the module sees it.

mod env;
mod memory;
mod wasi;

use wasmtime::{Caller, Engine, Linker};

use crate::abi::{LogLevel, Status};
use crate::host_state::{Restriction, VmHost};
use crate::profile::{Profile, ALLOC_ALLOWED, START_ALLOWED};

pub(crate) type Cx<'a> = Caller<'a, VmHost>;

/// The error a host call returns to trap the module (cpp-host `trap("restricted_callback")`).
#[derive(Debug)]
pub struct RestrictedCallback(pub &'static str);

impl std::fmt::Display for RestrictedCallback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "restricted_callback: {} is not allowed here", self.0)
    }
}

impl std::error::Error for RestrictedCallback {}

/// Builds the linker for a profile.
pub fn linker(engine: &Engine, profile: &Profile) -> wasmtime::Result<Linker<VmHost>> {
    let mut linker = Linker::new(engine);
    env::register(&mut linker)?;
    for module in ["wasi_unstable", "wasi_snapshot_preview1"] {
        wasi::register(&mut linker, module, profile.wasi_functions())?;
    }
    Ok(linker)
}

/// Entry check of every host call: the start/allocator restrictions, then fault injection.
/// `Ok(Some(status))` short-circuits with an injected status. The common case (no restriction,
/// no faults configured) is inlined into each host call.
#[inline(always)]
pub(crate) fn enter(
    c: &mut Cx<'_>,
    name: &'static str,
    qualified: &'static str,
) -> wasmtime::Result<Option<i32>> {
    let h = c.data();
    if h.restriction == Restriction::None && h.world.as_deref().is_none_or(|w| w.faults.is_empty())
    {
        return Ok(None);
    }
    enter_checked(c, name, qualified)
}

#[inline(never)]
fn enter_checked(
    c: &mut Cx<'_>,
    name: &'static str,
    qualified: &'static str,
) -> wasmtime::Result<Option<i32>> {
    let h = c.data();
    match h.restriction {
        Restriction::None => {}
        Restriction::Start => {
            if !START_ALLOWED.contains(&qualified) && !START_ALLOWED.contains(&name) {
                return Err(wasmtime::Error::new(RestrictedCallback(name)));
            }
        }
        Restriction::Alloc => {
            if !ALLOC_ALLOWED.contains(&qualified) && !ALLOC_ALLOWED.contains(&name) {
                return Err(wasmtime::Error::new(RestrictedCallback(name)));
            }
        }
    }
    let Some(world) = h.world.as_deref() else {
        return Ok(None);
    };
    if world.faults.is_empty() {
        return Ok(None);
    }
    let Some(&st) = world.faults.get(name) else {
        return Ok(None);
    };
    Ok(Some(finish(c, name, st)))
}

/// The statuses the Rust SDK 0.2.5 accepts from each host call (`sdk: src/hostcalls.rs`); any
/// other status makes it panic.
#[inline]
pub fn sdk_accepts(name: &str, status: i32) -> bool {
    use Status::*;
    let ok: &[Status] = match name {
        "proxy_call_foreign_function" => &[
            Ok,
            NotFound,
            BadArgument,
            SerializationFailure,
            InternalFailure,
        ],
        "proxy_dequeue_shared_queue" => &[Ok, Empty, NotFound],
        "proxy_enqueue_shared_queue"
        | "proxy_get_buffer_bytes"
        | "proxy_get_header_map_value"
        | "proxy_get_shared_data"
        | "proxy_resolve_shared_queue"
        | "proxy_record_metric"
        | "proxy_grpc_cancel"
        | "proxy_grpc_close" => &[Ok, NotFound],
        "proxy_get_metric" | "proxy_increment_metric" | "proxy_grpc_send" => {
            &[Ok, NotFound, BadArgument]
        }
        "proxy_get_property" => &[Ok, NotFound, SerializationFailure, InternalFailure],
        "proxy_grpc_call" | "proxy_grpc_stream" => &[Ok, ParseFailure, InternalFailure],
        "proxy_http_call" => &[Ok, BadArgument, InternalFailure],
        "proxy_set_effective_context" => &[Ok, BadArgument],
        "proxy_set_shared_data" => &[Ok, CasMismatch],
        // Not wrapped by the SDK: whatever the module does with it is its own business.
        "proxy_get_buffer_status" | "proxy_get_header_map_size" => return true,
        _ => &[Ok],
    };
    ok.iter().any(|s| s.code() == status)
}

/// Records a warning when the Rust SDK would panic on `status`, and returns it. Inlined so the
/// check folds for the constant `name` of each host call (NOT_FOUND answers are frequent).
#[inline(always)]
pub(crate) fn finish(c: &mut Cx<'_>, name: &'static str, status: i32) -> i32 {
    if status != 0 && name.starts_with("proxy_") && !sdk_accepts(name, status) {
        warn_sdk_panic(c, name, status);
    }
    status
}

#[cold]
fn warn_sdk_panic(c: &mut Cx<'_>, name: &'static str, status: i32) {
    let plugin = c.data().log_source();
    if let Some(w) = c.data_mut().world() {
        w.harness_log(
            LogLevel::Warn,
            format!(
                "{plugin}: {name} returned status {status}, which the Rust SDK 0.2.5 does not accept (it panics)"
            ),
        );
    }
}

pub(crate) fn st(s: Status) -> i32 {
    s.code()
}

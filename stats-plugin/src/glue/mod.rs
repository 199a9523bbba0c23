//! The Proxy-Wasm ABI 0.2.1 binding (wasm32 only).
//!
//! The plugin exports the ABI callbacks itself instead of using the Rust SDK's dispatcher: the
//! same module serves Envoy's HTTP filter and its network (TCP) filter, and the SDK must decide
//! at `proxy_on_context_create` whether a stream is an `HttpContext` or a `StreamContext` —
//! which the root cannot know then (Istio's C++ `Context` handles both). The SDK dispatcher also
//! panics (= traps, poisoning the VM) on unknown context ids. Here one stream type serves both
//! and every unexpected call is ignored.
//!
//! Metrics are defined in `proxy_on_configure`, never in `_initialize` (restricted on Envoy
//! ≥ 1.24).

mod host;

use crate::plugin::{StatsPlugin, Stream};
use crate::Direction;
use host::{WasmHost, WasmMetrics};
use proxy_attributes::contexts::ContextTable;
use proxy_attributes::host::envoy::calls::{self as ffi, BUFFER_PLUGIN_CONFIGURATION};
use proxy_attributes::host::Host;
use std::cell::RefCell;

const ACTION_CONTINUE: u32 = 0;

struct Root {
    plugin: StatsPlugin,
}

struct StreamCtx {
    root: u32,
    stream: Stream,
    /// In the root's request queue: reported on every tick until `on_log`.
    queued: bool,
}

#[derive(Default)]
struct Dispatcher {
    roots: ContextTable<Root>,
    streams: ContextTable<StreamCtx>,
}

thread_local! {
    static DISPATCHER: RefCell<Dispatcher> = RefCell::new(Dispatcher::default());
}

/// Runs `f` on the dispatcher (see `proxy_attributes::host::envoy::with_state`).
fn with<R: Default>(f: impl FnOnce(&mut Dispatcher) -> R) -> R {
    proxy_attributes::host::envoy::with_state(&DISPATCHER, f)
}

/// `stats_outbound` → outbound, `stats_inbound` → inbound (`plugin.h:393-399`). Istio registers
/// no other root id; anything else is logged and treated as outbound.
fn direction_from_root_id(root_id: &str) -> Direction {
    match root_id {
        "stats_inbound" => Direction::Inbound,
        "stats_outbound" => Direction::Outbound,
        other => {
            log::warn!(
                "istio.stats: unknown root_id {other:?} (expected stats_outbound or stats_inbound); reporting as outbound (reporter=source)"
            );
            Direction::Outbound
        }
    }
}

// `_initialize`, the ABI marker and `malloc`.
proxy_attributes::envoy_module_exports!();

#[no_mangle]
pub extern "C" fn proxy_on_context_create(context_id: u32, parent_id: u32) {
    with(|d| {
        if parent_id == 0 {
            d.roots.insert(
                context_id,
                Root {
                    plugin: StatsPlugin::new(Direction::Outbound),
                },
            );
        } else if d.roots.contains_key(parent_id) {
            d.streams.insert_with(context_id, || StreamCtx {
                root: parent_id,
                stream: Stream::new(),
                queued: false,
            });
        }
    })
}

#[no_mangle]
pub extern "C" fn proxy_on_vm_start(_root_id: u32, _vm_configuration_size: usize) -> u32 {
    1
}

#[no_mangle]
pub extern "C" fn proxy_on_configure(root_id: u32, configuration_size: usize) -> u32 {
    with(|d| {
        let Some(root) = d.roots.get_mut(root_id) else {
            return;
        };
        let plugin_root_id = WasmHost
            .property(&["plugin_root_id"])
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        root.plugin
            .set_direction(direction_from_root_id(&plugin_root_id));
        let configuration =
            ffi::buffer(BUFFER_PLUGIN_CONFIGURATION, 0, configuration_size).unwrap_or_default();
        if let Some(period) = root
            .plugin
            .configure(&WasmHost, &mut WasmMetrics, &configuration)
        {
            ffi::set_tick_period_ms(period);
        }
    });
    // Istio: "onConfigure == false makes the proxy crash"; a bad config only disables reporting.
    1
}

#[no_mangle]
pub extern "C" fn proxy_on_tick(root_id: u32) {
    with(|d| {
        let Dispatcher { roots, streams } = d;
        let Some(root) = roots.get_mut(root_id) else {
            return;
        };
        let mut ids: Vec<u32> = streams
            .iter()
            .filter(|(_, s)| s.root == root_id && s.queued)
            .map(|(id, _)| id)
            .collect();
        ids.sort_unstable();
        for id in ids {
            let Some(s) = streams.get_mut(id) else {
                continue;
            };
            if !ffi::set_effective_context(id) {
                continue;
            }
            root.plugin
                .report(&WasmHost, &mut WasmMetrics, &mut s.stream, false);
        }
    })
}

#[no_mangle]
pub extern "C" fn proxy_on_request_headers(context_id: u32, _headers: usize, _eos: u32) -> u32 {
    with(|d| {
        let Dispatcher { roots, streams } = d;
        if let Some(s) = streams.get_mut(context_id) {
            if let Some(root) = roots.get(s.root) {
                root.plugin.on_request_headers(&WasmHost, &mut s.stream);
            }
        }
    });
    ACTION_CONTINUE
}

#[no_mangle]
pub extern "C" fn proxy_on_response_headers(context_id: u32, _headers: usize, _eos: u32) -> u32 {
    with(|d| {
        if let Some(s) = d.streams.get_mut(context_id) {
            s.queued = true;
        }
    });
    ACTION_CONTINUE
}

// No body, trailer or connection-close callbacks are exported: istio.stats has nothing to do
// in them, and the host skips a callback the module does not export (cpp-host
// `ContextBase::onRequestBody` etc.: `if (!wasm_->on_request_body_) return Continue`), which
// saves Envoy a VM entry per body chunk and per close.

#[no_mangle]
pub extern "C" fn proxy_on_new_connection(context_id: u32) -> u32 {
    with(|d| {
        let Dispatcher { roots, streams } = d;
        if let Some(s) = streams.get_mut(context_id) {
            if let Some(root) = roots.get(s.root) {
                root.plugin.on_new_connection(&mut s.stream);
                s.queued = true;
            }
        }
    });
    ACTION_CONTINUE
}

#[no_mangle]
pub extern "C" fn proxy_on_downstream_data(context_id: u32, size: usize, _eos: u32) -> u32 {
    with(|d| {
        let Dispatcher { roots, streams } = d;
        if let Some(s) = streams.get_mut(context_id) {
            if let Some(root) = roots.get(s.root) {
                root.plugin.on_downstream_data(&mut s.stream, size);
            }
        }
    });
    ACTION_CONTINUE
}

#[no_mangle]
pub extern "C" fn proxy_on_upstream_data(context_id: u32, size: usize, _eos: u32) -> u32 {
    with(|d| {
        let Dispatcher { roots, streams } = d;
        if let Some(s) = streams.get_mut(context_id) {
            if let Some(root) = roots.get(s.root) {
                root.plugin.on_upstream_data(&mut s.stream, size);
            }
        }
    });
    ACTION_CONTINUE
}

#[no_mangle]
pub extern "C" fn proxy_on_log(context_id: u32) {
    with(|d| {
        let Dispatcher { roots, streams } = d;
        if let Some(s) = streams.get_mut(context_id) {
            s.queued = false;
            if let Some(root) = roots.get_mut(s.root) {
                root.plugin
                    .on_log(&WasmHost, &mut WasmMetrics, &mut s.stream);
            }
        }
    })
}

// No `proxy_on_done`: Envoy enters the VM for it once per stream, and for a stream there is
// nothing to do. Without the export cpp-host answers true (`ContextBase::onDone`), and for a
// root `WasmBase::startShutdown` then calls `onDelete` at once, so Istio's root `onDone` warning
// (`plugin.cc`: requests still queued are dropped) is given there, at the same moment.
#[no_mangle]
pub extern "C" fn proxy_on_delete(context_id: u32) {
    with(|d| {
        if d.streams.discard(context_id) || !d.roots.discard(context_id) {
            return;
        }
        let mut queued = 0usize;
        d.streams.retain(|_, s| {
            if s.root != context_id {
                return true;
            }
            queued += usize::from(s.queued);
            false
        });
        if queued > 0 {
            log::warn!("istio.stats: request queue is not empty, dropping {queued} streams");
        }
    })
}

//! The Proxy-Wasm ABI 0.2.1 binding (wasm32 only, and never in test builds so wasm-bindgen-test
//! binaries carry no `env.proxy_*` imports).
//!
//! The module exports its callbacks itself, as `istio.stats` does, rather than through the Rust
//! SDK's dispatcher:
//! * the SDK dispatcher `panic!`s on an unknown or duplicate context id, and a panic is a trap
//!   that poisons the Envoy VM; here an unexpected call is ignored;
//! * it exports every callback, so Envoy enters the VM once per body chunk, trailer block and
//!   response-header block for nothing. Envoy skips a callback the module does not export
//!   (cpp-host `ContextBase::onRequestBody` and siblings: `if (!wasm_->on_request_body_)
//!   return Continue`), and attributegen acts only on request headers (`ON_REQUEST`) and in
//!   `onLog` (`AFTER_RESPONSE`, Istio `plugin.cc`);
//! * its per-callback dispatch (three context maps, `RefCell`s, a boxed trait object per
//!   stream) was about 2,000 wasm instructions per stream, a third of the module's work.
//!
//! Host calls go through the binding `istio.stats` uses too (`proxy_attributes::host::envoy`):
//! every status is handled and nothing panics.

use crate::config::Phase;
use crate::output::Output;
use crate::plugin::Plugin;
use proxy_attributes::contexts::ContextTable;
use proxy_attributes::host::envoy::calls::{self, BUFFER_PLUGIN_CONFIGURATION, METRIC_COUNTER};
use proxy_attributes::host::envoy::{self, EnvoyHost};
use std::cell::{Cell, RefCell};
use std::rc::Rc;

const ACTION_CONTINUE: u32 = 0;

/// Where generated attributes and error counts go: the shared ABI binding (reads go through
/// its `EnvoyHost` directly).
struct Envoy;

impl Output for Envoy {
    fn set_property(&self, path: &[&str], value: &[u8]) -> bool {
        envoy::set_property(path, value)
    }

    fn define_counter(&self, name: &str) -> Option<u32> {
        calls::define_metric(METRIC_COUNTER, name)
    }

    fn increment_counter(&self, id: u32, delta: i64) {
        calls::increment_metric(id, delta);
    }
}

/// Root and stream contexts by Envoy's context id. Istio registers attributegen's root without
/// a root_id (`plugin.h`), so every root id binds to the same plugin logic.
#[derive(Default)]
struct Dispatcher {
    roots: ContextTable<Rc<Plugin>>,
    /// A stream keeps the generators its root had when it was created: a reconfigure does not
    /// change streams already open.
    streams: ContextTable<Rc<Plugin>>,
}

thread_local! {
    static DISPATCHER: RefCell<Dispatcher> = RefCell::new(Dispatcher::default());
    /// Whether any configuration this VM has loaded has `ON_REQUEST` generators. Never reset
    /// (a stream may still hold an older configuration), so `false` proves there is nothing to
    /// run on request headers: the common case (the default phase is `AFTER_RESPONSE`) then
    /// returns without looking the stream up.
    static ON_REQUEST: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` on the dispatcher (see `proxy_attributes::host::envoy::with_state`).
fn with<R: Default>(f: impl FnOnce(&mut Dispatcher) -> R) -> R {
    proxy_attributes::host::envoy::with_state(&DISPATCHER, f)
}

/// Runs one phase's generators for a stream. The plugin is cloned out of the dispatcher first:
/// the generators call the host, and no borrow is held across those calls.
fn run(context_id: u32, phase: Phase) {
    let Some(plugin) = with(|d| d.streams.get(context_id).cloned()) else {
        return;
    };
    plugin.run(phase, &EnvoyHost, &Envoy);
}

// `_initialize`, the ABI marker and `malloc`.
proxy_attributes::envoy_module_exports!();

#[no_mangle]
pub extern "C" fn proxy_on_context_create(context_id: u32, parent_id: u32) {
    with(|d| {
        if parent_id == 0 {
            d.roots.insert(context_id, Rc::new(Plugin::default()));
        } else if let Some(plugin) = d.roots.get(parent_id) {
            d.streams.insert(context_id, Rc::clone(plugin));
        }
    })
}

#[no_mangle]
pub extern "C" fn proxy_on_vm_start(_root_id: u32, _vm_configuration_size: usize) -> u32 {
    1
}

#[no_mangle]
pub extern "C" fn proxy_on_configure(root_id: u32, configuration_size: usize) -> u32 {
    if !with(|d| d.roots.contains_key(root_id)) {
        return 1;
    }
    let config =
        calls::buffer(BUFFER_PLUGIN_CONFIGURATION, 0, configuration_size).unwrap_or_default();
    let mut plugin = Plugin::default();
    // Always true (Istio 1.17 semantics, see `Plugin::configure`): a bad configuration leaves
    // a no-op filter and a counted config error, never a rejected listener.
    let ok = plugin.configure(&config, &Envoy);
    if plugin.has_phase(Phase::OnRequest) {
        ON_REQUEST.with(|f| f.set(true));
    }
    with(|d| {
        if let Some(root) = d.roots.get_mut(root_id) {
            *root = Rc::new(plugin);
        }
    });
    u32::from(ok)
}

#[no_mangle]
pub extern "C" fn proxy_on_request_headers(context_id: u32, _headers: usize, _eos: u32) -> u32 {
    if ON_REQUEST.with(Cell::get) {
        run(context_id, Phase::OnRequest);
    }
    ACTION_CONTINUE
}

#[no_mangle]
pub extern "C" fn proxy_on_log(context_id: u32) {
    run(context_id, Phase::AfterResponse);
}

// No `proxy_on_done`: it would only answer true, and without the export cpp-host answers true
// itself (`ContextBase::onDone`) without entering the VM, once per stream.

#[no_mangle]
pub extern "C" fn proxy_on_delete(context_id: u32) {
    with(|d| {
        if !d.streams.discard(context_id) {
            d.roots.discard(context_id);
        }
    })
}

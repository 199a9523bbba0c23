//! The `proxy_wasm` binding (wasm32 only, and never in test builds so wasm-bindgen-test
//! binaries carry no `env.proxy_*` imports). Every host call's error is handled: the SDK's
//! `Context` helpers that `unwrap` (e.g. `set_property`) are deliberately not used, and the
//! per-request calls (property and header reads, `set_property`) go to the ABI directly: the
//! SDK's `hostcalls` wrappers `panic!` on statuses they do not expect (Envoy answers
//! `SerializationFailure` for some properties) and `unwrap` non-UTF-8 header values — a panic
//! is a trap that poisons the VM — and they allocate the path twice per read.

use crate::config::Phase;
use crate::output::Output;
use crate::plugin::Plugin;
use proxy_attributes::host::envoy::{self, EnvoyHost};
use proxy_attributes::host::{HeaderMap, Host};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MetricType};
use std::rc::Rc;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    // Istio registers the root context without a root_id (`plugin.h`): any root_id binds here.
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(Root { plugin: Rc::new(Plugin::default()) })
    });
}}

/// The host as seen from any callback: reads through the shared ABI binding.
struct Envoy;

impl Host for Envoy {
    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        EnvoyHost.property(path)
    }

    fn property_joined(&self, joined: &str) -> Option<Vec<u8>> {
        EnvoyHost.property_joined(joined)
    }

    fn header(&self, map: HeaderMap, name: &str) -> Option<String> {
        EnvoyHost.header(map, name)
    }
}

impl Output for Envoy {
    fn set_property(&self, path: &[&str], value: &[u8]) -> bool {
        envoy::set_property(path, value)
    }

    fn define_counter(&self, name: &str) -> Option<u32> {
        hostcalls::define_metric(MetricType::Counter, name).ok()
    }

    fn increment_counter(&self, id: u32, delta: i64) {
        let _ = hostcalls::increment_metric(id, delta);
    }
}

struct Root {
    plugin: Rc<Plugin>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, plugin_configuration_size: usize) -> bool {
        let config = hostcalls::get_buffer(
            BufferType::PluginConfiguration,
            0,
            plugin_configuration_size,
        )
        .ok()
        .flatten()
        .unwrap_or_default();
        let mut plugin = Plugin::default();
        let ok = plugin.configure(&config, &Envoy);
        // Streams already open keep the generators they started with.
        self.plugin = Rc::new(plugin);
        ok
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Stream {
            plugin: Rc::clone(&self.plugin),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Stream {
    plugin: Rc<Plugin>,
}

impl Context for Stream {}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        self.plugin.run(Phase::OnRequest, &Envoy, &Envoy);
        Action::Continue
    }

    fn on_log(&mut self) {
        self.plugin.run(Phase::AfterResponse, &Envoy, &Envoy);
    }
}

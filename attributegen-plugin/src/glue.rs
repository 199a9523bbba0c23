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

/// The ABI calls made per request, declared with plain `u32` statuses.
mod abi {
    // The SDK declares the same imports with its `Status` enum as the return type.
    #![allow(clashing_extern_declarations)]
    #[link(wasm_import_module = "env")]
    extern "C" {
        pub fn proxy_get_property(
            path_data: *const u8,
            path_size: usize,
            return_value_data: *mut *mut u8,
            return_value_size: *mut usize,
        ) -> u32;
        pub fn proxy_set_property(
            path_data: *const u8,
            path_size: usize,
            value_data: *const u8,
            value_size: usize,
        ) -> u32;
        pub fn proxy_get_header_map_value(
            map_type: u32,
            key_data: *const u8,
            key_size: usize,
            return_value_data: *mut *mut u8,
            return_value_size: *mut usize,
        ) -> u32;
    }
}

const STATUS_OK: u32 = 0;

/// Runs `f` on the path parts joined with NUL (the ABI's property path), on the stack when short.
fn with_path<R>(path: &[&str], f: impl FnOnce(&[u8]) -> R) -> R {
    let total = path
        .iter()
        .map(|p| p.len() + 1)
        .sum::<usize>()
        .saturating_sub(1);
    let mut stack = [0u8; 128];
    let mut heap = Vec::new();
    let buf: &mut [u8] = match stack.get_mut(..total) {
        Some(b) => b,
        None => {
            heap.resize(total, 0);
            &mut heap
        }
    };
    let mut at = 0;
    for p in path {
        if let Some(dst) = buf.get_mut(at..at + p.len()) {
            dst.copy_from_slice(p.as_bytes());
        }
        // The NUL separator is already there (zeroed buffer).
        at += p.len() + 1;
    }
    f(buf)
}

/// Takes ownership of a host-returned buffer.
///
/// # Safety
/// `data` must be null or a `len`-byte allocation made through the SDK's exported allocator
/// (`proxy_on_memory_allocate` hands out a boxed slice of exactly `len` bytes).
unsafe fn take(data: *mut u8, len: usize) -> Option<Vec<u8>> {
    if data.is_null() {
        return None;
    }
    Some(Vec::from_raw_parts(data, len, len))
}

/// The host as seen from any callback.
struct Envoy;

impl Host for Envoy {
    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        with_path(path, |p| {
            let mut data: *mut u8 = std::ptr::null_mut();
            let mut len: usize = 0;
            // SAFETY: `p` is live for the call, the out-pointers are valid locals, and on OK the
            // returned buffer is ours.
            unsafe {
                if abi::proxy_get_property(p.as_ptr(), p.len(), &mut data, &mut len) != STATUS_OK {
                    return None;
                }
                take(data, len)
            }
        })
    }

    fn header(&self, map: HeaderMap, name: &str) -> Option<String> {
        let map_type = match map {
            HeaderMap::RequestHeaders => 0,
            HeaderMap::RequestTrailers => 1,
            HeaderMap::ResponseHeaders => 2,
            HeaderMap::ResponseTrailers => 3,
        };
        let mut data: *mut u8 = std::ptr::null_mut();
        let mut len: usize = 0;
        // SAFETY: as above.
        let bytes = unsafe {
            if abi::proxy_get_header_map_value(
                map_type,
                name.as_ptr(),
                name.len(),
                &mut data,
                &mut len,
            ) != STATUS_OK
            {
                return None;
            }
            // An existing empty header comes back as a null buffer.
            take(data, len).unwrap_or_default()
        };
        // Header values may hold obs-text bytes: replace invalid UTF-8 instead of failing.
        Some(match String::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        })
    }
}

impl Output for Envoy {
    fn set_property(&self, path: &[&str], value: &[u8]) -> bool {
        with_path(path, |p| {
            // SAFETY: both slices are live for the call.
            unsafe {
                abi::proxy_set_property(p.as_ptr(), p.len(), value.as_ptr(), value.len())
                    == STATUS_OK
            }
        })
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

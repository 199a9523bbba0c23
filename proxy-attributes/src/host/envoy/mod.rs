//! [`Host`] over the Proxy-Wasm ABI 0.2.1 (wasm32 only): the one implementation both plugins
//! use to read Envoy, plus `proxy_set_property`.
//!
//! It calls the ABI directly instead of the Rust SDK's `hostcalls` wrappers: those `panic!` on
//! statuses they do not expect (Envoy answers `SERIALIZATION_FAILURE` for some properties) and
//! `unwrap` non-UTF-8 header values, and with `panic = "abort"` a panic is a trap that poisons
//! the Envoy VM. Every status here maps to `None` / `false`.

use super::{HeaderMap, Host, Lent};

pub mod calls;
pub mod logger;
pub(crate) mod scratch;

/// The exports every Proxy-Wasm module needs besides its callbacks: the ABI version marker,
/// the allocator Envoy hands returned buffers through (cpp-host looks up `malloc`, then
/// `proxy_on_memory_allocate`) and `_initialize`, which installs the [`logger`] and makes no
/// host call (restricted on Envoy ≥ 1.24). Each plugin invokes it once at its crate root.
#[macro_export]
macro_rules! envoy_module_exports {
    () => {
        #[no_mangle]
        pub extern "C" fn _initialize() {
            $crate::host::envoy::logger::install();
        }

        #[no_mangle]
        pub extern "C" fn proxy_abi_version_0_2_1() {}

        #[no_mangle]
        pub extern "C" fn malloc(size: usize) -> *mut u8 {
            $crate::host::envoy::allocate(size)
        }
    };
}

/// Runs `f` on a module's callback state (its context tables, kept in a `thread_local!`
/// `RefCell`): a re-entrant call, impossible with this ABI, gets `R::default()` instead of a
/// borrow panic, which would trap and poison the VM.
pub fn with_state<T: 'static, R: Default>(
    state: &'static std::thread::LocalKey<std::cell::RefCell<T>>,
    f: impl FnOnce(&mut T) -> R,
) -> R {
    state.with(|cell| match cell.try_borrow_mut() {
        Ok(mut t) => f(&mut t),
        Err(_) => R::default(),
    })
}

/// A `size`-byte buffer for the host to fill, released by [`take`] (same layout: `len` bytes,
/// alignment 1), or, during a transient read, the lent scratch buffer ([`scratch`]).
#[inline(always)]
pub fn allocate(size: usize) -> *mut u8 {
    if let Some(lent) = scratch::lend(size) {
        return lent;
    }
    let slice: Box<[std::mem::MaybeUninit<u8>]> = Box::new_uninit_slice(size);
    Box::into_raw(slice) as *mut u8
}

mod abi {
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
        pub fn proxy_log(level: u32, message_data: *const u8, message_size: usize) -> u32;
        pub fn proxy_get_buffer_bytes(
            buffer_type: u32,
            start: usize,
            max_size: usize,
            return_buffer_data: *mut *mut u8,
            return_buffer_size: *mut usize,
        ) -> u32;
        pub fn proxy_define_metric(
            metric_type: u32,
            name_data: *const u8,
            name_size: usize,
            return_id: *mut u32,
        ) -> u32;
        pub fn proxy_record_metric(metric_id: u32, value: u64) -> u32;
        pub fn proxy_increment_metric(metric_id: u32, offset: i64) -> u32;
        pub fn proxy_set_tick_period_milliseconds(period: u32) -> u32;
        pub fn proxy_set_effective_context(context_id: u32) -> u32;
    }
}

const STATUS_OK: u32 = 0;

/// Envoy, as seen from any callback of the plugin.
pub struct EnvoyHost;

impl Host for EnvoyHost {
    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        with_path(path, get_property)
    }

    #[inline(always)]
    fn property_joined(&self, joined: &str) -> Option<Vec<u8>> {
        get_property(joined.as_bytes())
    }

    #[inline(always)]
    fn property_lent(&self, joined: &str) -> Option<Lent> {
        get_transient(joined.as_bytes()).map(Lent::from)
    }

    #[inline(always)]
    fn property_i64(&self, joined: &str) -> Option<i64> {
        // Without the `Lent` wrapper: the commonest transient read (codes, sizes, durations).
        crate::values::as_i64(get_transient(joined.as_bytes())?.bytes())
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
        Some(crate::bytes::into_string_lossy(bytes))
    }
}

/// `proxy_get_property` of an ABI path (parts joined with NUL).
#[inline(always)]
fn get_property(path: &[u8]) -> Option<Vec<u8>> {
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut len: usize = 0;
    // SAFETY: `path` is live for the call, the out-pointers are valid locals, and on OK the
    // returned buffer is ours.
    unsafe {
        if abi::proxy_get_property(path.as_ptr(), path.len(), &mut data, &mut len) != STATUS_OK {
            return None;
        }
        take(data, len)
    }
}

/// [`get_property`] of a value dropped right after: read into the lent buffer ([`scratch`]).
#[inline(always)]
fn get_transient(path: &[u8]) -> Option<scratch::Value> {
    scratch::read(|data, len| {
        // SAFETY: `path` is live for the call and the out-pointers are valid locals.
        unsafe { abi::proxy_get_property(path.as_ptr(), path.len(), data, len) == STATUS_OK }
    })
}

/// `proxy_set_property(path, value)`: Envoy stores it as filter state `wasm.<path>`. `false` for
/// any non-OK status (e.g. NOT_FOUND from a root context).
pub fn set_property(path: &[&str], value: &[u8]) -> bool {
    with_path(path, |p| {
        // SAFETY: both slices are live for the call.
        unsafe {
            abi::proxy_set_property(p.as_ptr(), p.len(), value.as_ptr(), value.len()) == STATUS_OK
        }
    })
}

/// Runs `f` on the path parts joined with NUL (the ABI's property path, no trailing NUL), on
/// the stack when short: no allocation per read.
fn with_path<R>(path: &[&str], f: impl FnOnce(&[u8]) -> R) -> R {
    // One part (filter state such as `upstream_peer_id`): already the ABI path.
    if let [one] = path {
        return f(one.as_bytes());
    }
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
/// `data` must be null or a `len`-byte allocation made through the module's exported allocator
/// (both plugins' allocators hand out exactly `len` bytes with alignment 1).
pub unsafe fn take(data: *mut u8, len: usize) -> Option<Vec<u8>> {
    if data.is_null() {
        return None;
    }
    Some(Vec::from_raw_parts(data, len, len))
}

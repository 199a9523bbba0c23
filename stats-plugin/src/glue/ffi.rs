//! The Proxy-Wasm ABI 0.2.1 imports this plugin uses, wrapped so that every status maps to a
//! `Result`/`Option`. The Rust SDK's `hostcalls` wrappers `panic!` on statuses they do not expect
//! (and `unwrap` non-UTF-8 header values); with `panic = "abort"` that is a trap that poisons the
//! Envoy VM, so the plugin calls the ABI directly.

use std::ptr::null_mut;

const STATUS_OK: u32 = 0;

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_log(level: u32, message_data: *const u8, message_size: usize) -> u32;
    fn proxy_get_buffer_bytes(
        buffer_type: u32,
        start: usize,
        max_size: usize,
        return_buffer_data: *mut *mut u8,
        return_buffer_size: *mut usize,
    ) -> u32;
    fn proxy_define_metric(
        metric_type: u32,
        name_data: *const u8,
        name_size: usize,
        return_id: *mut u32,
    ) -> u32;
    fn proxy_record_metric(metric_id: u32, value: u64) -> u32;
    fn proxy_increment_metric(metric_id: u32, offset: i64) -> u32;
    fn proxy_set_tick_period_milliseconds(period: u32) -> u32;
    fn proxy_set_effective_context(context_id: u32) -> u32;
}

use proxy_attributes::host::envoy::take;

pub fn log(level: u32, message: &str) {
    // SAFETY: pointer and length describe a live `&str`.
    unsafe {
        proxy_log(level, message.as_ptr(), message.len());
    }
}

/// `proxy_get_buffer_bytes`; `None` for any non-OK status or an empty buffer.
pub fn buffer(buffer_type: u32, start: usize, max_size: usize) -> Option<Vec<u8>> {
    let mut data: *mut u8 = null_mut();
    let mut len: usize = 0;
    // SAFETY: out-pointers are valid locals; the returned buffer is owned by us on OK.
    unsafe {
        if proxy_get_buffer_bytes(buffer_type, start, max_size, &mut data, &mut len) != STATUS_OK {
            return None;
        }
        take(data, len)
    }
}

pub fn define_metric(metric_type: u32, name: &str) -> Option<u32> {
    let mut id: u32 = 0;
    // SAFETY: as above.
    let status = unsafe { proxy_define_metric(metric_type, name.as_ptr(), name.len(), &mut id) };
    (status == STATUS_OK).then_some(id)
}

pub fn record_metric(id: u32, value: u64) {
    // SAFETY: plain values.
    unsafe {
        proxy_record_metric(id, value);
    }
}

pub fn increment_metric(id: u32, delta: i64) {
    // SAFETY: plain values.
    unsafe {
        proxy_increment_metric(id, delta);
    }
}

pub fn set_tick_period_ms(period: u32) {
    // SAFETY: plain value.
    unsafe {
        proxy_set_tick_period_milliseconds(period);
    }
}

pub fn set_effective_context(context_id: u32) -> bool {
    // SAFETY: plain value.
    unsafe { proxy_set_effective_context(context_id) == STATUS_OK }
}

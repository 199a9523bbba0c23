//! The root-side Proxy-Wasm ABI 0.2.1 calls both plugins make (log, configuration buffer,
//! metrics, tick, effective context), each status mapped to an `Option`/`bool`, for the reason
//! given in [`super`]: the SDK's `hostcalls` wrappers panic, and a panic is a trap.

use std::ptr::null_mut;

use super::abi::*;
use super::{take, STATUS_OK};

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

/// `proxy_metric_type_t`.
pub const METRIC_COUNTER: u32 = 0;
pub const METRIC_GAUGE: u32 = 1;
pub const METRIC_HISTOGRAM: u32 = 2;

/// `proxy_buffer_type_t::PluginConfiguration`.
pub const BUFFER_PLUGIN_CONFIGURATION: u32 = 7;

/// `proxy_define_metric`; `None` for any non-OK status.
pub fn define_metric(metric_type: u32, name: &str) -> Option<u32> {
    let mut id: u32 = 0;
    // SAFETY: as above.
    let status = unsafe { proxy_define_metric(metric_type, name.as_ptr(), name.len(), &mut id) };
    (status == STATUS_OK).then_some(id)
}

#[inline(always)]
pub fn record_metric(id: u32, value: u64) {
    // SAFETY: plain values.
    unsafe {
        proxy_record_metric(id, value);
    }
}

#[inline(always)]
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

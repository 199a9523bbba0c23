//! A buffer the module lends the host for a value it reads and drops at once
//! ([`Host::with_property`](crate::host::Host::with_property),
//! [`Host::property_i64`](crate::host::Host::property_i64)): response codes, sizes and
//! durations, route and cluster names that are only compared, peer ids that only key a cache.
//!
//! The ABI hands every returned value through the module's exported `malloc` (cpp-host
//! `WasmBase::copyToPointerSize`: one `malloc` of the value's size, a copy, the pointer written
//! back), and the module frees it. For a value dropped right after the read that round trip is
//! pure cost (the allocation, the free and the `Vec` around it were ~150 wasm instructions).
//! While such a read is in flight the next `malloc` that fits gets this buffer instead; the value
//! is read from it in place and nothing is freed. A read made while the buffer is still in use
//! (nested in the consumer), or a second `malloc` in the same host call, gets an ordinary
//! allocation, so lent bytes are never overwritten while they are looked at.

use std::cell::{Cell, UnsafeCell};

use super::take;

/// Longest value read in place; longer ones are allocated as usual.
const LEN: usize = 256;

struct Scratch {
    buf: UnsafeCell<[u8; LEN]>,
    /// The next `malloc` of at most [`LEN`] bytes gets `buf`.
    armed: Cell<bool>,
    /// `buf` is lent to a value that is still alive ([`Value`]).
    busy: Cell<bool>,
}

// SAFETY: this module is compiled for wasm32 only, and there without the `atomics` feature
// (one thread per VM, as Envoy runs it); nothing touches the buffer concurrently.
#[cfg(not(target_feature = "atomics"))]
unsafe impl Sync for Scratch {}

static SCRATCH: Scratch = Scratch {
    buf: UnsafeCell::new([0; LEN]),
    armed: Cell::new(false),
    busy: Cell::new(false),
};

/// For the exported `malloc`: the lent buffer, when a transient read armed it and `size` fits.
#[inline(always)]
pub fn lend(size: usize) -> Option<*mut u8> {
    if SCRATCH.armed.get() {
        SCRATCH.armed.set(false);
        if size <= LEN {
            return Some(SCRATCH.buf.get().cast::<u8>());
        }
    }
    None
}

/// A value read by [`read`]: in the lent buffer, or an ordinary allocation. Dropping it returns
/// the buffer (or frees the allocation).
pub struct Value {
    ptr: *mut u8,
    len: usize,
    lent: bool,
}

impl Value {
    #[inline(always)]
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `ptr`/`len` are the host's answer: the lent buffer (`len` ≤ LEN, the size the
        // host asked `malloc` for, not written again until this value drops) or a `len`-byte
        // allocation of the module's allocator owned by this value.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl Drop for Value {
    #[inline(always)]
    fn drop(&mut self) {
        if self.lent {
            SCRATCH.busy.set(false);
        } else {
            // SAFETY: not lent, so an allocation of the module's allocator (see `bytes`).
            drop(unsafe { take(self.ptr, self.len) });
        }
    }
}

/// Runs `call` (one host call answering through the out-pointers; `true` = OK) with the buffer
/// lent to its `malloc` if free. `None`: no value (a non-OK status, or an empty value, which
/// Envoy returns as a null pointer).
#[inline(always)]
pub fn read(call: impl FnOnce(&mut *mut u8, &mut usize) -> bool) -> Option<Value> {
    let lendable = !SCRATCH.busy.get();
    SCRATCH.armed.set(lendable);
    let mut ptr: *mut u8 = std::ptr::null_mut();
    let mut len: usize = 0;
    let ok = call(&mut ptr, &mut len);
    SCRATCH.armed.set(false);
    let lent = lendable && ptr == SCRATCH.buf.get().cast::<u8>();
    if lent {
        SCRATCH.busy.set(true);
        len = len.min(LEN);
    }
    let value = Value { ptr, len, lent };
    // Dropping `value` on the error paths returns the buffer or frees what the host allocated.
    (ok && !ptr.is_null()).then_some(value)
}

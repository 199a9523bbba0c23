//! Buffers the module lends the host for values it reads and drops soon after
//! ([`Host::property_lent`](crate::host::Host::property_lent)): response codes, sizes and
//! durations, route and cluster names that are only compared, peer ids that only key a cache,
//! attributegen's condition inputs.
//!
//! The ABI hands every returned value through the module's exported `malloc` (cpp-host
//! `WasmBase::copyToPointerSize`: one `malloc` of the value's size, a copy, the pointer written
//! back), and the module frees it. For a value dropped soon after the read that round trip is
//! pure cost (the allocation, the free and the `Vec` around it were ~150 wasm instructions).
//! While such a read is in flight, the next `malloc` that fits gets a free slot of this buffer
//! instead; the value is read in place and nothing is freed: the slot is returned when the value
//! drops. With every slot in use, a value that does not fit, or a second `malloc` in the same
//! host call, the host gets an ordinary allocation, so lent bytes are never overwritten while
//! they are looked at.

use std::cell::{Cell, UnsafeCell};

use super::take;

/// Longest value read in place; longer ones are allocated as usual.
const LEN: usize = 256;
/// Values that can be lent at once (attributegen holds one per distinct leaf of a callback).
const SLOTS: usize = 4;

struct Scratch {
    buf: UnsafeCell<[[u8; LEN]; SLOTS]>,
    /// Slot + 1 that the next `malloc` of at most [`LEN`] bytes gets; 0: none.
    armed: Cell<u8>,
    /// Bit k: slot k belongs to a live [`Value`].
    busy: Cell<u8>,
}

// SAFETY: this module is compiled for wasm32 only, and there without the `atomics` feature
// (one thread per VM, as Envoy runs it); nothing touches the buffers concurrently.
#[cfg(not(target_feature = "atomics"))]
unsafe impl Sync for Scratch {}

static SCRATCH: Scratch = Scratch {
    buf: UnsafeCell::new([[0; LEN]; SLOTS]),
    armed: Cell::new(0),
    busy: Cell::new(0),
};

#[inline(always)]
fn slot(k: usize) -> *mut u8 {
    SCRATCH.buf.get().cast::<u8>().wrapping_add(k * LEN)
}

/// For the exported `malloc`: the armed slot, when a read armed one and `size` fits.
#[inline(always)]
pub fn lend(size: usize) -> Option<*mut u8> {
    let armed = SCRATCH.armed.get();
    if armed != 0 {
        SCRATCH.armed.set(0);
        if size <= LEN {
            return Some(slot(usize::from(armed - 1)));
        }
    }
    None
}

/// A value read by [`read`]: in a lent slot, or an ordinary allocation. Dropping it returns the
/// slot (or frees the allocation).
pub struct Value {
    ptr: *mut u8,
    len: usize,
    /// The lent slot, or `SLOTS` for an allocation.
    slot: usize,
}

impl Value {
    #[inline(always)]
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `ptr`/`len` are the host's answer: a lent slot (`len` ≤ LEN, the size the host
        // asked `malloc` for, not lent again until this value drops) or a `len`-byte allocation
        // of the module's allocator owned by this value.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl Drop for Value {
    #[inline(always)]
    fn drop(&mut self) {
        if self.slot < SLOTS {
            SCRATCH.busy.set(SCRATCH.busy.get() & !(1 << self.slot));
        } else {
            // SAFETY: not lent, so an allocation of the module's allocator (see `bytes`).
            drop(unsafe { take(self.ptr, self.len) });
        }
    }
}

/// Runs `call` (one host call answering through the out-pointers; `true` = OK) with a free slot
/// lent to its `malloc`. `None`: no value (a non-OK status, or an empty value, which Envoy
/// returns as a null pointer).
#[inline(always)]
pub fn read(call: impl FnOnce(&mut *mut u8, &mut usize) -> bool) -> Option<Value> {
    let free = (!SCRATCH.busy.get()).trailing_zeros() as usize;
    if free < SLOTS {
        SCRATCH.armed.set(free as u8 + 1);
    }
    let mut ptr: *mut u8 = std::ptr::null_mut();
    let mut len: usize = 0;
    let ok = call(&mut ptr, &mut len);
    SCRATCH.armed.set(0);
    let mut value = Value {
        ptr,
        len,
        slot: SLOTS,
    };
    if free < SLOTS && ptr == slot(free) {
        SCRATCH.busy.set(SCRATCH.busy.get() | (1 << free));
        value.slot = free;
        value.len = len.min(LEN);
    }
    // Dropping `value` on the error paths returns the slot or frees what the host allocated.
    (ok && !ptr.is_null()).then_some(value)
}

//! A small-block cache in front of the module's allocator.
//!
//! Every `proxy_get_property` / header read hands its result to the module through the exported
//! `malloc` (the ABI's allocator protocol), and the plugin frees it when the stream ends: a stats
//! report makes ~11 such round trips. Under `dlmalloc` (Rust's wasm32 `System`) one
//! malloc + free pair measured ~190 wasm instructions, ~4.2 k per default report. Blocks of at
//! most [`MAX_SMALL`] bytes are kept instead on per-size-class free lists (16-byte classes,
//! 16-byte aligned): taking or returning one is a pointer swap. Larger or over-aligned requests
//! go to the inner allocator unchanged.
//!
//! Memory: a cached block is never coalesced or handed back to the inner allocator, so each list
//! is capped at [`MAX_CACHED`] blocks (≤ 2.2 MB in all); beyond that frees go to the inner
//! allocator. wasm linear memory never shrinks, so caching does not raise the module's peak.
//!
//! Only sound where there is one thread: the plugins install it on `wasm32` without the
//! `atomics` feature (Envoy runs each VM on one worker thread). Native tests use an instance
//! of their own.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::UnsafeCell;
use std::ptr::{self, null_mut};

/// Largest request served from the cache.
pub const MAX_SMALL: usize = 256;
/// Size-class granularity, and the alignment every cached block has.
const CLASS: usize = 16;
const CLASSES: usize = MAX_SMALL / CLASS;
/// Per-class cap on cached (free) blocks.
pub const MAX_CACHED: u32 = 512;

struct Lists {
    head: [*mut u8; CLASSES],
    len: [u32; CLASSES],
}

/// The cache, generic over the allocator it fronts (`std::alloc::System` in the plugins).
pub struct SmallBlocks<A> {
    inner: A,
    lists: UnsafeCell<Lists>,
}

// SAFETY: wasm32 without the `atomics` target feature has exactly one thread, so the lists are
// never touched concurrently.
#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
unsafe impl<A: Sync> Sync for SmallBlocks<A> {}

/// The class of a request, `None` when the inner allocator must serve it.
#[inline(always)]
fn class_of(layout: &Layout) -> Option<usize> {
    if layout.size() <= MAX_SMALL && layout.align() <= CLASS {
        // size 0 never reaches a GlobalAlloc from std; it would share class 0.
        Some(layout.size().saturating_sub(1) / CLASS)
    } else {
        None
    }
}

#[inline(always)]
fn class_layout(class: usize) -> Layout {
    // SAFETY: (class + 1) * 16 ≤ 256 with power-of-two alignment 16 is always a valid layout.
    unsafe { Layout::from_size_align_unchecked((class + 1) * CLASS, CLASS) }
}

impl<A: GlobalAlloc> SmallBlocks<A> {
    pub const fn new(inner: A) -> Self {
        SmallBlocks {
            inner,
            lists: UnsafeCell::new(Lists {
                head: [null_mut(); CLASSES],
                len: [0; CLASSES],
            }),
        }
    }

    /// Free blocks cached for `size`-byte requests (for tests).
    pub fn cached(&self, size: usize) -> u32 {
        let l = Layout::from_size_align(size.max(1), 1).ok();
        match l.as_ref().and_then(class_of) {
            // SAFETY: single-threaded use (see the `Sync` impl); a read of a counter.
            Some(c) => unsafe { (*self.lists.get()).len[c] },
            None => 0,
        }
    }

    #[inline(always)]
    unsafe fn pop(&self, class: usize) -> *mut u8 {
        let lists = &mut *self.lists.get();
        let block = lists.head[class];
        if block.is_null() {
            return self.inner.alloc(class_layout(class));
        }
        // The first word of a free block links to the next one (blocks are ≥ 16 bytes, 16-aligned).
        lists.head[class] = ptr::read(block as *const *mut u8);
        lists.len[class] -= 1;
        block
    }

    #[inline(always)]
    unsafe fn push(&self, class: usize, block: *mut u8) {
        let lists = &mut *self.lists.get();
        if lists.len[class] >= MAX_CACHED {
            self.inner.dealloc(block, class_layout(class));
            return;
        }
        ptr::write(block as *mut *mut u8, lists.head[class]);
        lists.head[class] = block;
        lists.len[class] += 1;
    }
}

// SAFETY: every block handed out for a class is a `class_layout(class)` block of the inner
// allocator (fresh or cached), which satisfies any layout of that class; blocks are returned
// to the list or to the inner allocator with that same layout.
unsafe impl<A: GlobalAlloc> GlobalAlloc for SmallBlocks<A> {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match class_of(&layout) {
            Some(c) => self.pop(c),
            None => self.inner.alloc(layout),
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        match class_of(&layout) {
            Some(c) => {
                let p = self.pop(c);
                if !p.is_null() {
                    ptr::write_bytes(p, 0, layout.size());
                }
                p
            }
            None => self.inner.alloc_zeroed(layout),
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        match class_of(&layout) {
            Some(c) => self.push(c, ptr),
            None => self.inner.dealloc(ptr, layout),
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
        match (class_of(&layout), class_of(&new_layout)) {
            (Some(a), Some(b)) if a == b => ptr,
            (None, None) => self.inner.realloc(ptr, layout, new_size),
            _ => {
                let fresh = self.alloc(new_layout);
                if !fresh.is_null() {
                    ptr::copy_nonoverlapping(ptr, fresh, layout.size().min(new_size));
                    self.dealloc(ptr, layout);
                }
                fresh
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::alloc::System;
    use std::collections::HashMap;

    /// Counts the inner allocator's live blocks, so leaks and double frees show.
    #[derive(Default)]
    struct Counting {
        live: std::sync::Mutex<HashMap<usize, Layout>>,
    }

    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, l: Layout) -> *mut u8 {
            let p = System.alloc(l);
            assert!(self.live.lock().unwrap().insert(p as usize, l).is_none());
            p
        }
        unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
            let had = self.live.lock().unwrap().remove(&(p as usize));
            assert_eq!(had, Some(l), "freed with another layout, or twice");
            System.dealloc(p, l)
        }
    }

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    #[test]
    fn a_freed_small_block_is_reused_for_the_same_class_only() {
        let a = SmallBlocks::new(Counting::default());
        unsafe {
            let p = a.alloc(layout(20, 1));
            a.dealloc(p, layout(20, 1));
            assert_eq!(a.cached(20), 1);
            // 17..=32 bytes share the class: the same block comes back.
            assert_eq!(a.alloc(layout(32, 8)), p);
            assert_eq!(a.cached(20), 0);
            // Another class gets a fresh block of its own.
            let q = a.alloc(layout(33, 1));
            assert_ne!(q, p);
            assert_eq!(a.inner.live.lock().unwrap()[&(q as usize)], layout(48, 16));
        }
    }

    #[test]
    fn blocks_are_sixteen_aligned_and_large_or_overaligned_requests_pass_through() {
        let a = SmallBlocks::new(Counting::default());
        unsafe {
            for size in [1, 15, 16, 17, 255, 256] {
                let p = a.alloc(layout(size, 1));
                assert_eq!(p as usize % 16, 0, "size {size}");
            }
            let big = a.alloc(layout(257, 1));
            assert_eq!(
                a.inner.live.lock().unwrap()[&(big as usize)],
                layout(257, 1)
            );
            a.dealloc(big, layout(257, 1));
            let aligned = a.alloc(layout(64, 32));
            assert_eq!(aligned as usize % 32, 0);
            assert_eq!(
                a.inner.live.lock().unwrap()[&(aligned as usize)],
                layout(64, 32)
            );
            a.dealloc(aligned, layout(64, 32));
            assert_eq!(a.cached(257), 0);
        }
    }

    #[test]
    fn each_list_is_capped_and_the_excess_goes_back_to_the_inner_allocator() {
        let a = SmallBlocks::new(Counting::default());
        let n = MAX_CACHED as usize + 10;
        unsafe {
            let blocks: Vec<_> = (0..n).map(|_| a.alloc(layout(100, 4))).collect();
            assert_eq!(a.inner.live.lock().unwrap().len(), n);
            for b in blocks {
                a.dealloc(b, layout(100, 4));
            }
            assert_eq!(a.cached(100), MAX_CACHED);
            assert_eq!(a.inner.live.lock().unwrap().len(), MAX_CACHED as usize);
        }
    }

    #[test]
    fn zeroed_blocks_are_zero_even_when_reused() {
        let a = SmallBlocks::new(Counting::default());
        unsafe {
            let p = a.alloc(layout(40, 1));
            ptr::write_bytes(p, 0xAB, 40);
            a.dealloc(p, layout(40, 1));
            let z = a.alloc_zeroed(layout(40, 1));
            assert_eq!(z, p);
            assert!(std::slice::from_raw_parts(z, 40).iter().all(|b| *b == 0));
        }
    }

    #[test]
    fn realloc_keeps_the_bytes_across_every_kind_of_move() {
        let a = SmallBlocks::new(Counting::default());
        unsafe {
            let mut l = layout(10, 1);
            let mut p = a.alloc(l);
            for i in 0..10 {
                *p.add(i) = i as u8;
            }
            // Same class: in place. Then small → bigger class → large → large → small.
            for new in [16, 100, 300, 1000, 50] {
                let q = a.realloc(p, l, new);
                if new == 16 {
                    assert_eq!(q, p);
                }
                let keep = l.size().min(new).min(10);
                assert!((0..keep).all(|i| *q.add(i) == i as u8), "to {new}");
                p = q;
                l = layout(new, 1);
            }
            a.dealloc(p, l);
            // Nothing leaked: only cached small blocks are still live in the inner allocator.
            let cached: u32 = [16, 32, 112, 64].iter().map(|s| a.cached(*s)).sum();
            assert_eq!(a.inner.live.lock().unwrap().len() as u32, cached);
        }
    }

    #[test]
    fn a_random_workload_never_hands_out_a_live_block_twice() {
        let a = SmallBlocks::new(Counting::default());
        let mut live: Vec<(*mut u8, Layout, u8)> = Vec::new();
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        unsafe {
            for step in 0..20_000u32 {
                let r = next();
                if live.len() < 64 && (r & 3 != 0 || live.is_empty()) {
                    let size = 1 + (r >> 8) as usize % 400;
                    let l = layout(size, 1 << ((r >> 20) % 5));
                    let p = a.alloc(l);
                    let tag = step as u8;
                    ptr::write_bytes(p, tag, size);
                    live.push((p, l, tag));
                } else {
                    let (p, l, tag) = live.swap_remove((r >> 8) as usize % live.len());
                    // Untouched while live: no other allocation overlapped it.
                    assert!(std::slice::from_raw_parts(p, l.size())
                        .iter()
                        .all(|b| *b == tag));
                    a.dealloc(p, l);
                }
            }
            for (p, l, _) in live.drain(..) {
                a.dealloc(p, l);
            }
        }
    }
}

//! Guest memory access and the allocator protocol (cpp-host `copyToPointerSize`: zero-length
//! results are `(0, 0)` without an allocation; out-of-range pointers are INVALID_MEMORY_ACCESS).

use super::Cx;
use crate::abi::Status;
use crate::host_state::Restriction;

pub(crate) const INVALID: i32 = Status::InvalidMemoryAccess as i32;

/// Copies `len` bytes at `ptr` out of guest memory.
pub(crate) fn read(c: &mut Cx<'_>, ptr: i32, len: i32) -> Option<Vec<u8>> {
    let mem = c.data().memory?;
    let data = mem.data(&*c);
    let (p, l) = (ptr as u32 as usize, len as u32 as usize);
    data.get(p..p.checked_add(l)?).map(|s| s.to_vec())
}

/// Runs `f` on the guest bytes `ptr..ptr+len` and the host state. Inlined into each host
/// call (one caller per `f`): a separate frame cost more than the look-up itself.
#[inline(always)]
pub(crate) fn with_bytes<R>(
    c: &mut Cx<'_>,
    ptr: i32,
    len: i32,
    f: impl FnOnce(&[u8], &mut crate::host_state::VmHost) -> R,
) -> Option<R> {
    let mem = c.data().memory?;
    let (data, host) = mem.data_and_store_mut(&mut *c);
    let (p, l) = (ptr as u32 as usize, len as u32 as usize);
    let bytes = data.get(p..p.checked_add(l)?)?;
    Some(f(bytes, host))
}

/// Runs `f` on two guest ranges (`None` when either is out of bounds) and the host state.
pub(crate) fn with_two<R>(
    c: &mut Cx<'_>,
    (p1, l1): (i32, i32),
    (p2, l2): (i32, i32),
    f: impl FnOnce(&[u8], &[u8], &mut crate::host_state::VmHost) -> R,
) -> Option<R> {
    let mem = c.data().memory?;
    let (data, host) = mem.data_and_store_mut(&mut *c);
    let range = |p: i32, l: i32| {
        let (p, l) = (p as u32 as usize, l as u32 as usize);
        data.get(p..p.checked_add(l)?)
    };
    let (a, b) = (range(p1, l1)?, range(p2, l2)?);
    Some(f(a, b, host))
}

pub(crate) fn write(c: &mut Cx<'_>, ptr: i32, bytes: &[u8]) -> bool {
    let Some(mem) = c.data().memory else {
        return false;
    };
    put(mem.data_mut(&mut *c), ptr as u32 as usize, bytes)
}

pub(crate) fn write_u32(c: &mut Cx<'_>, ptr: i32, v: u32) -> bool {
    write(c, ptr, &v.to_le_bytes())
}

pub(crate) fn write_u64(c: &mut Cx<'_>, ptr: i32, v: u64) -> bool {
    write(c, ptr, &v.to_le_bytes())
}

/// Calls the module's allocator (`malloc` or `proxy_on_memory_allocate`) with cpp-host's
/// allocator restrictions in force. 0 means failure. Inlined into its two callers, where the
/// set-up around the call folds into theirs.
#[inline(always)]
pub(crate) fn alloc(c: &mut Cx<'_>, size: usize) -> wasmtime::Result<u32> {
    let h = c.data_mut();
    let Some(f) = h.alloc.clone() else {
        return Ok(0);
    };
    let saved = std::mem::replace(&mut h.restriction, Restriction::Alloc);
    let r = f.call(&mut *c, size as i32);
    c.data_mut().restriction = saved;
    Ok(r? as u32)
}

/// Hands `bytes` to the module: allocate, copy, write `(ptr, len)` to the out-pointers.
pub(crate) fn copy_out(
    c: &mut Cx<'_>,
    bytes: &[u8],
    ptr_ptr: i32,
    len_ptr: i32,
) -> wasmtime::Result<i32> {
    let Some(addr) = alloc_for(c, bytes.len())? else {
        return Ok(INVALID);
    };
    let Some(mem) = c.data().memory else {
        return Ok(INVALID);
    };
    Ok(place(mem.data_mut(&mut *c), bytes, addr, ptr_ptr, len_ptr))
}

/// The guest address for a `len`-byte result: none needed for an empty one (`Some(0)`), `None`
/// when the allocator failed. Inlined: a separate frame cost more than the check.
#[inline(always)]
fn alloc_for(c: &mut Cx<'_>, len: usize) -> wasmtime::Result<Option<u32>> {
    if len == 0 {
        return Ok(Some(0));
    }
    let addr = alloc(c, len)?;
    Ok((addr != 0).then_some(addr))
}

/// Copies `bytes` to `addr` and writes `(addr, len)` to the out-pointers, sharing one look-up of
/// the memory (each `Memory::data_mut` re-validates the store), in the order cpp-host writes
/// them: a failed write leaves the later ones undone.
fn place(data: &mut [u8], bytes: &[u8], addr: u32, ptr_ptr: i32, len_ptr: i32) -> i32 {
    let ok = (bytes.is_empty() || put(data, addr as usize, bytes))
        && put(data, ptr_ptr as u32 as usize, &addr.to_le_bytes())
        && put(
            data,
            len_ptr as u32 as usize,
            &(bytes.len() as u32).to_le_bytes(),
        );
    if ok {
        0
    } else {
        INVALID
    }
}

/// Copies `bytes` to `data[at..]`; false when out of range.
fn put(data: &mut [u8], at: usize, bytes: &[u8]) -> bool {
    match at
        .checked_add(bytes.len())
        .and_then(|end| data.get_mut(at..end))
    {
        Some(dst) => {
            dst.copy_from_slice(bytes);
            true
        }
        None => false,
    }
}

/// `copy_out` of the host's scratch buffer (filled by the host call), read in place rather than
/// moved out for the allocator call and back: the bytes are copied after the call, through
/// `data_and_store_mut`, which borrows the memory and the host state at once. The allocator
/// cannot touch the buffer: only proxy_log, fd_write and clock_time_get run inside it
/// (`ALLOC_ALLOWED`), and none of them uses it.
#[inline(always)]
pub(crate) fn copy_out_scratch(
    c: &mut Cx<'_>,
    ptr_ptr: i32,
    len_ptr: i32,
) -> wasmtime::Result<i32> {
    let len = c.data().scratch.len();
    let Some(addr) = alloc_for(c, len)? else {
        return Ok(INVALID);
    };
    let Some(mem) = c.data().memory else {
        return Ok(INVALID);
    };
    let (data, h) = mem.data_and_store_mut(&mut *c);
    Ok(place(data, &h.scratch, addr, ptr_ptr, len_ptr))
}

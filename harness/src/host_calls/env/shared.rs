//! Shared data and queues, per vm_id: `proxy_{get,set}_shared_data`,
//! `proxy_{register,resolve,enqueue,dequeue}_shared_queue` (cpp-host `SharedData` /
//! `SharedQueue`, `src/shared_data.cc`, `src/exports.cc`; abi-host §1.5).

use wasmtime::Linker;

use super::{lossy, Res};
use crate::abi::Status;
use crate::host_calls::memory::{copy_out, read, write_u32, INVALID};
use crate::host_calls::{enter, finish, st, Cx};
use crate::host_state::{SharedQueue, VmHost};

pub(super) fn register(l: &mut Linker<VmHost>) -> wasmtime::Result<()> {
    l.func_wrap(
        "env",
        "proxy_get_shared_data",
        |mut c: Cx<'_>, kp: i32, kl: i32, ret_ptr: i32, ret_len: i32, ret_cas: i32| -> Res {
            guard!(c, "proxy_get_shared_data");
            let Some(key) = read(&mut c, kp, kl) else {
                return Ok(INVALID);
            };
            let h = c.data();
            let found = h
                .world
                .as_deref()
                .and_then(|w| w.shared.data.get(&(h.vm_id.clone(), lossy(&key))))
                .cloned();
            match found {
                None => Ok(finish(
                    &mut c,
                    "proxy_get_shared_data",
                    st(Status::NotFound),
                )),
                Some((value, cas)) => {
                    let r = copy_out(&mut c, &value, ret_ptr, ret_len)?;
                    if r != 0 {
                        return Ok(r);
                    }
                    Ok(if write_u32(&mut c, ret_cas, cas) {
                        0
                    } else {
                        INVALID
                    })
                }
            }
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_set_shared_data",
        |mut c: Cx<'_>, kp: i32, kl: i32, vp: i32, vl: i32, cas: i32| -> Res {
            guard!(c, "proxy_set_shared_data");
            let (Some(key), Some(value)) = (read(&mut c, kp, kl), read(&mut c, vp, vl)) else {
                return Ok(INVALID);
            };
            let h = c.data_mut();
            let vm_id = h.vm_id.clone();
            let Some(w) = h.world.as_deref_mut() else {
                return Ok(st(Status::InternalFailure));
            };
            let key = (vm_id, lossy(&key));
            let cas = cas as u32;
            if let Some((_, stored)) = w.shared.data.get(&key) {
                if cas != 0 && cas != *stored {
                    return Ok(finish(
                        &mut c,
                        "proxy_set_shared_data",
                        st(Status::CasMismatch),
                    ));
                }
            }
            w.shared.next_cas = w.shared.next_cas.wrapping_add(1).max(1);
            let next = w.shared.next_cas;
            w.shared.data.insert(key, (value, next));
            Ok(0)
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_register_shared_queue",
        |mut c: Cx<'_>, np: i32, nl: i32, ret: i32| -> Res {
            guard!(c, "proxy_register_shared_queue");
            let Some(name) = read(&mut c, np, nl) else {
                return Ok(INVALID);
            };
            let name = lossy(&name);
            let h = c.data_mut();
            let owner = (
                h.vm_index,
                h.contexts.get(&h.effective_ctx).copied().unwrap_or(0),
            );
            let vm_id = h.vm_id.clone();
            let Some(w) = h.world.as_deref_mut() else {
                return Ok(st(Status::InternalFailure));
            };
            let id = match w
                .shared
                .queues
                .iter()
                .position(|q| q.vm_id == vm_id && q.name == name)
            {
                Some(i) => {
                    w.shared.queues[i].owner = owner;
                    i
                }
                None => {
                    w.shared.queues.push(SharedQueue {
                        vm_id,
                        name,
                        owner,
                        items: Default::default(),
                    });
                    w.shared.queues.len() - 1
                }
            };
            Ok(if write_u32(&mut c, ret, id as u32 + 1) {
                0
            } else {
                INVALID
            })
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_resolve_shared_queue",
        |mut c: Cx<'_>, vp: i32, vl: i32, np: i32, nl: i32, ret: i32| -> Res {
            guard!(c, "proxy_resolve_shared_queue");
            let (Some(vm), Some(name)) = (read(&mut c, vp, vl), read(&mut c, np, nl)) else {
                return Ok(INVALID);
            };
            let (vm, name) = (lossy(&vm), lossy(&name));
            let found = c.data().world.as_deref().and_then(|w| {
                w.shared
                    .queues
                    .iter()
                    .position(|q| q.vm_id == vm && q.name == name)
            });
            match found {
                Some(i) => Ok(if write_u32(&mut c, ret, i as u32 + 1) {
                    0
                } else {
                    INVALID
                }),
                None => Ok(finish(
                    &mut c,
                    "proxy_resolve_shared_queue",
                    st(Status::NotFound),
                )),
            }
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_enqueue_shared_queue",
        |mut c: Cx<'_>, id: i32, vp: i32, vl: i32| -> Res {
            guard!(c, "proxy_enqueue_shared_queue");
            let Some(value) = read(&mut c, vp, vl) else {
                return Ok(INVALID);
            };
            let h = c.data_mut();
            let Some(w) = h.world.as_deref_mut() else {
                return Ok(st(Status::InternalFailure));
            };
            let idx = (id as u32 as usize).wrapping_sub(1);
            match w.shared.queues.get_mut(idx) {
                Some(q) => {
                    q.items.push_back(value);
                    w.shared.ready.push(id as u32);
                    Ok(0)
                }
                None => Ok(finish(
                    &mut c,
                    "proxy_enqueue_shared_queue",
                    st(Status::NotFound),
                )),
            }
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_dequeue_shared_queue",
        |mut c: Cx<'_>, id: i32, ret_ptr: i32, ret_len: i32| -> Res {
            guard!(c, "proxy_dequeue_shared_queue");
            let h = c.data_mut();
            let Some(w) = h.world.as_deref_mut() else {
                return Ok(st(Status::InternalFailure));
            };
            let idx = (id as u32 as usize).wrapping_sub(1);
            match w.shared.queues.get_mut(idx) {
                None => Ok(finish(
                    &mut c,
                    "proxy_dequeue_shared_queue",
                    st(Status::NotFound),
                )),
                Some(q) => match q.items.pop_front() {
                    None => Ok(st(Status::Empty)),
                    Some(v) => copy_out(&mut c, &v, ret_ptr, ret_len),
                },
            }
        },
    )?;
    Ok(())
}

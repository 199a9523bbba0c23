//! Stream control, deferred until the callback returns: `proxy_continue_stream`,
//! `proxy_close_stream`, `proxy_send_local_response` (Envoy `context.cc` `continueStream`,
//! `closeStream`, `sendLocalResponse`; cpp-host `src/exports.cc`; abi-host §1.5).

use wasmtime::Linker;

use super::header_maps::to_pairs;
use super::{lossy, Res};
use crate::abi::Status;
use crate::host_calls::memory::{read, INVALID};
use crate::host_calls::{enter, finish, st, Cx};
use crate::host_state::{Deferred, LocalReply, VmHost};

pub(super) fn register(l: &mut Linker<VmHost>) -> wasmtime::Result<()> {
    l.func_wrap(
        "env",
        "proxy_continue_stream",
        |mut c: Cx<'_>, ty: i32| -> Res {
            guard!(c, "proxy_continue_stream");
            if !(0..=1).contains(&ty) {
                return Ok(finish(
                    &mut c,
                    "proxy_continue_stream",
                    st(Status::BadArgument),
                ));
            }
            if c.data().effective_is_stream() {
                if let Some(s) = c.data_mut().stream.as_deref_mut() {
                    s.deferred.push(Deferred::Continue(ty));
                }
            }
            Ok(0)
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_close_stream",
        |mut c: Cx<'_>, ty: i32| -> Res {
            guard!(c, "proxy_close_stream");
            if !(0..=3).contains(&ty) {
                return Ok(finish(
                    &mut c,
                    "proxy_close_stream",
                    st(Status::BadArgument),
                ));
            }
            if c.data().effective_is_stream() {
                if let Some(s) = c.data_mut().stream.as_deref_mut() {
                    s.deferred.push(Deferred::Close(ty));
                }
            }
            Ok(0)
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_send_local_response",
        |mut c: Cx<'_>,
         status: i32,
         dp: i32,
         dl: i32,
         bp: i32,
         bl: i32,
         hp: i32,
         hl: i32,
         grpc: i32|
         -> Res {
            guard!(c, "proxy_send_local_response");
            let (Some(details), Some(body), Some(hdrs)) = (
                read(&mut c, dp, dl),
                read(&mut c, bp, bl),
                read(&mut c, hp, hl),
            ) else {
                return Ok(INVALID);
            };
            let plugin = c.data().log_source();
            if c.data().effective_is_stream() {
                if let Some(s) = c.data_mut().stream.as_deref_mut() {
                    s.deferred.push(Deferred::LocalReply(LocalReply {
                        status: status as u32,
                        details: lossy(&details),
                        body,
                        headers: to_pairs(&hdrs),
                        grpc_status: (0..=16).contains(&grpc).then_some(grpc),
                        plugin,
                    }));
                }
            }
            Ok(0)
        },
    )?;
    Ok(())
}

//! Callouts: `proxy_http_call`, `proxy_grpc_{call,stream,send,cancel,close}` and
//! `proxy_get_status`, the status of the last callout (Envoy `context.cc` `httpCall`, `grpcCall`,
//! `onHttpCallFailure`, `getStatus`; cpp-host `src/exports.cc` `http_call`; abi-host §1.5).

use wasmtime::Linker;

use super::header_maps::to_pairs;
use super::{lossy, Res};
use crate::abi::Status;
use crate::host_calls::memory::{copy_out, read, write_u32, INVALID};
use crate::host_calls::{enter, finish, st, Cx};
use crate::host_state::{HttpCallScript, PendingHttpCall, VmHost};

pub(super) fn register(l: &mut Linker<VmHost>) -> wasmtime::Result<()> {
    l.func_wrap(
        "env",
        "proxy_http_call",
        |mut c: Cx<'_>,
         up: i32,
         ul: i32,
         hp: i32,
         hl: i32,
         bp: i32,
         bl: i32,
         tp: i32,
         tl: i32,
         _timeout: i32,
         ret: i32|
         -> Res {
            guard!(c, "proxy_http_call");
            let (Some(cluster), Some(hdrs), Some(_body), Some(_trl)) = (
                read(&mut c, up, ul),
                read(&mut c, hp, hl),
                read(&mut c, bp, bl),
                read(&mut c, tp, tl),
            ) else {
                return Ok(INVALID);
            };
            let cluster = lossy(&cluster);
            let hdrs = to_pairs(&hdrs);
            let has = |n: &str| hdrs.iter().any(|(k, v)| k == n && !v.is_empty());
            let h = c.data_mut();
            let Some(w) = h.world.as_deref_mut() else {
                return Ok(st(Status::InternalFailure));
            };
            let known = match &w.http_clusters {
                Some(list) => list.contains(&cluster),
                None => !cluster.is_empty(),
            };
            if !known || !has(":method") || !has(":path") || !has(":authority") {
                return Ok(finish(&mut c, "proxy_http_call", st(Status::BadArgument)));
            }
            let script = w
                .http_scripts
                .get_mut(&cluster)
                .and_then(|q| q.pop_front())
                .or_else(|| w.http_scripts.get_mut("").and_then(|q| q.pop_front()))
                .unwrap_or(HttpCallScript::Fail);
            // Tokens are per VM and type-tagged like metric ids (cpp-host `nextHttpCallId`).
            h.next_http_token += 4;
            let token = h.next_http_token;
            // The call belongs to the root context (cpp-host `http_call` uses `root_context()`).
            let root = h.contexts.get(&h.effective_ctx).copied().unwrap_or(0);
            h.http_calls.push(PendingHttpCall {
                token,
                root,
                script,
            });
            Ok(if write_u32(&mut c, ret, token) {
                0
            } else {
                INVALID
            })
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_grpc_call",
        |mut c: Cx<'_>,
         _a: i32,
         _b: i32,
         _p3: i32,
         _d: i32,
         _e: i32,
         _f: i32,
         _g: i32,
         _h: i32,
         _i: i32,
         _j: i32,
         _k: i32,
         _l: i32|
         -> Res {
            guard!(c, "proxy_grpc_call");
            // No gRPC upstreams in this model: Envoy's "send failed".
            Ok(finish(
                &mut c,
                "proxy_grpc_call",
                st(Status::InternalFailure),
            ))
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_grpc_stream",
        |mut c: Cx<'_>,
         _a: i32,
         _b: i32,
         _p3: i32,
         _d: i32,
         _e: i32,
         _f: i32,
         _g: i32,
         _h: i32,
         _i: i32|
         -> Res {
            guard!(c, "proxy_grpc_stream");
            Ok(finish(
                &mut c,
                "proxy_grpc_stream",
                st(Status::InternalFailure),
            ))
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_grpc_send",
        |mut c: Cx<'_>, _t: i32, _p: i32, _l: i32, _e: i32| -> Res {
            guard!(c, "proxy_grpc_send");
            Ok(finish(&mut c, "proxy_grpc_send", st(Status::NotFound)))
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_grpc_cancel",
        |mut c: Cx<'_>, _t: i32| -> Res {
            guard!(c, "proxy_grpc_cancel");
            Ok(finish(&mut c, "proxy_grpc_cancel", st(Status::NotFound)))
        },
    )?;
    l.func_wrap("env", "proxy_grpc_close", |mut c: Cx<'_>, _t: i32| -> Res {
        guard!(c, "proxy_grpc_close");
        Ok(finish(&mut c, "proxy_grpc_close", st(Status::NotFound)))
    })?;
    l.func_wrap(
        "env",
        "proxy_get_status",
        |mut c: Cx<'_>, code_ptr: i32, mp: i32, ml: i32| -> Res {
            guard!(c, "proxy_get_status");
            let (code, msg) = c.data().last_status.clone();
            if !write_u32(&mut c, code_ptr, code) {
                return Ok(INVALID);
            }
            copy_out(&mut c, msg.as_bytes(), mp, ml)
        },
    )?;
    Ok(())
}

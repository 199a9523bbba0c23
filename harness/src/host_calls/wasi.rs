//! The WASI functions Envoy 1.21–1.25 offer, with cpp-host's semantics (`src/exports.cc`
//! `wasi_unstable_*`; abi-host §1.7). Clocks read the virtual clock; `random_get` is a
//! deterministic xorshift so replays repeat exactly.

use wasmtime::Linker;

use super::memory::{read, write, write_u32, write_u64};
use super::{enter, Cx};
use crate::abi::LogLevel;
use crate::host_state::{LogEntry, LogSource, VmHost};

type Res = wasmtime::Result<i32>;

const BADF: i32 = 8;
const FAULT: i32 = 21;
const INVAL: i32 = 28;
const NOENT: i32 = 44;
const NOSYS: i32 = 52;
const NOTSUP: i32 = 58;

macro_rules! guard {
    ($c:expr, $name:literal) => {
        if let Some(s) = enter(&mut $c, $name, $name)? {
            return Ok(s);
        }
    };
}

fn log(c: &mut Cx<'_>, level: LogLevel, msg: String) {
    let source = c.data().log_source();
    if let Some(w) = c.data_mut().world() {
        if level >= w.log_level {
            w.logs.push(LogEntry {
                source: LogSource::Plugin(source),
                level,
                message: msg,
            });
        }
    }
}

pub(crate) fn register(
    l: &mut Linker<VmHost>,
    module: &str,
    names: &[&str],
) -> wasmtime::Result<()> {
    for name in names {
        match *name {
            "fd_write" => {
                l.func_wrap(
                    module,
                    "fd_write",
                    |mut c: Cx<'_>, fd: i32, iovs: i32, n: i32, ret: i32| -> Res {
                        guard!(c, "fd_write");
                        let mut text = Vec::new();
                        for i in 0..n.max(0) {
                            let Some(iov) = read(&mut c, iovs.wrapping_add(i.wrapping_mul(8)), 8)
                            else {
                                return Ok(FAULT);
                            };
                            let p = i32::from_le_bytes([iov[0], iov[1], iov[2], iov[3]]);
                            let len = i32::from_le_bytes([iov[4], iov[5], iov[6], iov[7]]);
                            let Some(b) = read(&mut c, p, len) else {
                                return Ok(FAULT);
                            };
                            text.extend_from_slice(&b);
                        }
                        let level = match fd {
                            1 => LogLevel::Info,
                            2 => LogLevel::Error,
                            _ => return Ok(BADF),
                        };
                        let written = text.len() as u32;
                        if text.last() == Some(&b'\n') {
                            text.pop();
                        }
                        log(&mut c, level, String::from_utf8_lossy(&text).into_owned());
                        Ok(if write_u32(&mut c, ret, written) {
                            0
                        } else {
                            FAULT
                        })
                    },
                )?;
            }
            "fd_read" => {
                l.func_wrap(
                    module,
                    "fd_read",
                    |mut c: Cx<'_>, _fd: i32, _iovs: i32, _n: i32, _ret: i32| -> Res {
                        guard!(c, "fd_read");
                        Ok(NOSYS)
                    },
                )?;
            }
            "fd_seek" => {
                l.func_wrap(
                    module,
                    "fd_seek",
                    |mut c: Cx<'_>, _fd: i32, _off: i64, _wh: i32, _ret: i32| -> Res {
                        guard!(c, "fd_seek");
                        log(&mut c, LogLevel::Error, "wasi_unstable fd_seek".into());
                        Ok(0)
                    },
                )?;
            }
            "fd_close" => {
                l.func_wrap(module, "fd_close", |mut c: Cx<'_>, _fd: i32| -> Res {
                    guard!(c, "fd_close");
                    log(&mut c, LogLevel::Error, "wasi_unstable fd_close".into());
                    Ok(0)
                })?;
            }
            "fd_fdstat_get" => {
                l.func_wrap(
                    module,
                    "fd_fdstat_get",
                    |mut c: Cx<'_>, fd: i32, ptr: i32| -> Res {
                        guard!(c, "fd_fdstat_get");
                        if fd != 1 && fd != 2 {
                            return Ok(BADF);
                        }
                        // 24-byte fdstat: filetype 0, flags 0, rights_base = FD_WRITE (64).
                        let mut stat = [0u8; 24];
                        stat[8..16].copy_from_slice(&64u64.to_le_bytes());
                        Ok(if write(&mut c, ptr, &stat) { 0 } else { FAULT })
                    },
                )?;
            }
            "environ_sizes_get" => {
                l.func_wrap(
                    module,
                    "environ_sizes_get",
                    |mut c: Cx<'_>, count: i32, size: i32| -> Res {
                        guard!(c, "environ_sizes_get");
                        let vars = &c.data().env_vars;
                        let n = vars.len() as u32;
                        let bytes: usize = vars.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
                        Ok(
                            if write_u32(&mut c, count, n) && write_u32(&mut c, size, bytes as u32)
                            {
                                0
                            } else {
                                FAULT
                            },
                        )
                    },
                )?;
            }
            "environ_get" => {
                l.func_wrap(
                    module,
                    "environ_get",
                    |mut c: Cx<'_>, ptrs: i32, buf: i32| -> Res {
                        guard!(c, "environ_get");
                        let vars = c.data().env_vars.clone();
                        let mut off = buf;
                        for (i, (k, v)) in vars.iter().enumerate() {
                            let entry = format!("{k}={v}\0");
                            if !write_u32(&mut c, ptrs.wrapping_add(4 * i as i32), off as u32)
                                || !write(&mut c, off, entry.as_bytes())
                            {
                                return Ok(FAULT);
                            }
                            off = off.wrapping_add(entry.len() as i32);
                        }
                        Ok(0)
                    },
                )?;
            }
            "args_sizes_get" => {
                l.func_wrap(
                    module,
                    "args_sizes_get",
                    |mut c: Cx<'_>, count: i32, size: i32| -> Res {
                        guard!(c, "args_sizes_get");
                        Ok(
                            if write_u32(&mut c, count, 0) && write_u32(&mut c, size, 0) {
                                0
                            } else {
                                FAULT
                            },
                        )
                    },
                )?;
            }
            "args_get" => {
                l.func_wrap(
                    module,
                    "args_get",
                    |mut c: Cx<'_>, _a: i32, _b: i32| -> Res {
                        guard!(c, "args_get");
                        Ok(0)
                    },
                )?;
            }
            "clock_time_get" => {
                l.func_wrap(
                    module,
                    "clock_time_get",
                    |mut c: Cx<'_>, id: i32, _precision: i64, ret: i32| -> Res {
                        guard!(c, "clock_time_get");
                        if id != 0 && id != 1 {
                            return Ok(NOTSUP);
                        }
                        // Realtime and monotonic both follow the virtual clock.
                        let now = c.data().world.as_deref().map(|w| w.now_ns).unwrap_or(0);
                        Ok(if write_u64(&mut c, ret, now as u64) {
                            0
                        } else {
                            FAULT
                        })
                    },
                )?;
            }
            "random_get" => {
                l.func_wrap(
                    module,
                    "random_get",
                    |mut c: Cx<'_>, buf: i32, len: i32| -> Res {
                        guard!(c, "random_get");
                        let len = len as u32 as usize;
                        if len > 64 * 1024 {
                            return Ok(INVAL);
                        }
                        let mut bytes = vec![0u8; len];
                        if let Some(w) = c.data_mut().world() {
                            for chunk in bytes.chunks_mut(8) {
                                let mut x = w.random_state;
                                x ^= x << 13;
                                x ^= x >> 7;
                                x ^= x << 17;
                                w.random_state = x;
                                chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
                            }
                        }
                        Ok(if write(&mut c, buf, &bytes) { 0 } else { FAULT })
                    },
                )?;
            }
            "proc_exit" => {
                l.func_wrap(
                    module,
                    "proc_exit",
                    |mut c: Cx<'_>, _code: i32| -> wasmtime::Result<()> {
                        if enter(&mut c, "proc_exit", "proc_exit")?.is_some() {
                            return Ok(());
                        }
                        // cpp-host logs and returns; the guest then reaches `unreachable`.
                        log(&mut c, LogLevel::Error, "wasi_unstable proc_exit".into());
                        Ok(())
                    },
                )?;
            }
            "path_open" => {
                l.func_wrap(
                    module,
                    "path_open",
                    |mut c: Cx<'_>,
                     _a: i32,
                     _b: i32,
                     _p: i32,
                     _l: i32,
                     _o: i32,
                     _r: i64,
                     _ri: i64,
                     _f: i32,
                     _ret: i32|
                     -> Res {
                        guard!(c, "path_open");
                        Ok(NOENT)
                    },
                )?;
            }
            "fd_prestat_get" => {
                l.func_wrap(
                    module,
                    "fd_prestat_get",
                    |mut c: Cx<'_>, _fd: i32, _p: i32| -> Res {
                        guard!(c, "fd_prestat_get");
                        Ok(BADF)
                    },
                )?;
            }
            "fd_prestat_dir_name" => {
                l.func_wrap(
                    module,
                    "fd_prestat_dir_name",
                    |mut c: Cx<'_>, _fd: i32, _p: i32, _l: i32| -> Res {
                        guard!(c, "fd_prestat_dir_name");
                        Ok(NOSYS)
                    },
                )?;
            }
            _ => {}
        }
    }
    Ok(())
}

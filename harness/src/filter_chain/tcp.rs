//! The TCP connection driver (abi-host §1.4): `proxy_on_new_connection` in chain order, data
//! chunks spread evenly over the connection's duration on the virtual clock (downstream data in
//! chain order, upstream data in reverse, like Envoy's read/write filters), ticks in between, the
//! upstream close after the last upstream data, then per plugin downstream close → `on_done` →
//! `on_log` → `on_delete`.

use std::sync::Arc;

use super::Cb;
use crate::abi::Action;
use crate::host_state::{Deferred, Facts};
use crate::metadata_exchange as mx;
use crate::proxy::{context_of, ChainEntry, Proxy, TcpOutcome};
use crate::stream::{Direction, MxOutcome, TcpConnection};

/// `proxy_peer_type_t` REMOTE: the client closed.
const PEER_REMOTE: i32 = 2;
const PEER_UNKNOWN: i32 = 0;

impl Proxy {
    /// Runs one TCP connection through the network chain of its direction.
    pub fn run_tcp(&mut self, c: &TcpConnection) -> TcpOutcome {
        if self.refuse_after_stop() {
            return TcpOutcome::default();
        }
        self.advance_to(c.start_ns);
        let chain: Arc<[ChainEntry]> = self
            .network_chains
            .get(&context_of(c.direction))
            .cloned()
            .unwrap_or_else(|| Arc::from(Vec::new()));
        self.records.clear();
        self.traps.clear();
        let plugins: Vec<usize> = chain
            .iter()
            .filter_map(|e| {
                if let ChainEntry::Wasm(p) = e {
                    Some(*p)
                } else {
                    None
                }
            })
            .collect();
        for &p in &plugins {
            self.plugins[p].stream_ctx = 0;
            self.plugins[p].skip =
                self.vms[self.plugins[p].vm].poisoned.is_some() && self.plugins[p].fail_open;
        }
        {
            let s = self.stream_mut();
            s.reset();
            s.facts = Facts::Tcp(c as *const TcpConnection);
            s.routed = true;
        }
        let mut out = TcpOutcome::default();
        let mut closed = false;

        for &p in &plugins {
            if !closed && !self.plugins[p].skip {
                closed |= self.tcp_call(p, Cb::NewConnection);
            }
        }

        let n = c.chunks as u64;
        let dur = c.duration_ns.max(0) as i128;
        let at = |num: u64, den: u64| -> i64 {
            if den == 0 {
                return c.start_ns;
            }
            c.start_ns
                .saturating_add((dur * num as i128 / den as i128) as i64)
        };
        let split = |total: u64, k: u64| -> u64 {
            let base = total / n.max(1);
            if k + 1 == n {
                total - base * (n - 1)
            } else {
                base
            }
        };
        let mx_done = |proxy: &mut Proxy| {
            if c.mx != MxOutcome::None {
                let s = proxy.stream_mut();
                mx::on_tcp_exchange(
                    c.direction,
                    c.peer.as_ref(),
                    c.mx == MxOutcome::Found,
                    &mut s.filter_state,
                );
            }
        };
        for k in 0..n {
            if closed {
                break;
            }
            let last = k + 1 == n;
            // Downstream chunk k at (2k+1)/2n of the duration, upstream chunk k at (2k+2)/2n.
            self.advance_to(at(2 * k + 1, 2 * n));
            if k == 0 && c.direction == Direction::Inbound {
                mx_done(self);
            }
            let size = split(c.received_bytes, k);
            self.stream_mut().bytes_received += size;
            for &p in &plugins {
                if closed || self.plugins[p].skip {
                    continue;
                }
                self.load_data(size, 2);
                closed |= self.tcp_call(p, Cb::DownstreamData(size as i32, last));
            }
            if closed {
                break;
            }
            self.advance_to(at(2 * k + 2, 2 * n));
            if k == 0 && c.direction != Direction::Inbound {
                mx_done(self);
            }
            let size = split(c.sent_bytes, k);
            self.stream_mut().bytes_sent += size;
            for &p in plugins.iter().rev() {
                if closed || self.plugins[p].skip {
                    continue;
                }
                self.load_data(size, 3);
                closed |= self.tcp_call(p, Cb::UpstreamData(size as i32, last));
                if last && !closed && !self.plugins[p].skip {
                    // Envoy's only upstream-close hook: an upstream write with end_stream.
                    closed |= self.tcp_call(p, Cb::UpstreamClose(PEER_UNKNOWN));
                }
            }
        }
        if n == 0 {
            mx_done(self);
        }
        self.advance_to(c.start_ns.saturating_add(c.duration_ns.max(0)));
        {
            let s = self.stream_mut();
            s.buffer_type = None;
            s.buffer.clear();
        }
        // Close: per plugin, downstream close → done → log → delete (Envoy `onCloseTCP`).
        for &p in &plugins {
            if !self.plugins[p].skip {
                self.tcp_call(p, Cb::DownstreamClose(PEER_REMOTE));
            }
            if !self.plugins[p].skip {
                self.tcp_call(p, Cb::Done);
            }
            if !self.plugins[p].skip {
                self.stream_mut().log_phase = true;
                self.tcp_call(p, Cb::Log);
            }
            if !self.plugins[p].skip && self.plugins[p].stream_ctx != 0 {
                self.tcp_call(p, Cb::Delete);
            }
            let (vi, ctx) = (self.plugins[p].vm, self.plugins[p].stream_ctx);
            if ctx != 0 {
                self.vms[vi].store.data_mut().contexts.remove(&ctx);
                self.plugins[p].stream_ctx = 0;
            }
        }
        let s = self.stream_mut();
        out.filter_state = std::mem::take(&mut s.filter_state);
        s.facts = Facts::None;
        out.closed_by_plugin = closed;
        out.traps = self.take_traps();
        if self.trace {
            out.callbacks = std::mem::take(&mut self.records);
        }
        out
    }

    fn load_data(&mut self, size: u64, buffer_type: i32) {
        let s = self.stream_mut();
        s.buffer.clear();
        s.buffer.resize(size as usize, 0);
        s.buffer_type = Some(buffer_type);
    }

    /// One network callback; returns true when the connection is closed as a result (a plugin
    /// closed it, or a fail-closed plugin failed).
    fn tcp_call(&mut self, p: usize, cb: Cb) -> bool {
        self.stream_mut().deferred.clear();
        let r = self.stream_call(p, cb);
        self.stream_mut().buffer_type = None;
        match r {
            Ok(action) => {
                let deferred = std::mem::take(&mut self.stream_mut().deferred);
                let closed = deferred.iter().any(|d| matches!(d, Deferred::Close(_)));
                // A paused connection that nobody resumes simply stops forwarding; the harness
                // keeps delivering the recorded data (it did flow on the real proxy).
                let _ = action.map(Action::from_i32);
                closed
            }
            Err(e) => self.failed(p, e),
        }
    }
}

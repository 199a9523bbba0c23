//! `Proxy::reload` on the harness test plugin (which logs every root callback): the old root is
//! shut down the cpp-host way (`proxy_on_done`, then `proxy_on_delete` since it returns true),
//! the new root starts and configures in a new VM or in the running one, and the tick timer
//! restarts from the reload instant.

mod common;
use common::*;

use envoyfilter_model::chain::Context;
use harness::stream::{Direction, Reload};

const MS: i64 = 1_000_000;

fn ticks(p: &harness::proxy::Proxy) -> Vec<String> {
    with_prefix(p, "a", "cb on_tick ")
}

#[test]
fn reload_into_a_new_vm_shuts_the_old_root_down_and_restarts_the_timer() {
    let mut p = loaded(
        Context::SidecarInbound,
        vec![wasm("a", "tick=1000"), router()],
    );
    p.set_clock(T0);
    let (vm0, root0) = (p.plugins()[0].vm, p.plugins()[0].root_ctx);
    p.run_http(&exchange(Direction::Inbound));
    p.clear_logs();

    p.reload(&Reload {
        at_ns: T0 + 500 * MS,
        new_vm: true,
    })
    .expect("reload");
    let (vm1, root1) = (p.plugins()[0].vm, p.plugins()[0].root_ctx);
    assert_ne!(vm1, vm0, "a new VM");
    let log = lines(&p, "a");
    let done = log
        .iter()
        .position(|l| *l == format!("cb root_on_done {root0}"))
        .unwrap_or_else(|| panic!("{log:#?}"));
    let start = log
        .iter()
        .position(|l| l.starts_with(&format!("cb on_vm_start {root1} ")))
        .unwrap_or_else(|| panic!("{log:#?}"));
    let configure = log
        .iter()
        .position(|l| l.starts_with(&format!("cb on_configure {root1} ")))
        .unwrap_or_else(|| panic!("{log:#?}"));
    assert!(done < start && start < configure, "{log:#?}");
    // The old VM is retired, not the new one.
    assert!(p.poisoned(0).is_none());

    // The old root would have ticked at 1 s; the new one ticks at 1.5 s, 2.5 s …
    let mut x = exchange(Direction::Inbound);
    x.start_ns = T0 + 1200 * MS;
    p.clear_logs();
    p.run_http(&x);
    assert_eq!(ticks(&p), Vec::<String>::new());
    x.start_ns = T0 + 1600 * MS;
    p.run_http(&x);
    assert_eq!(
        ticks(&p),
        vec![format!("cb on_tick {root1} {}", T0 + 1500 * MS)]
    );
}

#[test]
fn reload_into_the_running_vm_creates_a_new_root_there() {
    let mut p = loaded(
        Context::SidecarInbound,
        vec![wasm("a", "tick=1000"), router()],
    );
    p.set_clock(T0);
    let (vm0, root0) = (p.plugins()[0].vm, p.plugins()[0].root_ctx);
    p.reload(&Reload {
        at_ns: T0 + 100 * MS,
        new_vm: false,
    })
    .expect("reload");
    let (vm1, root1) = (p.plugins()[0].vm, p.plugins()[0].root_ctx);
    assert_eq!(vm1, vm0, "the same VM");
    assert!(root1 > root0, "a new root context id: {root0} → {root1}");
    assert!(has_line(&p, "a", &format!("cb root_on_done {root0}")));
    assert!(lines(&p, "a")
        .iter()
        .any(|l| l.starts_with(&format!("cb on_configure {root1} "))));
    // One timer only, the new root's: 1.1 s, 2.1 s.
    p.clear_logs();
    let mut x = exchange(Direction::Inbound);
    x.start_ns = T0 + 2200 * MS;
    p.run_http(&x);
    assert_eq!(
        ticks(&p),
        vec![
            format!("cb on_tick {root1} {}", T0 + 1100 * MS),
            format!("cb on_tick {root1} {}", T0 + 2100 * MS),
        ]
    );
}

#[test]
fn nothing_runs_after_a_stop_inside_an_open_stream() {
    let mut p = loaded(
        Context::SidecarInbound,
        vec![wasm("a", "tick=1000"), router()],
    );
    let mut x = exchange(Direction::Inbound);
    x.duration_ns = 3000 * MS;
    let plan = harness::stream::HttpPlan {
        stop_after_ns: Some(1500 * MS),
        ..Default::default()
    };
    p.run_http_planned(&x, &plan);
    let open = p.open_stream().expect("stopped inside the stream").to_vec();
    assert_eq!(open.len(), 1, "one Wasm filter, one context");
    // The stream's headers passed (end_stream false), nothing ended it: no on_log, no on_done.
    let log = lines(&p, "a");
    assert!(!log.iter().any(|l| l.starts_with("cb on_log")), "{log:#?}");
    assert!(!log.iter().any(|l| l.starts_with("cb on_done")), "{log:#?}");
    assert_eq!(p.now(), T0 + 1500 * MS);
    // Further streams and reloads are refused, with a reason.
    let out = p.run_http(&exchange(Direction::Inbound));
    assert_eq!(out.response_code, None);
    assert!(p
        .reload(&Reload {
            at_ns: T0 + 2000 * MS,
            new_vm: true
        })
        .is_err());
    assert_eq!(p.now(), T0 + 1500 * MS, "the clock stays at the stop");
}

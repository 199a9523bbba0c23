//! Root shutdown of istio.stats without `proxy_on_done`.
//!
//! Istio's root `onDone` warns when connections are still in its request queue (release-1.16
//! `extensions/stats/plugin.cc` `PluginRootContext::onDone`: "Request queue is not empty,
//! dropping requests"). Our module does not export `proxy_on_done` (Envoy would otherwise enter
//! the VM for it once per stream, for nothing): cpp-host then answers true itself
//! (`ContextBase::onDone`) and `WasmBase::startShutdown` calls the root's `onDelete` at once, so
//! the module gives the same warning there. This drives the module directly: only `proxy_log`
//! is bound (every other import traps, so the callbacks here make no other host call).

use wasmtime::{Caller, Engine, Instance, Linker, Module, Store, TypedFunc};

type Logs = Vec<(i32, String)>;

fn instantiate() -> (Store<Logs>, Instance) {
    let path = xtask::plugins::plugin_path("stats_plugin.wasm");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let engine = Engine::default();
    let module = Module::new(&engine, bytes).expect("compiles");
    let mut linker: Linker<Logs> = Linker::new(&engine);
    linker
        .func_wrap(
            "env",
            "proxy_log",
            |mut c: Caller<'_, Logs>, level: i32, ptr: i32, len: i32| -> i32 {
                let mem = c
                    .get_export("memory")
                    .and_then(|e| e.into_memory())
                    .expect("memory");
                let (p, l) = (ptr as u32 as usize, len as u32 as usize);
                let text = String::from_utf8_lossy(&mem.data(&c)[p..p + l]).into_owned();
                c.data_mut().push((level, text));
                0
            },
        )
        .expect("proxy_log");
    linker
        .define_unknown_imports_as_traps(&module)
        .expect("stub imports");
    let mut store = Store::new(&engine, Logs::new());
    let instance = linker
        .instantiate(&mut store, &module)
        .expect("instantiates");
    let init: TypedFunc<(), ()> = instance
        .get_typed_func(&mut store, "_initialize")
        .expect("_initialize");
    init.call(&mut store, ()).expect("_initialize");
    (store, instance)
}

fn call<P: wasmtime::WasmParams, R: wasmtime::WasmResults>(
    store: &mut Store<Logs>,
    instance: &Instance,
    name: &str,
    args: P,
) -> R {
    let f: TypedFunc<P, R> = instance
        .get_typed_func(&mut *store, name)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    f.call(&mut *store, args)
        .unwrap_or_else(|e| panic!("{name} trapped: {e:?}"))
}

const WARN: i32 = 3;

#[test]
fn deleting_a_root_warns_of_its_queued_connections_only() {
    let (mut store, instance) = instantiate();
    let s = &mut store;
    assert!(
        instance.get_func(&mut *s, "proxy_on_done").is_none(),
        "proxy_on_done is not exported (cpp-host answers true for it)"
    );
    // Root 1 with two open TCP connections (2, 3: queued for periodic reports since
    // `proxy_on_new_connection`) and one HTTP stream that never got response headers (4: not
    // queued); root 5 with one open connection (6).
    call::<_, ()>(s, &instance, "proxy_on_context_create", (1, 0));
    call::<_, ()>(s, &instance, "proxy_on_context_create", (5, 0));
    for (stream, root) in [(2, 1), (3, 1), (4, 1), (6, 5)] {
        call::<_, ()>(s, &instance, "proxy_on_context_create", (stream, root));
    }
    for stream in [2, 3, 6] {
        assert_eq!(
            call::<_, i32>(s, &instance, "proxy_on_new_connection", (stream,)),
            0
        );
    }
    assert!(
        s.data().is_empty(),
        "no log before shutdown: {:?}",
        s.data()
    );

    // Shutdown of root 1: its two queued connections, not root 5's.
    call::<_, ()>(s, &instance, "proxy_on_delete", (1,));
    assert_eq!(
        s.data().as_slice(),
        [(
            WARN,
            "istio.stats: request queue is not empty, dropping 2 streams".to_string()
        )]
    );
    s.data_mut().clear();

    // Root 1's streams went with it: deleting one now is a stray id, silently ignored.
    call::<_, ()>(s, &instance, "proxy_on_delete", (2,));
    assert!(s.data().is_empty(), "{:?}", s.data());

    // A stream deleted before its root leaves the queue: root 5 then has nothing queued.
    call::<_, ()>(s, &instance, "proxy_on_delete", (6,));
    call::<_, ()>(s, &instance, "proxy_on_delete", (5,));
    assert!(s.data().is_empty(), "{:?}", s.data());
}

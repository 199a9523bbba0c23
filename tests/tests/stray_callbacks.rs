//! Callbacks for context ids the module never saw must not trap: in Envoy a trap poisons the
//! VM and every later request on that worker fails. The Rust SDK's dispatcher `panic!`s on them
//! ("invalid context_id", "invalid root_context_id"); both plugins dispatch themselves and
//! ignore them. Every import is bound to a trap here, so the test also shows that a stray
//! callback makes no host call at all.

use wasmtime::{Engine, Instance, Linker, Module, Store, TypedFunc};

fn instantiate(file: &str) -> (Store<()>, Instance) {
    let path = xtask::plugins::plugin_path(file);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let engine = Engine::default();
    let module = Module::new(&engine, bytes).expect("compiles");
    let mut linker = Linker::new(&engine);
    linker
        .define_unknown_imports_as_traps(&module)
        .expect("stub imports");
    let mut store = Store::new(&engine, ());
    let instance = linker
        .instantiate(&mut store, &module)
        .expect("instantiates");
    let init: TypedFunc<(), ()> = instance
        .get_typed_func(&mut store, "_initialize")
        .expect("_initialize");
    init.call(&mut store, ())
        .expect("_initialize makes no host call");
    (store, instance)
}

fn call<P: wasmtime::WasmParams, R: wasmtime::WasmResults>(
    store: &mut Store<()>,
    instance: &Instance,
    name: &str,
    args: P,
) -> Option<R> {
    // A callback the module does not export is skipped by Envoy; nothing to check then.
    let f: TypedFunc<P, R> = instance.get_typed_func(&mut *store, name).ok()?;
    Some(
        f.call(&mut *store, args)
            .unwrap_or_else(|e| panic!("{name} trapped: {e:?}")),
    )
}

#[test]
fn callbacks_for_unknown_contexts_are_ignored_without_a_trap() {
    for (_, file) in xtask::plugins::PLUGINS {
        let (mut store, instance) = instantiate(file);
        let s = &mut store;
        // A stream whose root was never created, then callbacks on ids never created at all.
        call::<(i32, i32), ()>(s, &instance, "proxy_on_context_create", (7, 3));
        assert_eq!(
            call::<(i32, i32), i32>(s, &instance, "proxy_on_configure", (3, 0)),
            Some(1),
            "{file}: configure of an unknown root still answers true"
        );
        assert_eq!(
            call::<(i32, i32, i32), i32>(s, &instance, "proxy_on_request_headers", (7, 0, 0)),
            Some(0),
            "{file}: Continue"
        );
        call::<(i32, i32, i32), i32>(s, &instance, "proxy_on_response_headers", (7, 0, 1));
        call::<(i32,), ()>(s, &instance, "proxy_on_log", (7,));
        call::<(i32,), i32>(s, &instance, "proxy_on_done", (7,));
        call::<(i32,), ()>(s, &instance, "proxy_on_delete", (7,));
        call::<(i32,), ()>(s, &instance, "proxy_on_delete", (3,));
        call::<(i32,), ()>(s, &instance, "proxy_on_tick", (3,));
        call::<(i32,), i32>(s, &instance, "proxy_on_new_connection", (9,));
    }
}

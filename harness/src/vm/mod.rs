//! Loading modules the way Envoy's cpp-host does (`WasmBase::load`, `V8::link`,
//! `WasmBase::getFunctions`, `startVm`), instances, and calling exports with trap handling.

pub mod cache;
pub mod watchdog;

use wasmtime::{
    Extern, ExternType, FuncType, Instance, Linker, Module, Store, TypedFunc, ValType,
    WasmBacktrace,
};

use crate::host_calls::RestrictedCallback;
use crate::host_state::{Phase, Restriction, StreamState, VmHost, World};

/// Proxy-Wasm ABI versions cpp-host recognises by their marker export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AbiVersion {
    V0_1_0,
    V0_2_0,
    V0_2_1,
}

fn val_name(t: &ValType) -> &'static str {
    match t {
        ValType::I32 => "i32",
        ValType::I64 => "i64",
        ValType::F32 => "f32",
        ValType::F64 => "f64",
        ValType::Ref(r) if r.heap_type().is_extern() => "externref",
        ValType::Ref(_) => "funcref",
        _ => "unknown",
    }
}

/// cpp-host `printValTypes`: space-separated, `void` when empty.
fn print_types(types: impl ExactSizeIterator<Item = ValType>) -> String {
    if types.len() == 0 {
        return "void".into();
    }
    types.map(|t| val_name(&t)).collect::<Vec<_>>().join(" ")
}

fn same_types(a: &FuncType, b: &FuncType) -> bool {
    let eq = |x: ValType, y: ValType| val_name(&x) == val_name(&y);
    a.params().len() == b.params().len()
        && a.results().len() == b.results().len()
        && a.params().zip(b.params()).all(|(x, y)| eq(x, y))
        && a.results().zip(b.results()).all(|(x, y)| eq(x, y))
}

/// Exports the host calls, with the wasm types cpp-host expects (ABI 0.2.x). `i` = i32 param.
const EXPORT_SIGS: &[(&str, usize, bool)] = &[
    ("_initialize", 0, false),
    ("_start", 0, false),
    ("main", 2, true),
    ("malloc", 1, true),
    ("proxy_on_memory_allocate", 1, true),
    ("proxy_on_context_create", 2, false),
    ("proxy_on_vm_start", 2, true),
    ("proxy_on_configure", 2, true),
    ("proxy_on_tick", 1, false),
    ("proxy_on_queue_ready", 2, false),
    ("proxy_on_new_connection", 1, true),
    ("proxy_on_downstream_data", 3, true),
    ("proxy_on_upstream_data", 3, true),
    ("proxy_on_downstream_connection_close", 2, false),
    ("proxy_on_upstream_connection_close", 2, false),
    ("proxy_on_request_headers", 3, true),
    ("proxy_on_request_body", 3, true),
    ("proxy_on_request_trailers", 2, true),
    ("proxy_on_response_headers", 3, true),
    ("proxy_on_response_body", 3, true),
    ("proxy_on_response_trailers", 2, true),
    ("proxy_on_http_call_response", 5, false),
    ("proxy_on_foreign_function", 3, false),
    ("proxy_on_done", 1, true),
    ("proxy_on_log", 1, false),
    ("proxy_on_delete", 1, false),
];

/// Envoy's load-time checks, in cpp-host's order. Returns the ABI version or Envoy's message.
pub fn validate(
    module: &Module,
    linker: &Linker<VmHost>,
    probe: &mut Store<VmHost>,
) -> Result<AbiVersion, String> {
    // 1. ABI marker: the first function export named proxy_abi_version_* (bytecode_util.cc).
    let abi = module
        .exports()
        .filter(|e| matches!(e.ty(), ExternType::Func(_)))
        .find_map(|e| match e.name() {
            "proxy_abi_version_0_1_0" => Some(AbiVersion::V0_1_0),
            "proxy_abi_version_0_2_0" => Some(AbiVersion::V0_2_0),
            "proxy_abi_version_0_2_1" => Some(AbiVersion::V0_2_1),
            _ => None,
        })
        .ok_or_else(|| "Missing or unknown Proxy-Wasm ABI version".to_string())?;
    if abi == AbiVersion::V0_1_0 {
        return Err("Proxy-Wasm ABI 0.1.0 modules are not supported by this harness".into());
    }
    // 2. Link: every import must be a registered host function of the same type (V8::link).
    for imp in module.imports() {
        let missing = || {
            format!(
                "Failed to load Wasm module due to a missing import: {}.{}",
                imp.module(),
                imp.name()
            )
        };
        let ExternType::Func(want) = imp.ty() else {
            return Err(missing());
        };
        if abi == AbiVersion::V0_2_0 && imp.module() == "env" && imp.name() == "proxy_get_log_level"
        {
            return Err(missing());
        }
        let Some(Extern::Func(f)) = linker.get_by_import(&mut *probe, &imp) else {
            return Err(missing());
        };
        let have = f.ty(&*probe);
        if !same_types(&want, &have) {
            return Err(format!(
                "Failed to load Wasm module due to an import type mismatch: {}.{}, want: {} -> {}, but host exports: {} -> {}",
                imp.module(),
                imp.name(),
                print_types(want.params()),
                print_types(want.results()),
                print_types(have.params()),
                print_types(have.results()),
            ));
        }
    }
    // 3. getFunctions: allocator, then each known export's signature.
    let has_func = |n: &str| matches!(module.get_export(n), Some(ExternType::Func(_)));
    if !has_func("malloc") && !has_func("proxy_on_memory_allocate") {
        return Err("Wasm module is missing malloc function.".into());
    }
    for (name, params, ret) in EXPORT_SIGS {
        let Some(ExternType::Func(ft)) = module.get_export(name) else {
            continue;
        };
        let ok = ft.params().len() == *params
            && ft.params().all(|p| matches!(p, ValType::I32))
            && ft.results().len() == *ret as usize
            && ft.results().all(|p| matches!(p, ValType::I32));
        if !ok {
            let want_p = if *params == 0 {
                "void".to_string()
            } else {
                vec!["i32"; *params].join(" ")
            };
            let want_r = if *ret { "i32" } else { "void" };
            return Err(format!(
                "Bad function signature for: {name}, want: {want_p} -> {want_r}, but the module exports: {} -> {}",
                print_types(ft.params()),
                print_types(ft.results())
            ));
        }
    }
    if !matches!(module.get_export("memory"), Some(ExternType::Memory(_))) {
        return Err("Wasm module does not export memory".into());
    }
    Ok(abi)
}

type F1 = TypedFunc<i32, ()>;
type F1R = TypedFunc<i32, i32>;
type F2 = TypedFunc<(i32, i32), ()>;
type F2R = TypedFunc<(i32, i32), i32>;
type F3 = TypedFunc<(i32, i32, i32), ()>;
type F3R = TypedFunc<(i32, i32, i32), i32>;
type F5 = TypedFunc<(i32, i32, i32, i32, i32), ()>;

/// The module's callbacks (`None` = not exported: the host skips the call, like cpp-host).
#[derive(Default)]
pub struct Exports {
    pub initialize: Option<TypedFunc<(), ()>>,
    pub start: Option<TypedFunc<(), ()>>,
    pub main: Option<F2R>,
    pub on_context_create: Option<F2>,
    pub on_vm_start: Option<F2R>,
    pub on_configure: Option<F2R>,
    pub on_tick: Option<F1>,
    pub on_queue_ready: Option<F2>,
    pub on_new_connection: Option<F1R>,
    pub on_downstream_data: Option<F3R>,
    pub on_upstream_data: Option<F3R>,
    pub on_downstream_connection_close: Option<F2>,
    pub on_upstream_connection_close: Option<F2>,
    pub on_request_headers: Option<F3R>,
    pub on_request_body: Option<F3R>,
    pub on_request_trailers: Option<F2R>,
    pub on_response_headers: Option<F3R>,
    pub on_response_body: Option<F3R>,
    pub on_response_trailers: Option<F2R>,
    pub on_http_call_response: Option<F5>,
    pub on_foreign_function: Option<F3>,
    pub on_done: Option<F1R>,
    pub on_log: Option<F1>,
    pub on_delete: Option<F1>,
}

/// A trap (or an overrun deadline, or a restricted call) inside a callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrapReport {
    pub plugin: String,
    pub callback: String,
    pub message: String,
    /// The wasm backtrace, innermost frame first.
    pub backtrace: Vec<String>,
}

impl std::fmt::Display for TrapReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Envoy's wording: "Function: proxy_on_… failed: …" + "Proxy-Wasm plugin in-VM backtrace:".
        write!(
            f,
            "Plugin {}: Function: {} failed: {}",
            self.plugin, self.callback, self.message
        )?;
        if !self.backtrace.is_empty() {
            write!(f, "\nProxy-Wasm plugin in-VM backtrace:")?;
            for (i, fr) in self.backtrace.iter().enumerate() {
                write!(f, "\n  {i}: {fr}")?;
            }
        }
        Ok(())
    }
}

pub fn trap_report(err: &wasmtime::Error, plugin: &str, callback: &str) -> TrapReport {
    let message = if let Some(r) = err.downcast_ref::<RestrictedCallback>() {
        format!("restricted_callback ({} called during VM start)", r.0)
    } else if let Some(t) = err.downcast_ref::<wasmtime::Trap>() {
        format!("Uncaught RuntimeError: {t}")
    } else {
        format!("{}", err.root_cause())
    };
    let backtrace = err
        .downcast_ref::<WasmBacktrace>()
        .map(|bt| {
            bt.frames()
                .iter()
                .map(|fr| match fr.func_name() {
                    Some(n) => n.to_string(),
                    None => format!("wasm-function[{}]", fr.func_index()),
                })
                .collect()
        })
        .unwrap_or_default();
    TrapReport {
        plugin: plugin.to_string(),
        callback: callback.to_string(),
        message,
        backtrace,
    }
}

/// One VM instance.
pub struct Vm {
    pub store: Store<VmHost>,
    pub instance: Instance,
    pub ex: Exports,
    /// Set after a trap: Envoy marks the VM failed (`FailState::RuntimeError`) and never
    /// restarts it before Envoy 1.33.
    pub poisoned: Option<TrapReport>,
    /// (vm_id, vm_configuration, code key): cpp-host `makeVmKey`.
    pub key: (String, Vec<u8>, String),
    pub deadline_ticks: u64,
}

fn get<P: wasmtime::WasmParams, R: wasmtime::WasmResults>(
    inst: &Instance,
    store: &mut Store<VmHost>,
    name: &str,
) -> Option<TypedFunc<P, R>> {
    inst.get_typed_func::<P, R>(&mut *store, name).ok()
}

impl Vm {
    /// Instantiates a validated module and runs `_initialize` (+ `main(0,0)`) or `_start` under the
    /// profile's start restrictions. An error is a [`TrapReport`] for callback `_initialize`.
    pub fn instantiate(
        linker: &Linker<VmHost>,
        module: &Module,
        host: VmHost,
        key: (String, Vec<u8>, String),
        world: &mut Option<Box<World>>,
        deadline_ticks: u64,
    ) -> Result<Vm, TrapReport> {
        let vm_id = host.vm_id.clone();
        let mut store = Store::new(module.engine(), host);
        store.set_epoch_deadline(deadline_ticks);
        let instance = linker
            .instantiate(&mut store, module)
            .map_err(|e| trap_report(&e, &vm_id, "instantiate"))?;
        let memory = instance.get_memory(&mut store, "memory");
        let alloc = get::<i32, i32>(&instance, &mut store, "malloc")
            .or_else(|| get::<i32, i32>(&instance, &mut store, "proxy_on_memory_allocate"));
        let s = &mut store;
        let ex = Exports {
            initialize: get(&instance, s, "_initialize"),
            start: get(&instance, s, "_start"),
            main: get(&instance, s, "main"),
            on_context_create: get(&instance, s, "proxy_on_context_create"),
            on_vm_start: get(&instance, s, "proxy_on_vm_start"),
            on_configure: get(&instance, s, "proxy_on_configure"),
            on_tick: get(&instance, s, "proxy_on_tick"),
            on_queue_ready: get(&instance, s, "proxy_on_queue_ready"),
            on_new_connection: get(&instance, s, "proxy_on_new_connection"),
            on_downstream_data: get(&instance, s, "proxy_on_downstream_data"),
            on_upstream_data: get(&instance, s, "proxy_on_upstream_data"),
            on_downstream_connection_close: get(
                &instance,
                s,
                "proxy_on_downstream_connection_close",
            ),
            on_upstream_connection_close: get(&instance, s, "proxy_on_upstream_connection_close"),
            on_request_headers: get(&instance, s, "proxy_on_request_headers"),
            on_request_body: get(&instance, s, "proxy_on_request_body"),
            on_request_trailers: get(&instance, s, "proxy_on_request_trailers"),
            on_response_headers: get(&instance, s, "proxy_on_response_headers"),
            on_response_body: get(&instance, s, "proxy_on_response_body"),
            on_response_trailers: get(&instance, s, "proxy_on_response_trailers"),
            on_http_call_response: get(&instance, s, "proxy_on_http_call_response"),
            on_foreign_function: get(&instance, s, "proxy_on_foreign_function"),
            on_done: get(&instance, s, "proxy_on_done"),
            on_log: get(&instance, s, "proxy_on_log"),
            on_delete: get(&instance, s, "proxy_on_delete"),
        };
        store.data_mut().memory = memory;
        store.data_mut().alloc = alloc.map(std::sync::Arc::new);
        let mut vm = Vm {
            store,
            instance,
            ex,
            poisoned: None,
            key,
            deadline_ticks,
        };
        let restricted = vm.store.data().profile.restricted_start();
        let (init, main, start) = (
            vm.ex.initialize.clone(),
            vm.ex.main.clone(),
            vm.ex.start.clone(),
        );
        let mut none = None;
        let r = vm.call(world, &mut none, Phase::Start, 0, "_initialize", |s| {
            if restricted {
                s.data_mut().restriction = Restriction::Start;
            }
            let r = (|| {
                if let Some(f) = init {
                    f.call(&mut *s, ())?;
                    if let Some(m) = main {
                        m.call(&mut *s, (0, 0))?;
                    }
                } else if let Some(f) = start {
                    f.call(&mut *s, ())?;
                }
                Ok(())
            })();
            s.data_mut().restriction = Restriction::None;
            r
        });
        match r {
            Ok(()) => Ok(vm),
            Err(CallError::Trap(t)) => Err(*t),
            Err(CallError::Poisoned(t)) => Err(*t),
        }
    }

    /// Runs `f` with the world and stream moved into the store, the phase and context set, and
    /// epoch deadline reset. A trap poisons the VM.
    pub fn call<R>(
        &mut self,
        world: &mut Option<Box<World>>,
        stream: &mut Option<Box<StreamState>>,
        phase: Phase,
        ctx: u32,
        callback: &str,
        f: impl FnOnce(&mut Store<VmHost>) -> wasmtime::Result<R>,
    ) -> Result<R, CallError> {
        call_parts(
            &mut self.store,
            &mut self.poisoned,
            self.deadline_ticks,
            world,
            stream,
            phase,
            ctx,
            callback,
            f,
        )
    }

    /// Like [`Vm::call`], with the exports borrowed (no `TypedFunc` clone per call: cloning one
    /// clones its registered type, measurable at a few hundred ns per stream).
    #[allow(clippy::too_many_arguments)]
    pub fn call_ex<R>(
        &mut self,
        world: &mut Option<Box<World>>,
        stream: &mut Option<Box<StreamState>>,
        phase: Phase,
        ctx: u32,
        callback: &str,
        f: impl FnOnce(&Exports, &mut Store<VmHost>) -> wasmtime::Result<R>,
    ) -> Result<R, CallError> {
        let Vm {
            store,
            ex,
            poisoned,
            deadline_ticks,
            ..
        } = self;
        call_parts(
            store,
            poisoned,
            *deadline_ticks,
            world,
            stream,
            phase,
            ctx,
            callback,
            |s| f(ex, s),
        )
    }
}

// Inlined into each caller: nine arguments through the stack and the prologue were a fifth
// of its cost, and every stream callback passes through it.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn call_parts<R>(
    store: &mut Store<VmHost>,
    poisoned: &mut Option<TrapReport>,
    deadline_ticks: u64,
    world: &mut Option<Box<World>>,
    stream: &mut Option<Box<StreamState>>,
    phase: Phase,
    ctx: u32,
    callback: &str,
    f: impl FnOnce(&mut Store<VmHost>) -> wasmtime::Result<R>,
) -> Result<R, CallError> {
    if let Some(t) = poisoned {
        return Err(poisoned_error(t));
    }
    {
        let h = store.data_mut();
        // Swaps: the store's slots are empty between calls, and a swap skips the drop glue an
        // assignment runs on the old value.
        std::mem::swap(&mut h.world, world);
        std::mem::swap(&mut h.stream, stream);
        h.phase = phase;
        h.current_ctx = ctx;
        h.effective_ctx = ctx;
    }
    store.set_epoch_deadline(deadline_ticks);
    let r = f(store);
    let h = store.data_mut();
    std::mem::swap(&mut h.world, world);
    std::mem::swap(&mut h.stream, stream);
    h.phase = Phase::Idle;
    match r {
        Ok(v) => Ok(v),
        Err(e) => Err(trapped(store, poisoned, world, callback, e)),
    }
}

/// The error of a call on a poisoned VM (out of line: `call_parts` is inlined everywhere).
#[cold]
#[inline(never)]
fn poisoned_error(t: &TrapReport) -> CallError {
    CallError::Poisoned(Box::new(t.clone()))
}

/// A callback trapped: Envoy's critical log line, and the VM is poisoned.
#[cold]
#[inline(never)]
fn trapped(
    store: &Store<VmHost>,
    poisoned: &mut Option<TrapReport>,
    world: &mut Option<Box<World>>,
    callback: &str,
    e: wasmtime::Error,
) -> CallError {
    let plugin = store.data().log_source();
    let report = trap_report(&e, &plugin, callback);
    if let Some(w) = world.as_deref_mut() {
        w.harness_log(crate::abi::LogLevel::Critical, report.to_string());
    }
    *poisoned = Some(report.clone());
    CallError::Trap(Box::new(report))
}

/// Why a callback did not run to completion. The report is boxed: every callback's result
/// carries this type, and a two-word error keeps `Result<Option<i32>, CallError>` in registers
/// instead of a ~100-byte copy through each call level.
#[derive(Debug, Clone)]
pub enum CallError {
    /// It trapped now (the VM is poisoned from here on).
    Trap(Box<TrapReport>),
    /// The VM was poisoned by an earlier trap.
    Poisoned(Box<TrapReport>),
}

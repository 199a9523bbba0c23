//! The host boundary. Plugin logic never calls `proxy_wasm::hostcalls` directly; it reads Envoy
//! through [`Host`], so the same logic runs natively against [`fake::FakeHost`] in tests.

/// The real host: the Proxy-Wasm ABI (wasm32 builds only).
#[cfg(target_arch = "wasm32")]
pub mod envoy;
pub mod fake;

/// Which Envoy header map to read (`proxy_map_type_t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HeaderMap {
    RequestHeaders,
    RequestTrailers,
    ResponseHeaders,
    ResponseTrailers,
}

/// Read access to Envoy for one callback of one stream (or the root context).
///
/// `Send + Sync` because `cel`'s `VariableResolver` requires it; wasm32 is single-threaded and
/// the fake uses atomics/mutexes, so the bound costs nothing.
pub trait Host: Send + Sync {
    /// `proxy_get_property(path)`: the raw bytes Envoy serialised (see [`crate::values`]), or `None`
    /// when the attribute is absent (NOT_FOUND), empty (Envoy returns a null pointer for an empty
    /// value, which the SDK maps to `None`), or failed to serialise.
    fn property(&self, path: &[&str]) -> Option<Vec<u8>>;

    /// `proxy_get_header_map_value(map, name)`: the first value of a header, `None` if absent or
    /// if the map is unavailable in this callback.
    fn header(&self, map: HeaderMap, name: &str) -> Option<String>;
}

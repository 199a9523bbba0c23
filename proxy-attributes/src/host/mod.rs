//! The host boundary. Plugin logic never calls `proxy_wasm::hostcalls` directly; it reads Envoy
//! through [`Host`], so the same logic runs natively against [`fake::FakeHost`] in tests.

/// The real host: the Proxy-Wasm ABI (wasm32 builds only).
#[cfg(target_arch = "wasm32")]
pub mod envoy;
pub mod fake;

/// A property path joined with NUL at compile time, for [`Host::property_joined`]:
/// `property_path!("request", "host")` is `"request\0host"`.
#[macro_export]
macro_rules! property_path {
    ($first:literal $(, $rest:literal)* $(,)?) => {
        concat!($first $(, "\0", $rest)*)
    };
}

/// A property value from [`Host::property_lent`]: owned bytes, or in wasm a buffer the module
/// lent the host, handed back when this drops.
pub struct Lent(LentRepr);

enum LentRepr {
    Owned(Vec<u8>),
    #[cfg(target_arch = "wasm32")]
    Scratch(envoy::scratch::Value),
}

impl From<Vec<u8>> for Lent {
    fn from(v: Vec<u8>) -> Self {
        Lent(LentRepr::Owned(v))
    }
}

#[cfg(target_arch = "wasm32")]
impl From<envoy::scratch::Value> for Lent {
    fn from(v: envoy::scratch::Value) -> Self {
        Lent(LentRepr::Scratch(v))
    }
}

impl std::ops::Deref for Lent {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        match &self.0 {
            LentRepr::Owned(v) => v,
            #[cfg(target_arch = "wasm32")]
            LentRepr::Scratch(v) => v.bytes(),
        }
    }
}

/// Which Envoy header map to read (`proxy_map_type_t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HeaderMap {
    RequestHeaders,
    RequestTrailers,
    ResponseHeaders,
    ResponseTrailers,
}

/// `&dyn Host` from a concrete host or from `dyn Host` itself, for code generic over its host
/// that hands it on to the interpreter's resolver (which holds a `&dyn Host`).
pub trait AsDynHost {
    fn as_dyn(&self) -> &dyn Host;
}

impl<T: Host> AsDynHost for T {
    fn as_dyn(&self) -> &dyn Host {
        self
    }
}

impl AsDynHost for dyn Host + '_ {
    fn as_dyn(&self) -> &dyn Host {
        self
    }
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

    /// [`Host::property`] for a path already joined with NUL, the ABI's own form
    /// (`"request\0host"`, see [`property_path!`](crate::property_path)). Report paths are
    /// constants: joined at compile time, the wasm host passes them to Envoy as they are instead
    /// of assembling the path on every read (a stack fill and a copy per part).
    fn property_joined(&self, joined: &str) -> Option<Vec<u8>> {
        let parts: Vec<&str> = joined.split('\0').collect();
        self.property(&parts)
    }

    /// [`Host::property_joined`] for a value used soon and not kept: the wasm binding reads it
    /// into a buffer the module lends the host instead of an allocation freed right after
    /// (`envoy::scratch`). Same reads, same values.
    fn property_lent(&self, joined: &str) -> Option<Lent> {
        self.property_joined(joined).map(Lent::from)
    }

    /// An int64 property ([`crate::values::as_i64`]), read with [`Host::property_lent`].
    fn property_i64(&self, joined: &str) -> Option<i64> {
        crate::values::as_i64(&self.property_lent(joined)?)
    }

    /// `proxy_get_header_map_value(map, name)`: the first value of a header, `None` if absent or
    /// if the map is unavailable in this callback.
    fn header(&self, map: HeaderMap, name: &str) -> Option<String>;
}

#[cfg(test)]
mod tests {
    use super::fake::FakeHost;
    use super::Host;

    #[test]
    fn joined_paths_read_the_same_attribute() {
        assert_eq!(property_path!("request", "host"), "request\0host");
        assert_eq!(property_path!("cluster_name"), "cluster_name");
        // `"0"` after a separator stays a separate part (not an escape).
        assert_eq!(
            property_path!("services", "0", "name")
                .split('\0')
                .collect::<Vec<_>>(),
            ["services", "0", "name"]
        );
        let host = FakeHost::new().with_str(&["request", "host"], "catalog:80");
        assert_eq!(
            host.property_joined(property_path!("request", "host")),
            Some(b"catalog:80".to_vec())
        );
        assert_eq!(host.property_joined("request\0path"), None);
        assert_eq!(
            host.reads(),
            ["property:request.host", "property:request.path"]
        );
    }
}

//! Envoy behaviour per Istio minor version (Istio 1.13…1.17 ship Envoy 1.21…1.25; abi-host
//! Appendix B). Only the toggles that differ between these versions or that a harness must know
//! live here.

/// The 15 WASI functions proxy-wasm-cpp-host registered between PR #201 (2021-11) and PR #427
/// (2024-12), i.e. in every Envoy of Istio 1.13–1.17 (abi-host §1.7). Each is registered under
/// both `wasi_unstable` and `wasi_snapshot_preview1`.
pub const WASI_FUNCTIONS: [&str; 15] = [
    "fd_write",
    "fd_read",
    "fd_seek",
    "fd_close",
    "fd_fdstat_get",
    "environ_get",
    "environ_sizes_get",
    "args_get",
    "args_sizes_get",
    "clock_time_get",
    "random_get",
    "proc_exit",
    "path_open",
    "fd_prestat_get",
    "fd_prestat_dir_name",
];

/// Host calls allowed while `_initialize`/`main` run on Envoy ≥ 1.24 (cpp-host PR #306,
/// `WasmBase::startVm` at 66b3b7d): logging, args, environment, preopens, clock and random.
pub const START_ALLOWED: [&str; 10] = [
    "env.proxy_log",
    "fd_write",
    "args_sizes_get",
    "args_get",
    "environ_sizes_get",
    "environ_get",
    "fd_prestat_get",
    "fd_prestat_dir_name",
    "clock_time_get",
    "random_get",
];

/// Host calls allowed from inside the module's allocator (cpp-host `WasmBase::allocMemory` at
/// 66b3b7d): `env.proxy_log`, `fd_write`, `clock_time_get`.
pub const ALLOC_ALLOWED: [&str; 3] = ["env.proxy_log", "fd_write", "clock_time_get"];

/// One Istio/Envoy pairing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Profile {
    /// Istio minor version (13…17).
    pub istio_minor: u32,
    /// Envoy minor version (21…25).
    pub envoy_minor: u32,
}

impl Default for Profile {
    /// Istio 1.17 / Envoy 1.25.
    fn default() -> Self {
        Profile::ISTIO_1_17
    }
}

impl Profile {
    pub const ISTIO_1_13: Profile = Profile {
        istio_minor: 13,
        envoy_minor: 21,
    };
    pub const ISTIO_1_14: Profile = Profile {
        istio_minor: 14,
        envoy_minor: 22,
    };
    pub const ISTIO_1_15: Profile = Profile {
        istio_minor: 15,
        envoy_minor: 23,
    };
    pub const ISTIO_1_16: Profile = Profile {
        istio_minor: 16,
        envoy_minor: 24,
    };
    pub const ISTIO_1_17: Profile = Profile {
        istio_minor: 17,
        envoy_minor: 25,
    };
    pub const ALL: [Profile; 5] = [
        Profile::ISTIO_1_13,
        Profile::ISTIO_1_14,
        Profile::ISTIO_1_15,
        Profile::ISTIO_1_16,
        Profile::ISTIO_1_17,
    ];

    /// The profile of an Istio minor (13…17).
    pub fn for_istio_minor(minor: u32) -> Option<Profile> {
        Profile::ALL.into_iter().find(|p| p.istio_minor == minor)
    }

    /// Parses an Istio `proxyVersion` such as `1.17`, `1.17.8` or `1.16.0-beta.1`.
    pub fn from_proxy_version(version: &str) -> Result<Profile, String> {
        let mut parts = version.trim().trim_start_matches('v').split('.');
        let major = parts.next().and_then(|p| p.parse::<u32>().ok());
        let minor = parts
            .next()
            .map(|p| p.split(|c: char| !c.is_ascii_digit()).next().unwrap_or(""))
            .and_then(|p| p.parse::<u32>().ok());
        match (major, minor) {
            (Some(1), Some(m)) => Profile::for_istio_minor(m).ok_or_else(|| {
                format!("unsupported proxy version {version:?}: supported are Istio 1.13 to 1.17")
            }),
            _ => Err(format!(
                "invalid proxy version {version:?}: expected MAJOR.MINOR[.PATCH], e.g. 1.17.8"
            )),
        }
    }

    /// `_initialize`/`main` run with restricted host calls (cpp-host PR #306 → Envoy ≥ 1.24).
    pub fn restricted_start(&self) -> bool {
        self.envoy_minor >= 24
    }

    /// The WASI functions this Envoy registers.
    pub fn wasi_functions(&self) -> &'static [&'static str] {
        &WASI_FUNCTIONS
    }

    /// e.g. `Istio 1.17 (Envoy 1.25)`.
    pub fn label(&self) -> String {
        format!(
            "Istio 1.{} (Envoy 1.{})",
            self.istio_minor, self.envoy_minor
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proxy_versions() {
        assert_eq!(
            Profile::from_proxy_version("1.17.8"),
            Ok(Profile::ISTIO_1_17)
        );
        assert_eq!(Profile::from_proxy_version("1.13"), Ok(Profile::ISTIO_1_13));
        assert_eq!(
            Profile::from_proxy_version("1.16.0-beta.1"),
            Ok(Profile::ISTIO_1_16)
        );
        assert!(Profile::from_proxy_version("1.18.0").is_err());
        assert!(Profile::from_proxy_version("x").is_err());
    }

    #[test]
    fn restricted_start_from_envoy_1_24() {
        assert!(!Profile::ISTIO_1_15.restricted_start());
        assert!(Profile::ISTIO_1_16.restricted_start());
        assert!(Profile::ISTIO_1_17.restricted_start());
    }
}

//! `match.proxy.proxyVersion` as pilot evaluates it against the node's `ISTIO_VERSION`
//! (`pilot/pkg/model/envoyfilter.go` `convertToEnvoyFilterWrapper` / `proxyMatch`, 1.13–1.17).

use regex::Regex;

/// The regexes pilot turns into a prefix test (`wellKnownVersions`). release-1.13 lists
/// `^1\.4.*` … `^1\.13.*`; release-1.14 … 1.17 list up to `^1\.19.*`. The result is the same
/// as running the regex, so one table serves every control plane.
const FAST_PATH_MINORS: std::ops::RangeInclusive<u32> = 4..=19;

/// A compiled `proxyVersion` matcher.
#[derive(Debug, Clone)]
pub enum VersionMatcher {
    /// No `proxyVersion` (or an empty one): matches every proxy, even one without a version.
    Any,
    /// `^1\.N.*` exactly: pilot's `strings.HasPrefix(ISTIO_VERSION, "1.N")`.
    Prefix(String),
    /// Any other RE2 regex, searched unanchored (Go `MatchString`); an empty version never
    /// matches ("we do not have a proxy version but the user has a regex").
    Regex(Regex),
}

impl VersionMatcher {
    /// Compiles like pilot. `Err` carries the regex error (istio validation rejects it:
    /// "Envoy filter: invalid regex for proxy version").
    pub fn compile(pattern: &str) -> Result<Self, String> {
        if pattern.is_empty() {
            return Ok(Self::Any);
        }
        if let Some(prefix) = fast_path_prefix(pattern) {
            return Ok(Self::Prefix(prefix));
        }
        Regex::new(pattern)
            .map(Self::Regex)
            .map_err(|e| e.to_string())
    }

    pub fn matches(&self, istio_version: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Prefix(p) => istio_version.starts_with(p.as_str()),
            Self::Regex(re) => !istio_version.is_empty() && re.is_match(istio_version),
        }
    }

    /// True when pilot takes the prefix fast path for this pattern.
    pub fn is_fast_path(&self) -> bool {
        matches!(self, Self::Prefix(_))
    }
}

/// `^1\.N.*` → `1.N` for the well-known minors.
pub fn fast_path_prefix(pattern: &str) -> Option<String> {
    let minor = pattern.strip_prefix(r"^1\.")?.strip_suffix(".*")?;
    let n: u32 = minor.parse().ok()?;
    if minor.starts_with('0') || !FAST_PATH_MINORS.contains(&n) {
        return None;
    }
    Some(format!("1.{n}"))
}

/// The exact `proxyVersion` string Istio's own templates use for minor `1.N`.
pub fn pattern_for_minor(minor: u32) -> String {
    format!(r"^1\.{minor}.*")
}

/// `1.17.8` → 17; `1.13` → 13. `None` for anything that is not `1.<minor>…`.
pub fn minor_of(version: &str) -> Option<u32> {
    let rest = version.strip_prefix("1.")?;
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_path_is_a_prefix_test() {
        let m = VersionMatcher::compile(r"^1\.13.*").unwrap();
        assert!(m.is_fast_path());
        assert!(m.matches("1.13.9"));
        assert!(m.matches("1.13-dev"));
        // HasPrefix("1.130", "1.13"): the over-wide match of istio/istio#43602, same as the regex.
        assert!(m.matches("1.130.0"));
        assert!(!m.matches("1.14.0"));
        assert!(!m.matches(""));
    }

    #[test]
    fn over_wide_regex_matches_every_1_1x() {
        let m = VersionMatcher::compile(r"^1\.1.*").unwrap();
        assert!(!m.is_fast_path());
        for v in ["1.13.0", "1.17.8", "1.1.0"] {
            assert!(m.matches(v), "{v}");
        }
    }

    #[test]
    fn unanchored_regex_and_empty_version() {
        // Go MatchString is a search: the unanchored `1\.7.*` also hits "11.7.0".
        let m = VersionMatcher::compile(r"1\.7.*").unwrap();
        assert!(m.matches("11.7.0"));
        assert!(!VersionMatcher::compile(r"^1\.7\.")
            .unwrap()
            .matches("11.7.0"));
        assert!(!m.matches(""));
        // A regex that would match the empty string still never matches an empty version.
        assert!(!VersionMatcher::compile(".*").unwrap().matches(""));
        assert!(VersionMatcher::compile("").unwrap().matches(""));
    }

    #[test]
    fn minor_parsing() {
        assert_eq!(minor_of("1.17.8"), Some(17));
        assert_eq!(minor_of("1.13"), Some(13));
        assert_eq!(minor_of("1.5-dev.sha"), Some(5));
        assert_eq!(minor_of("2.0"), None);
        assert_eq!(fast_path_prefix(r"^1\.20.*"), None);
    }
}

//! Envoy's tag extraction (`TagProducerImpl` + `TagExtractorStdRegexImpl`), the step that turns
//! `wasmcustom.reporter=.=source;.;…;.;istio_requests_total` into the tag-extracted name
//! `wasmcustom.istio_requests_total` plus labels.
//!
//! Semantics matched (Envoy `source/common/stats/tag_producer_impl.cc`,
//! `tag_extractor_impl.cc`):
//! * every rule runs `std::regex_search` (ECMAScript) on the **full original name**; only the
//!   first match counts; capture group 1 is the text removed from the name, group 2 (or group 1
//!   when the regex has a single group) the tag value; a group that did not take part yields an
//!   empty value and removes nothing;
//! * rules whose regex starts with `^word\.` (or `^word(?=\.)`, or is `^word$`) are only tried on
//!   names whose first `.`-token is `word`, and after all prefix-less rules (the prefix map);
//! * a rule with a `substr` is skipped when the name does not contain it;
//! * a tag name is extracted at most once (Envoy ≥ 1.24, PR #23024; earlier Envoys rejected
//!   duplicate tag names at bootstrap, so no earlier configuration could produce two values);
//! * the removed ranges are merged and cut out of the name.
//!
//! Regexes are compiled once per extractor. ECMAScript is approximated with `regex::bytes` in
//! ASCII mode with CRLF-aware `.` (libc++'s ECMAScript `.` excludes `\n` and `\r`). The simple
//! Istio shapes `(lit(.*?)lit)` / `(lit(.+?)lit)` take a literal fast path that is tested to
//! agree with the regex.

use std::borrow::Cow;
use std::collections::HashMap;

/// One `stats_config.stats_tags` entry (or one of Envoy's built-in descriptors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagRule {
    pub name: String,
    pub regex: String,
    /// Envoy's substring pre-check for built-in descriptors; empty for bootstrap rules.
    pub substr: String,
}

impl TagRule {
    pub fn new(name: &str, regex: &str) -> Self {
        Self {
            name: name.to_string(),
            regex: regex.to_string(),
            substr: String::new(),
        }
    }

    pub fn with_substr(name: &str, regex: &str, substr: &str) -> Self {
        Self {
            name: name.to_string(),
            regex: regex.to_string(),
            substr: substr.to_string(),
        }
    }
}

/// `(A(.*?)B)` / `(A(.+?)B)` with literal A and B: the shape of every Istio dimension rule.
#[derive(Debug, Clone)]
struct LiteralRule {
    head: memchr::memmem::Finder<'static>,
    tail: memchr::memmem::Finder<'static>,
    /// `.+?` needs at least one value byte.
    min_len: usize,
}

impl LiteralRule {
    /// Recognises the shape; any other syntax leaves the rule to the regex engine.
    fn parse(pattern: &str) -> Option<LiteralRule> {
        let inner = pattern.strip_prefix('(')?.strip_suffix(')')?;
        let (head, rest, min_len) = if let Some((h, r)) = inner.split_once("(.*?)") {
            (h, r, 0)
        } else {
            let (h, r) = inner.split_once("(.+?)")?;
            (h, r, 1)
        };
        Some(LiteralRule {
            head: memchr::memmem::Finder::new(&Self::literal(head)?).into_owned(),
            tail: memchr::memmem::Finder::new(&Self::literal(rest)?).into_owned(),
            min_len,
        })
    }

    /// Word characters, `=`, `;` and the escape `\.`; anything else is not a plain literal.
    fn literal(text: &str) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next()? {
                    '.' => out.push(b'.'),
                    _ => return None,
                },
                c if c.is_ascii_alphanumeric() || c == '_' || c == '=' || c == ';' => {
                    out.push(c as u8)
                }
                _ => return None,
            }
        }
        if out.is_empty() {
            None
        } else {
            Some(out)
        }
    }

    /// Leftmost-first match with a lazy value that cannot cross `\n`/`\r` (ECMAScript `.`):
    /// returns (whole match range, value range).
    fn find(&self, name: &[u8]) -> Option<((usize, usize), (usize, usize))> {
        let head_len = self.head.needle().len();
        let tail_len = self.tail.needle().len();
        let mut from = 0;
        while let Some(at) = self.head.find(&name[from..]) {
            let start = from + at;
            let value_start = start + head_len;
            if let Some(value_end) = self.lazy_end(name, value_start) {
                return Some(((start, value_end + tail_len), (value_start, value_end)));
            }
            from = start + 1;
        }
        None
    }

    /// The lazy quantifier stops at the first tail occurrence at or after the minimum length;
    /// it fails when a line break comes before that occurrence.
    fn lazy_end(&self, name: &[u8], value_start: usize) -> Option<usize> {
        let search_from = value_start + self.min_len;
        let rest = name.get(search_from..)?;
        let value_end = search_from + self.tail.find(rest)?;
        let value = name.get(value_start..value_end)?;
        if memchr::memchr2(b'\n', b'\r', value).is_some() {
            return None;
        }
        Some(value_end)
    }
}

fn find_bytes(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(haystack, needle)
}

#[derive(Debug, Clone)]
enum Matcher {
    Literal(Box<LiteralRule>),
    Regex(regex::bytes::Regex),
}

#[derive(Debug, Clone)]
struct CompiledRule {
    name: String,
    substr: Vec<u8>,
    matcher: Matcher,
    /// Another rule extracts the same tag name (only then is the at-most-once check needed).
    shared_name: bool,
}

/// A rule Envoy would accept but this extractor cannot run (e.g. an ECMAScript lookahead that
/// has no equivalent rewrite), or a regex that does not compile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedRule {
    pub name: String,
    pub regex: String,
    pub reason: String,
}

/// Tag-extracted name plus tags in extraction order.
pub type Extracted = (String, Vec<(String, String)>);

/// [`Extracted`] borrowing tag names from the extractor and values from the stat name.
pub type ExtractedRef<'a> = (String, Vec<(&'a str, Cow<'a, str>)>);

/// A compiled set of tag rules (Envoy's `TagProducer`).
#[derive(Debug, Clone, Default)]
pub struct TagExtractor {
    rules: Vec<CompiledRule>,
    without_prefix: Vec<usize>,
    by_prefix: HashMap<String, Vec<usize>>,
    rejected: Vec<RejectedRule>,
    istio_minor: Option<u32>,
}

impl TagExtractor {
    /// Compiles rules in order (Envoy's `addExtractor` order). Rules that cannot be compiled are
    /// kept out and listed by [`TagExtractor::rejected`].
    pub fn from_rules<I: IntoIterator<Item = TagRule>>(rules: I) -> Self {
        let mut out = TagExtractor::default();
        for rule in rules {
            out.push(rule);
        }
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for r in &out.rules {
            *counts.entry(r.name.as_str()).or_default() += 1;
        }
        let shared: Vec<bool> = out
            .rules
            .iter()
            .map(|r| counts.get(r.name.as_str()).copied().unwrap_or(0) > 1)
            .collect();
        for (rule, shared) in out.rules.iter_mut().zip(shared) {
            rule.shared_name = shared;
        }
        out
    }

    fn push(&mut self, rule: TagRule) {
        let prefix = regex_prefix(&rule.regex);
        let matcher = match LiteralRule::parse(&rule.regex) {
            Some(lit) => Ok(Matcher::Literal(Box::new(lit))),
            None => compile_ecmascript(&rule.regex, &prefix).map(Matcher::Regex),
        };
        let matcher = match matcher {
            Ok(m) => m,
            Err(reason) => {
                self.rejected.push(RejectedRule {
                    name: rule.name,
                    regex: rule.regex,
                    reason,
                });
                return;
            }
        };
        let index = self.rules.len();
        self.rules.push(CompiledRule {
            name: rule.name,
            substr: rule.substr.into_bytes(),
            matcher,
            shared_name: false,
        });
        if prefix.is_empty() {
            self.without_prefix.push(index);
        } else {
            self.by_prefix.entry(prefix).or_default().push(index);
        }
    }

    /// Rules that were not compiled, with the reason.
    pub fn rejected(&self) -> &[RejectedRule] {
        &self.rejected
    }

    /// The Istio minor version this extractor models, when built by [`TagExtractor::istio`].
    pub fn istio_minor(&self) -> Option<u32> {
        self.istio_minor
    }

    pub(crate) fn set_istio_minor(&mut self, minor: u32) {
        self.istio_minor = Some(minor);
    }

    /// Tag-extracts a full Envoy stat name (for Wasm stats that includes `wasmcustom.`).
    /// Returns the tag-extracted name and the tags in extraction order (= Prometheus label order).
    pub fn extract(&self, name: &str) -> Extracted {
        let (extracted, tags) = self.extract_borrowed(name);
        let tags = tags
            .into_iter()
            .map(|(n, v)| (n.to_string(), v.into_owned()))
            .collect();
        (extracted, tags)
    }

    /// [`TagExtractor::extract`] without copying tag names and values (values are slices of
    /// `name` unless a match boundary splits a UTF-8 character).
    pub fn extract_borrowed<'a>(&'a self, name: &'a str) -> ExtractedRef<'a> {
        let bytes = name.as_bytes();
        let mut tags: Vec<(&'a str, Cow<'a, str>)> = Vec::new();
        let mut removed: Vec<(usize, usize)> = Vec::new();
        let first_token = name.find('.').map(|dot| &name[..dot]);
        let prefixed = first_token
            .and_then(|t| self.by_prefix.get(t))
            .map(|v| v.as_slice())
            .unwrap_or(&[]);
        for &index in self.without_prefix.iter().chain(prefixed) {
            let Some(rule) = self.rules.get(index) else {
                continue;
            };
            if rule.shared_name && tags.iter().any(|(n, _)| *n == rule.name) {
                continue;
            }
            if !rule.substr.is_empty() && find_bytes(bytes, &rule.substr).is_none() {
                continue;
            }
            let found = match &rule.matcher {
                Matcher::Literal(lit) => lit.find(bytes),
                Matcher::Regex(re) => regex_extract(re, bytes),
            };
            if let Some(((rs, re), (vs, ve))) = found {
                let value = match name.get(vs..ve) {
                    Some(v) => Cow::Borrowed(v),
                    None => String::from_utf8_lossy(bytes.get(vs..ve).unwrap_or(&[])),
                };
                tags.push((rule.name.as_str(), value));
                if re > rs {
                    removed.push((rs, re));
                }
            }
        }
        (remove_ranges(bytes, removed), tags)
    }
}

/// `std::regex_search` + Envoy's group handling, on the compiled regex.
fn regex_extract(
    re: &regex::bytes::Regex,
    name: &[u8],
) -> Option<((usize, usize), (usize, usize))> {
    // match.size() > 1: the regex needs at least one group.
    if re.captures_len() < 2 {
        return None;
    }
    // Most rules miss; the match-only search is much cheaper than a capturing one.
    if !re.is_match(name) {
        return None;
    }
    let caps = re.captures(name)?;
    let span = |i: usize| {
        caps.get(i)
            .map(|m| (m.start(), m.end()))
            // A group that did not participate: std::sub_match is empty (at the end).
            .unwrap_or((name.len(), name.len()))
    };
    let remove = span(1);
    let value = if re.captures_len() > 2 {
        span(2)
    } else {
        remove
    };
    Some((remove, value))
}

fn remove_ranges(name: &[u8], mut ranges: Vec<(usize, usize)>) -> String {
    if ranges.is_empty() {
        return String::from_utf8_lossy(name).into_owned();
    }
    ranges.sort_unstable();
    let mut out = Vec::with_capacity(name.len());
    let mut pos = 0;
    for (start, end) in ranges {
        if start > pos {
            out.extend_from_slice(&name[pos..start.min(name.len())]);
        }
        pos = pos.max(end);
    }
    if pos < name.len() {
        out.extend_from_slice(&name[pos..]);
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Envoy's `TagExtractorImplBase::extractRegexPrefix`: `^word` followed by `\.` or `(?=\.)`,
/// or a whole `^word$` regex.
fn regex_prefix(regex: &str) -> String {
    let bytes = regex.as_bytes();
    if bytes.first() != Some(&b'^') {
        return String::new();
    }
    for i in 1..bytes.len() {
        let c = bytes[i];
        if !(c.is_ascii_alphanumeric() || c == b'_') {
            if i > 1 {
                let last = i == bytes.len() - 1;
                let rest = &regex[i..];
                let dot = rest.starts_with("\\.") || rest.starts_with("(?=\\.)");
                if (!last && dot) || (last && c == b'$') {
                    return regex[1..i].to_string();
                }
            }
            break;
        }
    }
    String::new()
}

/// Compiles an ECMAScript stats_tags regex for `regex::bytes`. The lookaheads Envoy's own
/// descriptors use are rewritten exactly: `^word(?=\.)` is always true once the prefix map has
/// selected the rule, and `(?=\.).*?\.x` ≡ `(?:\..*?)??\.x` (`.*` greedy likewise).
fn compile_ecmascript(pattern: &str, prefix: &str) -> Result<regex::bytes::Regex, String> {
    let mut p = pattern.to_string();
    if !prefix.is_empty() {
        let anchored = format!("^{prefix}(?=\\.)");
        if let Some(rest) = p.strip_prefix(&anchored) {
            p = format!("^{prefix}{rest}");
        }
    }
    for (from, to) in [
        ("(?=\\.).*?\\.", "(?:\\..*?)??\\."),
        ("(?=\\.).*?(\\.", "(?:\\..*?)??(\\."),
        ("(?=\\.).*\\.", "(?:\\..*)?\\."),
        ("(?=\\.).*(\\.", "(?:\\..*)?(\\."),
    ] {
        p = p.replace(from, to);
    }
    if p.contains("(?=") || p.contains("(?!") || p.contains("(?<") {
        return Err("lookaround has no equivalent in this regex engine".to_string());
    }
    regex::bytes::RegexBuilder::new(&p)
        .unicode(false)
        .crlf(true)
        .build()
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(rule: TagRule) -> TagExtractor {
        let t = TagExtractor::from_rules([rule]);
        assert!(t.rejected().is_empty(), "{:?}", t.rejected());
        t
    }

    #[test]
    fn first_match_only_group1_removed_group2_value() {
        let t = one(TagRule::new("reporter", r"(reporter=\.=(.*?);\.;)"));
        let (name, tags) = t.extract("wasmcustom.reporter=.=a;.;reporter=.=b;.;x");
        assert_eq!(name, "wasmcustom.reporter=.=b;.;x");
        assert_eq!(tags, vec![("reporter".into(), "a".into())]);
    }

    #[test]
    fn single_group_is_value_and_removal() {
        let t = one(TagRule::new("envoy.response_code_class", r"_rq_(\d)xx$"));
        let (name, tags) = t.extract("cluster.a.upstream_rq_5xx");
        assert_eq!(name, "cluster.a.upstream_rq_xx");
        assert_eq!(tags, vec![("envoy.response_code_class".into(), "5".into())]);
    }

    #[test]
    fn unmatched_alternative_group_gives_empty_value() {
        // Istio ≤ 1.16's combined response_code regex, second alternative matching:
        // groups 1 and 2 did not participate → tag with empty value, nothing removed.
        let t = one(TagRule::new(
            "response_code",
            r"(response_code=\.=(.+?);\.;)|_rq(_(\d{3}))$",
        ));
        let (name, tags) = t.extract("x.upstream_rq_200");
        assert_eq!(name, "x.upstream_rq_200");
        assert_eq!(tags, vec![("response_code".into(), String::new())]);
    }

    #[test]
    fn prefix_rules_only_for_their_first_token_and_after_others() {
        let t = TagExtractor::from_rules([
            TagRule::new("cluster_name", r"^cluster\.((.+?)\.)"),
            TagRule::new("b", r"(b\.(.+?)\.)"),
        ]);
        assert_eq!(regex_prefix(r"^cluster\.((.+?)\.)"), "cluster");
        let (name, tags) = t.extract("cluster.c1.b.v.total");
        assert_eq!(name, "cluster.total");
        assert_eq!(
            tags,
            vec![
                ("b".into(), "v".into()),
                ("cluster_name".into(), "c1".into())
            ]
        );
        let (_, tags) = t.extract("wasmcustom.cluster.c1.x");
        assert!(tags.is_empty());
    }

    #[test]
    fn duplicate_tag_names_extract_once() {
        let t = TagExtractor::from_rules([
            TagRule::new("response_code", r"(response_code=\.=(.+?);\.;)"),
            TagRule::new("response_code", r"_rq(_(\d{3}))$"),
        ]);
        let (name, tags) = t.extract("response_code=.=200;.;a_rq_404");
        assert_eq!(tags, vec![("response_code".into(), "200".into())]);
        assert_eq!(name, "a_rq_404");
    }

    #[test]
    fn substr_precheck_and_lookahead_rewrite() {
        let t = one(TagRule::with_substr(
            "envoy.http_user_agent",
            r"^http(?=\.).*?\.user_agent\.((.*?)\.)\w+?$",
            ".user_agent.",
        ));
        let (name, tags) = t.extract("http.hcm.user_agent.ios.downstream_cx_total");
        assert_eq!(name, "http.hcm.user_agent.downstream_cx_total");
        assert_eq!(tags, vec![("envoy.http_user_agent".into(), "ios".into())]);
        let t = one(TagRule::with_substr(
            "envoy.grpc_bridge_method",
            r"^cluster(?=\.).*?\.grpc(?=\.).*\.((.*?)\.)\w+?$",
            ".grpc.",
        ));
        let (name, tags) = t.extract("cluster.c.grpc.svc.method.success");
        assert_eq!(name, "cluster.c.grpc.svc.success");
        assert_eq!(
            tags,
            vec![("envoy.grpc_bridge_method".into(), "method".into())]
        );
    }

    #[test]
    fn unsupported_lookaround_is_reported() {
        let t = TagExtractor::from_rules([TagRule::new("x", r"(?=a)(b)")]);
        assert_eq!(t.rejected().len(), 1);
        assert_eq!(t.rejected()[0].name, "x");
    }

    #[test]
    fn dot_does_not_cross_line_breaks() {
        let t = one(TagRule::new("tag", r"(tag\.(.+?);\.)"));
        let (_, tags) = t.extract("tag.a\rb;.tag.c;.x");
        assert_eq!(tags, vec![("tag".into(), "c".into())]);
    }

    /// The literal fast path must agree with the regex engine on tricky inputs.
    #[test]
    fn literal_fast_path_agrees_with_regex() {
        let patterns = [
            r"(reporter=\.=(.*?);\.;)",
            r"(response_code=\.=(.+?);\.;)",
            r"(cache\.(.+?)\.)",
            r"(cache\.(.*?)\.)",
            r"(tag\.(.+?);\.)",
        ];
        let alphabet: &[&str] = &[
            "reporter=.=",
            "response_code=.=",
            ";.;",
            "cache.",
            "tag.",
            ".",
            ";",
            "=",
            "a",
            "\n",
            "\r",
            "x;.",
            "é",
        ];
        // Deterministic pseudo-random strings (xorshift) over an adversarial alphabet.
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        for pattern in patterns {
            let lit = LiteralRule::parse(pattern).expect("literal shape");
            let re = compile_ecmascript(pattern, "").expect("compiles");
            for _ in 0..3000 {
                let mut s = String::new();
                let len = (state % 9) as usize;
                for _ in 0..len {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    s.push_str(alphabet[(state % alphabet.len() as u64) as usize]);
                }
                let a = lit.find(s.as_bytes());
                let b = regex_extract(&re, s.as_bytes());
                assert_eq!(a, b, "pattern {pattern} on {s:?}");
            }
        }
    }
}

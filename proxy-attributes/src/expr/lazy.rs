//! CEL values that fetch on access: attribute sub-trees (`node.metadata`, `request`, …), header
//! maps, and the decoded peer node. Each implements `Indexer` (`.f`, `[k]`, `has()`), and the maps
//! `Container` (`in`) and `Sizer` (`size()`).

use super::attributes::Attributes;
use crate::host::HeaderMap;
use crate::peer::PeerNode;
use cel::common::traits::{self, Container, Indexer, Iterable, Sizer};
use cel::common::types::{CelInt, CelList, CelString, Type, MAP_TYPE};
use cel::common::value::{CowVal, Val};
use cel::ExecutionError;
use std::fmt;
use std::sync::{Arc, OnceLock};

static MAP: Type = MAP_TYPE;

fn key_of(idx: &dyn Val) -> Result<&str, ExecutionError> {
    idx.downcast_ref::<CelString>()
        .map(|s| s.inner())
        .ok_or_else(|| ExecutionError::UnsupportedKeyType(unsupported_key(idx)))
}

fn unsupported_key(idx: &dyn Val) -> cel::Value {
    cel::Value::try_from(idx).unwrap_or(cel::Value::Null)
}

fn no_such_key(key: &str) -> ExecutionError {
    ExecutionError::NoSuchKey(Arc::new(key.to_string()))
}

/// Iterates a slice of keys (comprehensions over a map iterate its keys).
struct KeyIter<'b, 'k> {
    keys: std::slice::Iter<'b, CelString<'k>>,
}

impl<'b, 'v, 'k: 'v> traits::Iterator<'b, 'v> for KeyIter<'b, 'k> {
    fn next(&mut self) -> Option<&'b (dyn Val + 'v)> {
        self.keys.next().map(|k| k as &(dyn Val + 'v))
    }
}

/// The keys of the whole map at `path`, read once (one `get_property` of the whole map).
fn load_keys(attrs: &Attributes<'_>, path: &[&str]) -> Vec<CelString<'static>> {
    attrs
        .host()
        .property(path)
        .and_then(|b| {
            crate::values::decode_pairs(&b).map(|pairs| {
                pairs
                    .into_iter()
                    .map(|(k, _)| CelString::from(String::from_utf8_lossy(k).into_owned()))
                    .collect()
            })
        })
        .unwrap_or_default()
}

/// `a.b` where the attribute tree continues below: indexing fetches `a.b.<key>` through the
/// same resolver (so known leaves get their types and everything is memoised).
pub(super) struct PathVal<'a, 'h> {
    pub attrs: &'a Attributes<'h>,
    pub path: Vec<String>,
    pub keys: OnceLock<Vec<CelString<'static>>>,
}

impl fmt::Debug for PathVal<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PathVal({})", self.path.join("."))
    }
}

impl PathVal<'_, '_> {
    fn segments(&self) -> Vec<&str> {
        self.path.iter().map(String::as_str).collect()
    }

    fn child<'s>(&'s self, key: &'s str) -> Vec<&'s str> {
        let mut segs = self.segments();
        segs.push(key);
        segs
    }
}

impl<'a, 'h> Val for PathVal<'a, 'h> {
    fn get_type(&self) -> &Type {
        &MAP
    }
    fn cel_type() -> &'static Type {
        &MAP
    }
    fn as_indexer<'b, 'v>(&'b self) -> Option<&'b (dyn Indexer + 'v)>
    where
        Self: 'v,
    {
        Some(self)
    }
    fn as_container(&self) -> Option<&dyn Container> {
        Some(self)
    }
    fn as_iterable<'b, 'v>(&'b self) -> Option<&'b (dyn Iterable + 'v)>
    where
        Self: 'v,
    {
        Some(self)
    }
    fn as_sizer(&self) -> Option<&dyn Sizer> {
        Some(self)
    }
    fn clone_as_boxed<'v>(&self) -> Box<dyn Val + 'v>
    where
        Self: 'v,
    {
        Box::new(PathVal {
            attrs: self.attrs,
            path: self.path.clone(),
            keys: OnceLock::new(),
        })
    }
}

impl<'a, 'h> Indexer for PathVal<'a, 'h> {
    fn get<'b, 'v>(&'b self, idx: &dyn Val) -> Result<CowVal<'b, 'v>, ExecutionError>
    where
        Self: 'v,
    {
        let key = key_of(idx)?;
        match self.attrs.lookup_path(&self.child(key)) {
            Some(v) => Ok(v),
            None => Err(no_such_key(key)),
        }
    }
    fn steal<'v>(self: Box<Self>, idx: &dyn Val) -> Result<Box<dyn Val + 'v>, ExecutionError>
    where
        Self: 'v,
    {
        self.get(idx).map(CowVal::into_owned)
    }
}

impl Container for PathVal<'_, '_> {
    fn contains(&self, value: &dyn Val) -> Result<bool, ExecutionError> {
        let key = key_of(value)?;
        Ok(self.attrs.lookup_path(&self.child(key)).is_some())
    }
}

impl Iterable for PathVal<'_, '_> {
    fn iter<'b, 'v>(&'b self) -> Box<dyn traits::Iterator<'b, 'v> + 'b>
    where
        Self: 'v,
    {
        let keys = self
            .keys
            .get_or_init(|| load_keys(self.attrs, &self.segments()));
        Box::new(KeyIter { keys: keys.iter() })
    }
}

impl Sizer for PathVal<'_, '_> {
    fn size(&self) -> CelInt {
        CelInt::from(self.attrs.map_size(&self.segments()))
    }
}

/// `request.headers`, `response.headers`, `response.trailers`: one header read per key.
pub(super) struct HeadersVal<'a, 'h> {
    pub attrs: &'a Attributes<'h>,
    pub map: HeaderMap,
    pub path: &'static [&'static str],
    pub keys: OnceLock<Vec<CelString<'static>>>,
}

impl fmt::Debug for HeadersVal<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HeadersVal({:?})", self.map)
    }
}

impl<'a, 'h> Val for HeadersVal<'a, 'h> {
    fn get_type(&self) -> &Type {
        &MAP
    }
    fn cel_type() -> &'static Type {
        &MAP
    }
    fn as_indexer<'b, 'v>(&'b self) -> Option<&'b (dyn Indexer + 'v)>
    where
        Self: 'v,
    {
        Some(self)
    }
    fn as_container(&self) -> Option<&dyn Container> {
        Some(self)
    }
    fn as_iterable<'b, 'v>(&'b self) -> Option<&'b (dyn Iterable + 'v)>
    where
        Self: 'v,
    {
        Some(self)
    }
    fn as_sizer(&self) -> Option<&dyn Sizer> {
        Some(self)
    }
    fn clone_as_boxed<'v>(&self) -> Box<dyn Val + 'v>
    where
        Self: 'v,
    {
        Box::new(HeadersVal {
            attrs: self.attrs,
            map: self.map,
            path: self.path,
            keys: OnceLock::new(),
        })
    }
}

impl<'a, 'h> Indexer for HeadersVal<'a, 'h> {
    fn get<'b, 'v>(&'b self, idx: &dyn Val) -> Result<CowVal<'b, 'v>, ExecutionError>
    where
        Self: 'v,
    {
        let key = key_of(idx)?;
        match self.attrs.header(self.map, key) {
            Some(v) => Ok(CowVal::owned(CelString::from(v))),
            None => Err(no_such_key(key)),
        }
    }
    fn steal<'v>(self: Box<Self>, idx: &dyn Val) -> Result<Box<dyn Val + 'v>, ExecutionError>
    where
        Self: 'v,
    {
        self.get(idx).map(CowVal::into_owned)
    }
}

impl Container for HeadersVal<'_, '_> {
    fn contains(&self, value: &dyn Val) -> Result<bool, ExecutionError> {
        Ok(self.attrs.header(self.map, key_of(value)?).is_some())
    }
}

impl Iterable for HeadersVal<'_, '_> {
    fn iter<'b, 'v>(&'b self) -> Box<dyn traits::Iterator<'b, 'v> + 'b>
    where
        Self: 'v,
    {
        let keys = self.keys.get_or_init(|| load_keys(self.attrs, self.path));
        Box::new(KeyIter { keys: keys.iter() })
    }
}

impl Sizer for HeadersVal<'_, '_> {
    fn size(&self) -> CelInt {
        CelInt::from(self.attrs.map_size(self.path))
    }
}

/// The decoded FlatNode as Istio's CEL sees it (cel-cpp `flatbuffers_backed_impl`): a map with
/// the schema's lower-case field names; `labels` / `platform_metadata` are maps keyed by `key`
/// whose values are `{key, value}` tables, hence `upstream_peer.labels['app'].value`
/// (stats-spec §4.3); `app_containers` / `instance_ips` are lists of strings. Strings borrow
/// from the per-request decode: no copy per access.
#[derive(Debug)]
pub(super) struct PeerVal<'a> {
    pub node: &'a PeerNode,
}

impl<'a> Val for PeerVal<'a> {
    fn get_type(&self) -> &Type {
        &MAP
    }
    fn cel_type() -> &'static Type {
        &MAP
    }
    fn as_indexer<'b, 'v>(&'b self) -> Option<&'b (dyn Indexer + 'v)>
    where
        Self: 'v,
    {
        Some(self)
    }
    fn as_container(&self) -> Option<&dyn Container> {
        Some(self)
    }
    fn clone_as_boxed<'v>(&self) -> Box<dyn Val + 'v>
    where
        Self: 'v,
    {
        Box::new(PeerVal { node: self.node })
    }
}

impl<'a> PeerVal<'a> {
    pub(super) fn field(&self, key: &str) -> Option<Box<dyn Val + 'a>> {
        let n = self.node;
        let s = |v: &'a String| -> Option<Box<dyn Val + 'a>> {
            Some(Box::new(CelString::from(v.as_str())))
        };
        let list = |v: &'a [String]| -> Option<Box<dyn Val + 'a>> {
            let items: Vec<Box<dyn Val + 'a>> = v
                .iter()
                .map(|x| Box::new(CelString::from(x.as_str())) as Box<dyn Val + 'a>)
                .collect();
            Some(Box::new(CelList::from(items)))
        };
        match key {
            "name" => s(&n.name),
            "namespace" => s(&n.namespace),
            "owner" => s(&n.owner),
            "workload_name" => s(&n.workload_name),
            "istio_version" => s(&n.istio_version),
            "mesh_id" => s(&n.mesh_id),
            "cluster_id" => s(&n.cluster_id),
            "labels" => n
                .labels
                .as_deref()
                .map(|l| Box::new(KeyValMap::new(l)) as Box<dyn Val + 'a>),
            "platform_metadata" => Some(Box::new(KeyValMap::new(&n.platform_metadata))),
            "app_containers" => list(&n.app_containers),
            "instance_ips" => list(&n.instance_ips),
            _ => None,
        }
    }
}

impl<'a> Indexer for PeerVal<'a> {
    fn get<'b, 'v>(&'b self, idx: &dyn Val) -> Result<CowVal<'b, 'v>, ExecutionError>
    where
        Self: 'v,
    {
        let key = key_of(idx)?;
        match self.field(key) {
            Some(v) => Ok(CowVal::Owned(v)),
            None => Err(no_such_key(key)),
        }
    }
    fn steal<'v>(self: Box<Self>, idx: &dyn Val) -> Result<Box<dyn Val + 'v>, ExecutionError>
    where
        Self: 'v,
    {
        self.get(idx).map(CowVal::into_owned)
    }
}

impl Container for PeerVal<'_> {
    fn contains(&self, value: &dyn Val) -> Result<bool, ExecutionError> {
        Ok(self.field(key_of(value)?).is_some())
    }
}

/// A sorted `[KeyVal]` vector viewed as a map `key → {key, value}`.
#[derive(Debug)]
pub(super) struct KeyValMap<'a> {
    entries: &'a [(String, String)],
    keys: OnceLock<Vec<CelString<'a>>>,
}

impl<'a> KeyValMap<'a> {
    fn new(entries: &'a [(String, String)]) -> Self {
        KeyValMap {
            entries,
            keys: OnceLock::new(),
        }
    }

    fn find(&self, key: &str) -> Option<&'a (String, String)> {
        let entries = self.entries;
        entries
            .binary_search_by(|(k, _)| k.as_str().cmp(key))
            .ok()
            .and_then(|i| entries.get(i))
    }
}

impl<'a> Val for KeyValMap<'a> {
    fn get_type(&self) -> &Type {
        &MAP
    }
    fn cel_type() -> &'static Type {
        &MAP
    }
    fn as_indexer<'b, 'v>(&'b self) -> Option<&'b (dyn Indexer + 'v)>
    where
        Self: 'v,
    {
        Some(self)
    }
    fn as_container(&self) -> Option<&dyn Container> {
        Some(self)
    }
    fn as_iterable<'b, 'v>(&'b self) -> Option<&'b (dyn Iterable + 'v)>
    where
        Self: 'v,
    {
        Some(self)
    }
    fn as_sizer(&self) -> Option<&dyn Sizer> {
        Some(self)
    }
    fn clone_as_boxed<'v>(&self) -> Box<dyn Val + 'v>
    where
        Self: 'v,
    {
        Box::new(KeyValMap {
            entries: self.entries,
            keys: OnceLock::new(),
        })
    }
}

impl<'a> Indexer for KeyValMap<'a> {
    fn get<'b, 'v>(&'b self, idx: &dyn Val) -> Result<CowVal<'b, 'v>, ExecutionError>
    where
        Self: 'v,
    {
        let key = key_of(idx)?;
        match self.find(key) {
            Some((k, v)) => Ok(CowVal::owned(KeyVal {
                key: k.as_str(),
                value: v.as_str(),
            })),
            None => Err(no_such_key(key)),
        }
    }
    fn steal<'v>(self: Box<Self>, idx: &dyn Val) -> Result<Box<dyn Val + 'v>, ExecutionError>
    where
        Self: 'v,
    {
        self.get(idx).map(CowVal::into_owned)
    }
}

impl Container for KeyValMap<'_> {
    fn contains(&self, value: &dyn Val) -> Result<bool, ExecutionError> {
        Ok(self.find(key_of(value)?).is_some())
    }
}

impl<'a> Iterable for KeyValMap<'a> {
    fn iter<'b, 'v>(&'b self) -> Box<dyn traits::Iterator<'b, 'v> + 'b>
    where
        Self: 'v,
    {
        let keys = self.keys.get_or_init(|| {
            self.entries
                .iter()
                .map(|(k, _)| CelString::from(k.as_str()))
                .collect()
        });
        Box::new(KeyIter { keys: keys.iter() })
    }
}

impl Sizer for KeyValMap<'_> {
    fn size(&self) -> CelInt {
        CelInt::from(self.entries.len() as i64)
    }
}

/// One `KeyVal` table: fields `key` and `value`.
#[derive(Debug)]
pub(super) struct KeyVal<'a> {
    key: &'a str,
    value: &'a str,
}

impl<'a> Val for KeyVal<'a> {
    fn get_type(&self) -> &Type {
        &MAP
    }
    fn cel_type() -> &'static Type {
        &MAP
    }
    fn as_indexer<'b, 'v>(&'b self) -> Option<&'b (dyn Indexer + 'v)>
    where
        Self: 'v,
    {
        Some(self)
    }
    fn clone_as_boxed<'v>(&self) -> Box<dyn Val + 'v>
    where
        Self: 'v,
    {
        Box::new(KeyVal {
            key: self.key,
            value: self.value,
        })
    }
}

impl<'a> Indexer for KeyVal<'a> {
    fn get<'b, 'v>(&'b self, idx: &dyn Val) -> Result<CowVal<'b, 'v>, ExecutionError>
    where
        Self: 'v,
    {
        match key_of(idx)? {
            "key" => Ok(CowVal::owned(CelString::from(self.key))),
            "value" => Ok(CowVal::owned(CelString::from(self.value))),
            other => Err(no_such_key(other)),
        }
    }
    fn steal<'v>(self: Box<Self>, idx: &dyn Val) -> Result<Box<dyn Val + 'v>, ExecutionError>
    where
        Self: 'v,
    {
        self.get(idx).map(CowVal::into_owned)
    }
}

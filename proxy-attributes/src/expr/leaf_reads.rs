//! The leaves one callback has read, for expressions the direct evaluator ([`super::fast`])
//! decides from Envoy's typed leaves alone: attributegen's conditions (`request.url_path ==
//! '/items' && request.method == 'GET'`), the book's `request.method.startsWith('GET')`.
//!
//! Why not [`Attributes`]: it is the interpreter's resolver too (`Sync`, a slot table for every
//! leaf, peer and dynamic memos), and building and dropping it cost more than evaluating such a
//! condition (attributegen's book rules: ~1,600 of the module's ~2,900 wasm instructions per
//! stream went to the resolver and its value plumbing). When the direct path cannot decide (a
//! missing attribute, a type it does not handle, more distinct leaves than [`SLOTS`]), the
//! caller evaluates with [`Attributes::from_reads`], which starts from what was read here, so no
//! attribute is read twice and the answer, errors included, is the interpreter's.

use std::cell::{Cell, OnceCell};

use super::attributes::{leaf_def, LeafVal, Scalar};
use super::Attributes;
use crate::host::{AsDynHost, Host, Lent};

/// Distinct leaves one callback can hold (attributegen's book rules read two).
const SLOTS: usize = 4;

/// Generic over the host so that a module's reads call its binding directly (no dynamic call
/// per leaf); `dyn Host` by default.
pub struct LeafReads<'h, H: Host + AsDynHost + ?Sized = dyn Host> {
    host: &'h H,
    /// Per slot: index into the leaf table + 1; 0 = free. Slots fill in order.
    leaf: [Cell<u8>; SLOTS],
    /// The bytes as Envoy returned them, read in place where the binding can
    /// ([`Host::property_lent`]): a condition only compares them.
    value: [OnceCell<Option<Lent>>; SLOTS],
}

impl<'h, H: Host + AsDynHost + ?Sized> LeafReads<'h, H> {
    pub fn new(host: &'h H) -> Self {
        LeafReads {
            host,
            leaf: [const { Cell::new(0) }; SLOTS],
            value: [const { OnceCell::new() }; SLOTS],
        }
    }

    pub fn host(&self) -> &'h dyn Host {
        self.host.as_dyn()
    }

    /// Leaf `i`, read on first use; `None` when absent, not of its type (a string that is not
    /// UTF-8 included: the interpreter then decides, on the lossy text), or no slot is left.
    pub(super) fn leaf(&self, i: usize) -> Option<LeafVal<'_>> {
        let (path, kind) = leaf_def(i)?;
        let tag = u8::try_from(i + 1).ok()?;
        for (leaf, value) in self.leaf.iter().zip(&self.value) {
            match leaf.get() {
                t if t == tag => return kind.view(value.get()?.as_deref()?),
                0 => {
                    leaf.set(tag);
                    let bytes = value.get_or_init(|| self.host.property_lent(path));
                    return kind.view(bytes.as_deref()?);
                }
                _ => {}
            }
        }
        None
    }

    /// What was read: (leaf index, value as the full resolver holds it).
    pub(super) fn read(&self) -> impl Iterator<Item = (usize, Option<Scalar>)> + '_ {
        self.leaf
            .iter()
            .zip(&self.value)
            .filter_map(|(leaf, value)| {
                let i = usize::from(leaf.get()).checked_sub(1)?;
                let (_, kind) = leaf_def(i)?;
                let bytes = value.get()?;
                Some((
                    i,
                    bytes
                        .as_deref()
                        .and_then(|b| Scalar::decode(b.to_vec(), kind)),
                ))
            })
    }

    /// The full resolver, starting from what was read here.
    pub fn to_attributes(&self) -> Attributes<'h> {
        Attributes::from_reads(self)
    }
}

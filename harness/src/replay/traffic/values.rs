//! The custom deserialisers of the wire shapes: header maps, response flags, borrowed strings,
//! `null`-versus-absent, and the small enums.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use crate::replay::flags::parse_flags;

/// Tells `"field": null` (Some(None)) from an absent field (None).
pub(super) fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub(super) enum RawDirection {
    Inbound,
    Outbound,
    Gateway,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub(super) enum RawMx {
    Found,
    NotFound,
    None,
}

/// Header map: name → string or list of strings, names lower-cased, order kept, a list becoming
/// one entry per value (as repeated headers arrive on the wire).
#[derive(Default)]
pub(super) struct Headers<'a>(pub(super) Vec<(Str<'a>, Str<'a>)>);

impl<'de: 'a, 'a> Deserialize<'de> for Headers<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Headers<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of header name → string or list of strings")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Headers<'de>, E> {
                Ok(Headers::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Headers<'de>, A::Error> {
                let mut out = Vec::new();
                while let Some(mut name) = m.next_key::<Str<'de>>()? {
                    if name.0.bytes().any(|b| b.is_ascii_uppercase()) {
                        name.0.to_mut().make_ascii_lowercase();
                    }
                    match m.next_value::<HeaderValue<'de>>()? {
                        // The common case moves the name and value in: no copies.
                        HeaderValue::One(v) => out.push((name, v)),
                        HeaderValue::Many(values) => {
                            out.extend(values.into_iter().map(|v| (name.clone(), v)))
                        }
                    }
                }
                Ok(Headers(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// A header's value(s): one string (the common case, kept without a `Vec`) or a list.
enum HeaderValue<'a> {
    One(Str<'a>),
    Many(Vec<Str<'a>>),
}

impl<'de: 'a, 'a> Deserialize<'de> for HeaderValue<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = HeaderValue<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a header value: string or list of strings")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<HeaderValue<'de>, E> {
                Ok(HeaderValue::One(Str(std::borrow::Cow::Borrowed(v))))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<HeaderValue<'de>, E> {
                Ok(HeaderValue::One(Str(std::borrow::Cow::Owned(v.to_owned()))))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<HeaderValue<'de>, E> {
                Ok(HeaderValue::One(Str(std::borrow::Cow::Owned(v))))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<HeaderValue<'de>, A::Error> {
                let mut out = Vec::new();
                while let Some(v) = s.next_element::<Str<'de>>()? {
                    out.push(v);
                }
                Ok(HeaderValue::Many(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// `response.flags`: short codes (`"UO"`, `"UF,URX"`, `"-"`) or the integer bitmask.
#[derive(Default)]
pub(super) struct Flags(pub(super) u64);

impl<'de> Deserialize<'de> for Flags {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Flags;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "response flags: short codes like \"UO\" or \"UF,URX\", \"-\", or a bitmask",
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Flags, E> {
                parse_flags(v).map(Flags).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Flags, E> {
                Ok(Flags(v))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Flags, E> {
                Ok(Flags(0))
            }
        }
        d.deserialize_any(V)
    }
}

/// A JSON string borrowed from the line when it has no escapes (the common case: no copy and
/// no allocation until the event model needs ownership), owned otherwise. Its errors read
/// exactly as `String`'s ("expected a string"), so the reported reasons did not change.
#[derive(Debug, Default, Clone)]
pub(super) struct Str<'a>(std::borrow::Cow<'a, str>);

impl Str<'_> {
    pub(super) fn as_str(&self) -> &str {
        &self.0
    }

    pub(super) fn into_string(self) -> String {
        self.0.into_owned()
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Str<'de>, E> {
                Ok(Str(std::borrow::Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Str<'de>, E> {
                Ok(Str(std::borrow::Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Str<'de>, E> {
                Ok(Str(std::borrow::Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

pub(super) fn own(s: Option<Str>) -> Option<String> {
    s.map(Str::into_string)
}

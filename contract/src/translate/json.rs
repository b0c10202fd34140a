//! Reading and writing the JSON of a translation.
//!
//! Objects are read as maps of raw values ([`Obj`]): a field is taken out
//! when it is understood, and what is left over has no equivalent. Output
//! is built as a [`J`] tree whose leaves may be the input's raw bytes, so
//! that opaque values (JSON schemas, tool inputs) go through with their key
//! order, which models read.

use super::{OnUnsupported, Refusal, NO_EQUIVALENT};
use serde::de::DeserializeOwned;
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::collections::BTreeMap;

/// An object as read: each field's raw value, by name.
pub type Obj<'a> = BTreeMap<String, &'a RawValue>;

/// A JSON value being written.
#[derive(Debug, Clone)]
pub enum J<'a> {
    /// `null`.
    Null,
    /// A boolean.
    Bool(bool),
    /// A whole number.
    U(u64),
    /// A string.
    S(Cow<'a, str>),
    /// Raw JSON from the input, written as it came.
    Raw(&'a RawValue),
    /// Raw JSON made here.
    RawOwned(Box<RawValue>),
    /// An array.
    A(Vec<J<'a>>),
    /// An object, fields in the order written.
    O(Vec<(Cow<'a, str>, J<'a>)>),
}

impl<'a> J<'a> {
    /// A string from a static text.
    pub fn s(s: &'a str) -> J<'a> {
        J::S(Cow::Borrowed(s))
    }

    /// An object from its fields.
    pub fn obj<const N: usize>(fields: [(&'a str, J<'a>); N]) -> J<'a> {
        J::O(fields.into_iter().map(|(k, v)| (Cow::Borrowed(k), v)).collect())
    }

    /// Adds a field to an object (nothing for other values).
    pub fn push(&mut self, key: &'a str, value: J<'a>) {
        if let J::O(fields) = self {
            fields.push((Cow::Borrowed(key), value));
        }
    }

    /// The value as JSON bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

impl Serialize for J<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            J::Null => s.serialize_unit(),
            J::Bool(b) => s.serialize_bool(*b),
            J::U(n) => s.serialize_u64(*n),
            J::S(t) => s.serialize_str(t),
            J::Raw(r) => r.serialize(s),
            J::RawOwned(r) => r.serialize(s),
            J::A(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for i in items {
                    seq.serialize_element(i)?;
                }
                seq.end()
            }
            J::O(fields) => {
                let mut map = s.serialize_map(Some(fields.len()))?;
                for (k, v) in fields {
                    map.serialize_entry(k.as_ref(), v)?;
                }
                map.end()
            }
        }
    }
}

/// A refusal of a value that is not what its field takes.
pub fn bad(field: impl Into<String>, why: &'static str) -> Refusal {
    Refusal {
        field: field.into(),
        why,
    }
}

/// Reads `raw` as `T`, or refuses `field`.
pub fn read<T: DeserializeOwned>(raw: &RawValue, field: &str, why: &'static str) -> Result<T, Refusal> {
    serde_json::from_str(raw.get()).map_err(|_| bad(field, why))
}

/// Reads `raw` as an object, or refuses `field`.
pub fn obj<'a>(raw: &'a RawValue, field: &str) -> Result<Obj<'a>, Refusal> {
    serde_json::from_str(raw.get()).map_err(|_| bad(field, "must be an object"))
}

/// Reads `raw` as an array of raw values, or refuses `field`.
pub fn arr<'a>(raw: &'a RawValue, field: &str) -> Result<Vec<&'a RawValue>, Refusal> {
    serde_json::from_str(raw.get()).map_err(|_| bad(field, "must be an array"))
}

/// Reads `raw` as a string, or refuses `field`.
pub fn string(raw: &RawValue, field: &str) -> Result<String, Refusal> {
    read(raw, field, "must be a string")
}

/// Whether `raw` is JSON `null`.
pub fn is_null(raw: &RawValue) -> bool {
    raw.get() == "null"
}

/// Takes a field out of `o`, `None` when absent or `null`.
pub fn take<'a>(o: &mut Obj<'a>, key: &str) -> Option<&'a RawValue> {
    o.remove(key).filter(|r| !is_null(r))
}

/// Takes a field `o` must have (`field` names it in the refusal).
pub fn need<'a>(o: &mut Obj<'a>, key: &str, field: impl Into<String>) -> Result<&'a RawValue, Refusal> {
    take(o, key).ok_or_else(|| bad(field, "field required"))
}

/// Raw JSON made from a serializable value.
pub fn raw_of<T: Serialize + ?Sized>(v: &T) -> J<'static> {
    match serde_json::value::to_raw_value(v) {
        Ok(r) => J::RawOwned(r),
        Err(_) => J::Null,
    }
}

/// What a request translation drops, by the route's choice.
#[derive(Debug)]
pub struct Fields {
    on: OnUnsupported,
    /// What was dropped, each once, in the order met.
    pub dropped: Vec<String>,
}

impl Fields {
    /// Under the route's choice.
    pub fn new(on: OnUnsupported) -> Fields {
        Fields {
            on,
            dropped: Vec::new(),
        }
    }

    /// `field` has no equivalent: refused, or dropped and named.
    pub fn unsupported(&mut self, field: &str) -> Result<(), Refusal> {
        match self.on {
            OnUnsupported::Refuse => Err(bad(field, NO_EQUIVALENT)),
            OnUnsupported::Drop => {
                self.hint(field);
                Ok(())
            }
        }
    }

    /// `field` is a hint that changes no output on the other side: dropped
    /// and named whatever the route's choice.
    pub fn hint(&mut self, field: &str) {
        if !self.dropped.iter().any(|d| d == field) {
            self.dropped.push(field.to_owned());
        }
    }

    /// Whatever is left in `o` has no equivalent (`prefix.name`).
    pub fn rest(&mut self, o: &Obj<'_>, prefix: &str) -> Result<(), Refusal> {
        for (k, v) in o {
            if is_null(v) {
                continue;
            }
            if prefix.is_empty() {
                self.unsupported(k)?;
            } else {
                self.unsupported(&format!("{prefix}.{k}"))?;
            }
        }
        Ok(())
    }
}

/// Splits a `data:` URL into its media type and base64 payload.
pub fn data_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let media = meta.strip_suffix(";base64")?;
    Some((media, data))
}

//! A document's tree as a serde `Deserializer`: typed values straight from the spanned
//! tree, without the JSON tree [`super::Document::value`] builds first (for a plan, a
//! tree of every matrix entry). It reads exactly what deserializing that value reads, with
//! the same errors: objects visited in the value's key order (sorted; for a key written
//! twice, the later member only), the dispatch of `serde_json::Value`'s own deserializer
//! (options, enums as a string or a one-key map, numbers through `serde_json::Number`),
//! and `serde_json::Error` for every failure.

use serde::de::{
    self, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, SeqAccess, Visitor,
};
use serde_json::Error;

use super::{Member, Node, NodeKind};

/// A node as a deserializer.
#[derive(Clone, Copy)]
pub(super) struct NodeDe<'a>(pub(super) &'a Node);

/// What `serde_json::Value` reports as the unexpected value of a node.
fn unexpected(node: &Node) -> de::Unexpected<'_> {
    match &node.kind {
        NodeKind::Null => de::Unexpected::Unit,
        NodeKind::Bool(b) => de::Unexpected::Bool(*b),
        NodeKind::Number(n) => {
            if let Some(u) = n.as_u64() {
                de::Unexpected::Unsigned(u)
            } else if let Some(i) = n.as_i64() {
                de::Unexpected::Signed(i)
            } else {
                de::Unexpected::Float(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        NodeKind::String(s) => de::Unexpected::Str(s),
        NodeKind::Array(_) => de::Unexpected::Seq,
        NodeKind::Object(_) => de::Unexpected::Map,
    }
}

/// An object's members in the order of the value's map: sorted by key, and of a key written
/// twice only the later member. Members whose keys already increase (a generated registry
/// or matrix, a row of a few keys) are visited in place, without a list; others through
/// one list of them, sorted.
fn value_order(members: &[Member]) -> Order<'_> {
    if super::keys_increase(members) {
        return Order::InPlace(members.iter());
    }
    let mut order: Vec<&Member> = members.iter().collect();
    // By key, then the later of equal keys first (members are one slice: the later one is
    // at the higher address), so `dedup` keeps it.
    order.sort_by(|a, b| {
        a.key
            .cmp(&b.key)
            .then_with(|| std::ptr::from_ref(*b).cmp(&std::ptr::from_ref(*a)))
    });
    order.dedup_by(|b, a| a.key == b.key);
    Order::Sorted(order.into_iter())
}

/// The members of an object in [`value_order`].
enum Order<'a> {
    /// The members themselves, their keys increasing.
    InPlace(std::slice::Iter<'a, Member>),
    /// A sorted list of them.
    Sorted(std::vec::IntoIter<&'a Member>),
}

impl<'a> Iterator for Order<'a> {
    type Item = &'a Member;

    fn next(&mut self) -> Option<&'a Member> {
        match self {
            Order::InPlace(it) => it.next(),
            Order::Sorted(it) => it.next(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            Order::InPlace(it) => it.size_hint(),
            Order::Sorted(it) => it.size_hint(),
        }
    }
}

impl ExactSizeIterator for Order<'_> {}

impl<'de> Deserializer<'de> for NodeDe<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match &self.0.kind {
            NodeKind::Null => visitor.visit_unit(),
            NodeKind::Bool(b) => visitor.visit_bool(*b),
            NodeKind::Number(n) => n.clone().deserialize_any(visitor),
            NodeKind::String(s) => visitor.visit_string(s.to_string()),
            NodeKind::Array(items) => {
                let mut seq = Seq {
                    items: items.iter(),
                };
                let v = visitor.visit_seq(&mut seq)?;
                if seq.items.len() == 0 {
                    Ok(v)
                } else {
                    Err(de::Error::invalid_length(
                        items.len(),
                        &"fewer elements in array",
                    ))
                }
            }
            NodeKind::Object(members) => {
                let order = value_order(members);
                let len = order.len();
                let mut map = Map {
                    members: order,
                    value: None,
                };
                let v = visitor.visit_map(&mut map)?;
                if map.members.len() == 0 {
                    Ok(v)
                } else {
                    Err(de::Error::invalid_length(len, &"fewer elements in map"))
                }
            }
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match &self.0.kind {
            NodeKind::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match &self.0.kind {
            NodeKind::Object(members) => {
                let mut it = value_order(members);
                let Some(first) = it.next() else {
                    return Err(de::Error::invalid_value(
                        de::Unexpected::Map,
                        &"map with a single key",
                    ));
                };
                if it.next().is_some() {
                    return Err(de::Error::invalid_value(
                        de::Unexpected::Map,
                        &"map with a single key",
                    ));
                }
                visitor.visit_enum(Enum {
                    variant: &first.key,
                    value: Some(&first.value),
                })
            }
            NodeKind::String(s) => visitor.visit_enum(Enum {
                variant: s,
                value: None,
            }),
            _ => Err(de::Error::invalid_type(
                unexpected(self.0),
                &"string or map",
            )),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }

    // The shapes `serde_json::Value` accepts for these hints, any other node refused with
    // its own "invalid type" (a visitor that takes more than the hint's shape — a variant
    // or field identifier also takes an integer index — must not get it from a node the
    // value would have refused).
    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match &self.0.kind {
            NodeKind::String(s) => visitor.visit_string(s.to_string()),
            _ => Err(de::Error::invalid_type(unexpected(self.0), &visitor)),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_string(visitor)
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_string(visitor)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_string(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match &self.0.kind {
            NodeKind::String(_) | NodeKind::Array(_) => self.deserialize_any(visitor),
            _ => Err(de::Error::invalid_type(unexpected(self.0), &visitor)),
        }
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match &self.0.kind {
            NodeKind::Null => visitor.visit_unit(),
            _ => Err(de::Error::invalid_type(unexpected(self.0), &visitor)),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match &self.0.kind {
            NodeKind::Array(_) => self.deserialize_any(visitor),
            _ => Err(de::Error::invalid_type(unexpected(self.0), &visitor)),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match &self.0.kind {
            NodeKind::Object(_) => self.deserialize_any(visitor),
            _ => Err(de::Error::invalid_type(unexpected(self.0), &visitor)),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match &self.0.kind {
            NodeKind::Array(_) | NodeKind::Object(_) => self.deserialize_any(visitor),
            _ => Err(de::Error::invalid_type(unexpected(self.0), &visitor)),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64
    }
}

struct Seq<'a> {
    items: std::slice::Iter<'a, Node>,
}

impl<'de> SeqAccess<'de> for Seq<'de> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        match self.items.next() {
            Some(n) => seed.deserialize(NodeDe(n)).map(Some),
            None => Ok(None),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct Map<'a> {
    members: Order<'a>,
    value: Option<&'a Node>,
}

impl<'de> MapAccess<'de> for Map<'de> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        match self.members.next() {
            Some(m) => {
                self.value = Some(&m.value);
                // The key as a `&str` (`visit_str`): a struct's field name is matched
                // without a copy; a map's key type copies it as it would own a `String`.
                let key: de::value::StrDeserializer<'_, Error> = m.key.as_str().into_deserializer();
                seed.deserialize(key).map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, Error> {
        match self.value.take() {
            Some(v) => seed.deserialize(NodeDe(v)),
            None => Err(de::Error::custom("value is missing")),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.members.len())
    }
}

struct Enum<'a> {
    variant: &'a str,
    value: Option<&'a Node>,
}

impl<'de> de::EnumAccess<'de> for Enum<'de> {
    type Error = Error;
    type Variant = Variant<'de>;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Variant<'de>), Error> {
        let key: de::value::StrDeserializer<Error> = self.variant.into_deserializer();
        let variant = seed.deserialize(key)?;
        Ok((variant, Variant { value: self.value }))
    }
}

struct Variant<'a> {
    value: Option<&'a Node>,
}

impl<'de> de::VariantAccess<'de> for Variant<'de> {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        match self.value {
            Some(v) => serde::Deserialize::deserialize(NodeDe(v)),
            None => Ok(()),
        }
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Error> {
        match self.value {
            Some(v) => seed.deserialize(NodeDe(v)),
            None => Err(de::Error::invalid_type(
                de::Unexpected::UnitVariant,
                &"newtype variant",
            )),
        }
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Some(
                v @ Node {
                    kind: NodeKind::Array(_),
                    ..
                },
            ) => NodeDe(v).deserialize_any(visitor),
            Some(other) => Err(de::Error::invalid_type(unexpected(other), &"tuple variant")),
            None => Err(de::Error::invalid_type(
                de::Unexpected::UnitVariant,
                &"tuple variant",
            )),
        }
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.value {
            Some(
                v @ Node {
                    kind: NodeKind::Object(_),
                    ..
                },
            ) => NodeDe(v).deserialize_any(visitor),
            Some(other) => Err(de::Error::invalid_type(
                unexpected(other),
                &"struct variant",
            )),
            None => Err(de::Error::invalid_type(
                de::Unexpected::UnitVariant,
                &"struct variant",
            )),
        }
    }
}

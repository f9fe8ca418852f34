//! Makes derived struct deserialisers accept only JSON objects.
//!
//! A `#[derive(Deserialize)]` struct also accepts a JSON array holding its
//! fields by position, so `"Memory": [2048]` would read as `SizeInMB: 2048`.
//! [`ObjectOnly`] wraps the deserializer handed to such a derived impl and
//! wraps the visitor it passes to `deserialize_struct` so that only
//! `visit_map` succeeds; an array then fails with
//! `invalid type: sequence, expected a JSON object (VirtualMachineMemory)`.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};

/// Deserializer wrapper carrying the Rust name of the struct, used in
/// "expected a JSON object (<name>)"; see the module documentation.
pub struct ObjectOnly<D>(pub D, pub &'static str);

impl<'de, D: Deserializer<'de>> Deserializer<'de> for ObjectOnly<D> {
    type Error = D::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_any(visitor)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        let _ = name;
        self.0
            .deserialize_struct(self.1, fields, MapOnly(visitor, self.1))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

/// Visitor wrapper that forwards only `visit_map`; every other input is an
/// "invalid type" error phrased with the inner visitor's expectation.
struct MapOnly<V>(V, &'static str);

impl<'de, V: Visitor<'de>> Visitor<'de> for MapOnly<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a JSON object ({})", self.1)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.0.visit_map(map)
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, _seq: A) -> Result<V::Value, A::Error> {
        Err(de::Error::invalid_type(de::Unexpected::Seq, &self))
    }
}

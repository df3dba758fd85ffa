//! Bencode values of the ng protocol, decoded and encoded by `serde_bencode`.
//!
//! Decoding goes through a depth-counting [`DeserializeSeed`] so a hostile datagram of
//! nested lists cannot exhaust the stack: past [`MAX_DEPTH`] the decoder stops with an
//! error. Dictionaries keep the order of the wire: rtpengine's protocol does not require
//! sorted keys and Kamailio does not sort them. Encoding sorts keys (the serializer does),
//! as bencode asks.

use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};

/// Deepest nesting accepted (an ng request nests two levels: a list in the dictionary).
pub const MAX_DEPTH: usize = 8;

/// One bencode value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// Byte string.
    Bytes(Vec<u8>),
    /// Integer.
    Int(i64),
    /// List.
    List(Vec<Value>),
    /// Dictionary, in wire order.
    Dict(Vec<(Vec<u8>, Value)>),
}

impl Value {
    /// A byte-string value of `s`.
    pub fn s(s: impl AsRef<[u8]>) -> Self {
        Value::Bytes(s.as_ref().to_vec())
    }

    /// A dictionary from `(key, value)` pairs.
    pub fn dict<const N: usize>(pairs: [(&str, Value); N]) -> Self {
        Value::Dict(
            pairs
                .into_iter()
                .map(|(k, v)| (k.as_bytes().to_vec(), v))
                .collect(),
        )
    }

    /// The value of `key` in a dictionary (first occurrence).
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(d) => d.iter().find(|(k, _)| k == key.as_bytes()).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The bytes of a byte string.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// Sets `key` in a dictionary (appended; replaces an existing entry).
    pub fn insert(&mut self, key: &str, v: Value) {
        if let Value::Dict(d) = self {
            match d.iter_mut().find(|(k, _)| k == key.as_bytes()) {
                Some(slot) => slot.1 = v,
                None => d.push((key.as_bytes().to_vec(), v)),
            }
        }
    }

    /// The bencoding of the value (dictionary keys sorted).
    pub fn encode(&self) -> Vec<u8> {
        // Serializing plain bytes, integers, lists and byte-keyed maps cannot fail.
        serde_bencode::to_bytes(self).unwrap_or_default()
    }
}

/// Why a datagram's body is not a bencode value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not bencode: {0}")]
pub struct DecodeError(String);

/// Decodes one value from the front of `buf` (bytes after it are ignored).
///
/// # Errors
/// Malformed bencode, or nesting deeper than [`MAX_DEPTH`].
pub fn decode(buf: &[u8]) -> Result<Value, DecodeError> {
    let mut de = serde_bencode::Deserializer::new(buf);
    Seed { depth: 0 }
        .deserialize(&mut de)
        .map_err(|e| DecodeError(e.to_string()))
}

/// Decodes a value at nesting level `depth`.
struct Seed {
    depth: usize,
}

impl Seed {
    fn inner<E: de::Error>(&self) -> Result<Seed, E> {
        if self.depth >= MAX_DEPTH {
            return Err(E::custom(format_args!("nested deeper than {MAX_DEPTH}")));
        }
        Ok(Seed {
            depth: self.depth + 1,
        })
    }
}

impl<'de> DeserializeSeed<'de> for Seed {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seed {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a bencode value")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        i64::try_from(v)
            .map(Value::Int)
            .map_err(|_| E::custom("integer out of range"))
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Value, E> {
        Ok(Value::Bytes(v.to_vec()))
    }

    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Value, E> {
        Ok(Value::Bytes(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Bytes(v.as_bytes().to_vec()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(self.inner()?)? {
            out.push(v);
        }
        Ok(Value::List(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(k) = map.next_key_seed(self.inner()?)? {
            let Value::Bytes(k) = k else {
                return Err(de::Error::custom("dictionary key is not a byte string"));
            };
            let v = map.next_value_seed(self.inner()?)?;
            out.push((k, v));
        }
        Ok(Value::Dict(out))
    }
}

/// Serializes `&[u8]` as a bencode byte string.
struct Bytes<'a>(&'a [u8]);

impl Serialize for Bytes<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Bytes(b) => s.serialize_bytes(b),
            Value::Int(i) => s.serialize_i64(*i),
            Value::List(l) => {
                let mut seq = s.serialize_seq(Some(l.len()))?;
                for v in l {
                    seq.serialize_element(v)?;
                }
                seq.end()
            }
            Value::Dict(d) => {
                let mut map = s.serialize_map(Some(d.len()))?;
                for (k, v) in d {
                    map.serialize_entry(&Bytes(k), v)?;
                }
                map.end()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsorted_dictionaries_decode_in_wire_order_and_encode_sorted() {
        // As Kamailio's rtpengine module sends it: keys not sorted.
        let wire = b"d3:sdp3:v=03:ICE6:remove5:flagsl13:trust-addresse7:command5:offere";
        let v = decode(wire).unwrap();
        assert_eq!(v.get("command"), Some(&Value::s("offer")));
        assert_eq!(v.get("ICE").and_then(Value::as_bytes), Some(&b"remove"[..]));
        let Value::Dict(d) = &v else { panic!() };
        assert_eq!(d.first().map(|(k, _)| k.as_slice()), Some(&b"sdp"[..]));
        assert_eq!(
            v.encode(),
            b"d3:ICE6:remove7:command5:offer5:flagsl13:trust-addresse3:sdp3:v=0e".to_vec()
        );
    }

    #[test]
    fn integers_and_nested_values_round_trip() {
        let v = Value::dict([
            ("n", Value::Int(-3)),
            ("l", Value::List(vec![Value::s("a"), Value::Int(7)])),
        ]);
        assert_eq!(decode(&v.encode()).unwrap().get("n"), Some(&Value::Int(-3)));
        assert_eq!(v.encode(), b"d1:ll1:ai7ee1:ni-3ee".to_vec());
    }

    #[test]
    fn garbage_and_deep_nesting_are_errors_not_crashes() {
        for bad in [
            &b"d3:abc"[..],
            b"99999999999999999999:x",
            b"i12",
            b"l",
            b"x",
            b"",
            b"di1ei2ee",
            b"99:ab",
        ] {
            assert!(decode(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        // 60,000 nested lists: stops at the depth limit instead of recursing.
        let deep = vec![b'l'; 60_000];
        let e = decode(&deep).unwrap_err();
        assert!(e.to_string().contains("nested deeper"), "{e}");
        let mut ok = vec![b'l'; MAX_DEPTH];
        ok.extend(vec![b'e'; MAX_DEPTH]);
        assert!(decode(&ok).is_ok());
    }
}

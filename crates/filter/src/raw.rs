//! The filter as it arrives in JSON, before validation.
//!
//! Cloudflare clients send one scalar per field (`"source_port": 53`); edgecap clients may send a
//! string with a prefix or range, or an array of either. [`RawFilter`] accepts all of those shapes
//! and nothing else (unknown fields are refused), and [`RawFilter::validate`] turns it into a
//! [`StructuredFilter`] or a [`FilterError`] naming the field. An API that wants that error as
//! data deserializes a `RawFilter` and validates it itself; deserializing a `StructuredFilter`
//! directly does both and reports the same message through serde.

use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::ser::{SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};

use crate::error::{Field, FilterError};
use crate::structured::StructuredFilter;

/// One value of a field, as JSON gave it.
#[derive(Debug, Clone, PartialEq)]
pub enum RawValue {
    Int(i128),
    Float(f64),
    Text(String),
}

/// `filter_v1` as sent: every field optional, each a scalar or a list.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFilter {
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        serialize_with = "one_or_many"
    )]
    #[serde(deserialize_with = "source_address")]
    pub source_address: Vec<RawValue>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        serialize_with = "one_or_many"
    )]
    #[serde(deserialize_with = "destination_address")]
    pub destination_address: Vec<RawValue>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        serialize_with = "one_or_many"
    )]
    #[serde(deserialize_with = "source_port")]
    pub source_port: Vec<RawValue>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        serialize_with = "one_or_many"
    )]
    #[serde(deserialize_with = "destination_port")]
    pub destination_port: Vec<RawValue>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        serialize_with = "one_or_many"
    )]
    #[serde(deserialize_with = "protocol")]
    pub protocol: Vec<RawValue>,
}

impl RawFilter {
    /// Parses every value and checks the fields against each other (ports against protocols, IP
    /// versions, the rule limit), so a filter that passes here always compiles.
    pub fn validate(&self) -> Result<StructuredFilter, FilterError> {
        StructuredFilter::from_raw(self)
    }
}

impl TryFrom<RawFilter> for StructuredFilter {
    type Error = FilterError;

    fn try_from(raw: RawFilter) -> Result<Self, FilterError> {
        raw.validate()
    }
}

impl From<StructuredFilter> for RawFilter {
    fn from(filter: StructuredFilter) -> Self {
        filter.to_raw()
    }
}

impl RawValue {
    /// The value as the user wrote it, for error messages.
    pub fn text(&self) -> String {
        match self {
            RawValue::Int(n) => n.to_string(),
            RawValue::Float(x) => x.to_string(),
            RawValue::Text(s) => s.clone(),
        }
    }

    /// An integer, including a float with no fractional part: some SDKs type these fields as
    /// floats and send `53.0`.
    pub fn as_integer(&self) -> Option<i128> {
        match self {
            RawValue::Int(n) => Some(*n),
            // The range check keeps the cast exact; anything that large is out of range anyway.
            RawValue::Float(x) if x.fract() == 0.0 && x.abs() < 1e15 => Some(*x as i128),
            _ => None,
        }
    }
}

impl Serialize for RawValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            RawValue::Int(n) => match i64::try_from(*n) {
                Ok(small) => s.serialize_i64(small),
                Err(_) => s.serialize_i128(*n),
            },
            RawValue::Float(x) => s.serialize_f64(*x),
            RawValue::Text(t) => s.serialize_str(t),
        }
    }
}

impl<'de> Deserialize<'de> for RawValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValuesVisitor { field: None })
            .and_then(|mut values| match (values.pop(), values.is_empty()) {
                (Some(v), true) => Ok(v),
                _ => Err(de::Error::custom("expected a string or a number")),
            })
    }
}

/// Visits a scalar (giving one value), `null` (none) or, for a field, an array of scalars.
struct ValuesVisitor {
    /// `None` inside an array, where only scalars are allowed.
    field: Option<Field>,
}

impl<'de> Visitor<'de> for ValuesVisitor {
    type Value = Vec<RawValue>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.field {
            Some(field) => write!(f, "{field}: a string or number, or an array of them"),
            None => f.write_str("a string or number"),
        }
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(vec![RawValue::Int(v.into())])
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(vec![RawValue::Int(v.into())])
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Self::Value, E> {
        Ok(vec![RawValue::Int(v)])
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Self::Value, E> {
        Ok(vec![RawValue::Int(i128::try_from(v).unwrap_or(i128::MAX))])
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(vec![RawValue::Float(v)])
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(vec![RawValue::Text(v.to_owned())])
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        if self.field.is_none() {
            return Err(de::Error::invalid_type(de::Unexpected::Seq, &self));
        }
        let mut values = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(v) = seq.next_element::<RawValue>()? {
            values.push(v);
        }
        Ok(values)
    }
}

fn values<'de, D: Deserializer<'de>>(d: D, field: Field) -> Result<Vec<RawValue>, D::Error> {
    d.deserialize_any(ValuesVisitor { field: Some(field) })
}

fn source_address<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<RawValue>, D::Error> {
    values(d, Field::SourceAddress)
}

fn destination_address<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<RawValue>, D::Error> {
    values(d, Field::DestinationAddress)
}

fn source_port<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<RawValue>, D::Error> {
    values(d, Field::SourcePort)
}

fn destination_port<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<RawValue>, D::Error> {
    values(d, Field::DestinationPort)
}

fn protocol<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<RawValue>, D::Error> {
    values(d, Field::Protocol)
}

/// One value stays a scalar, so a Cloudflare-shaped filter serializes back to Cloudflare's shape.
fn one_or_many<S: Serializer>(values: &[RawValue], s: S) -> Result<S::Ok, S::Error> {
    match values {
        [one] => one.serialize(s),
        many => {
            let mut seq = s.serialize_seq(Some(many.len()))?;
            for v in many {
                seq.serialize_element(v)?;
            }
            seq.end()
        }
    }
}

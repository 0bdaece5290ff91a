//! The structured filter: Cloudflare's `filter_v1` with prefixes, IPv6, port ranges and lists.

use std::collections::HashSet;
use std::fmt;
use std::hash::Hash;

use serde::{Deserialize, Serialize};

use crate::address::Prefix;
use crate::error::{Field, FilterError};
use crate::port::PortRange;
use crate::protocol::Protocol;
use crate::raw::{RawFilter, RawValue};

/// A validated filter. Fields are ANDed; the values of one field are ORed; an empty field does
/// not constrain. Built from JSON (via [`RawFilter`]), from CLI options ([`from_cli`]) or
/// directly; [`compile`](StructuredFilter::compile) turns it into nftables match rules.
///
/// Serializes in Cloudflare's shape where it can (one address as a string, one port or protocol
/// as a number) and as arrays and strings (`"198.18.0.0/15"`, `"1024-65535"`) otherwise.
///
/// [`from_cli`]: StructuredFilter::from_cli
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawFilter", into = "RawFilter")]
pub struct StructuredFilter {
    pub source_address: Vec<Prefix>,
    pub destination_address: Vec<Prefix>,
    pub source_port: Vec<PortRange>,
    pub destination_port: Vec<PortRange>,
    pub protocol: Vec<Protocol>,
}

impl StructuredFilter {
    /// Builds a filter from repeatable CLI options, each of which may hold a comma-separated
    /// list (`--src 198.18.0.0/24,2001:db8::1`). Checked as fully as a filter from JSON.
    pub fn from_cli<S: AsRef<str>>(
        src: &[S],
        dst: &[S],
        sport: &[S],
        dport: &[S],
        proto: &[S],
    ) -> Result<Self, FilterError> {
        let items = |options: &[S]| -> Vec<String> {
            options
                .iter()
                .flat_map(|o| o.as_ref().split(',').map(str::to_owned).collect::<Vec<_>>())
                .collect()
        };
        let filter = StructuredFilter {
            source_address: parse_all(&items(src), |t| Prefix::parse(Field::SourceAddress, t))?,
            destination_address: parse_all(&items(dst), |t| {
                Prefix::parse(Field::DestinationAddress, t)
            })?,
            source_port: parse_all(&items(sport), |t| PortRange::parse(Field::SourcePort, t))?,
            destination_port: parse_all(&items(dport), |t| {
                PortRange::parse(Field::DestinationPort, t)
            })?,
            protocol: parse_all(&items(proto), |t| Protocol::parse(t))?,
        };
        filter.validate()?;
        Ok(filter)
    }

    pub(crate) fn from_raw(raw: &RawFilter) -> Result<Self, FilterError> {
        let filter = StructuredFilter {
            source_address: parse_all(&raw.source_address, |v| address(Field::SourceAddress, v))?,
            destination_address: parse_all(&raw.destination_address, |v| {
                address(Field::DestinationAddress, v)
            })?,
            source_port: parse_all(&raw.source_port, |v| port(Field::SourcePort, v))?,
            destination_port: parse_all(&raw.destination_port, |v| {
                port(Field::DestinationPort, v)
            })?,
            protocol: parse_all(&raw.protocol, protocol)?,
        };
        filter.validate()?;
        Ok(filter)
    }

    pub(crate) fn to_raw(&self) -> RawFilter {
        let text = |v: &dyn fmt::Display| RawValue::Text(v.to_string());
        let port = |p: &PortRange| match p.is_single() {
            true => RawValue::Int(p.lo().into()),
            false => text(p),
        };
        RawFilter {
            source_address: self.source_address.iter().map(|p| text(p)).collect(),
            destination_address: self.destination_address.iter().map(|p| text(p)).collect(),
            source_port: self.source_port.iter().map(port).collect(),
            destination_port: self.destination_port.iter().map(port).collect(),
            protocol: self
                .protocol
                .iter()
                .map(|p| RawValue::Int(p.0.into()))
                .collect(),
        }
    }

    /// Checks the fields against each other: ports need protocols that have ports, addresses and
    /// protocols must share an IP version, and the filter must fit in [`MAX_RULES`] rules.
    ///
    /// [`MAX_RULES`]: crate::MAX_RULES
    pub fn validate(&self) -> Result<(), FilterError> {
        self.compile().map(drop)
    }

    /// True when the filter matches every packet.
    pub fn is_empty(&self) -> bool {
        self.source_address.is_empty()
            && self.destination_address.is_empty()
            && self.source_port.is_empty()
            && self.destination_port.is_empty()
            && self.protocol.is_empty()
    }
}

/// Parses every value, dropping repeats (so `53,53` is one rule, not two).
fn parse_all<I, T: Eq + Hash + Copy>(
    inputs: &[I],
    parse: impl Fn(&I) -> Result<T, FilterError>,
) -> Result<Vec<T>, FilterError> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for input in inputs {
        let value = parse(input)?;
        if seen.insert(value) {
            out.push(value);
        }
    }
    Ok(out)
}

fn address(field: Field, v: &RawValue) -> Result<Prefix, FilterError> {
    match v {
        RawValue::Text(t) => Prefix::parse(field, t),
        other => Err(FilterError::BadAddress {
            field,
            value: other.text(),
        }),
    }
}

fn port(field: Field, v: &RawValue) -> Result<PortRange, FilterError> {
    match (v, v.as_integer()) {
        (RawValue::Text(t), _) => PortRange::parse(field, t),
        (_, Some(n)) => PortRange::from_number(field, n),
        (other, None) => Err(FilterError::BadPort {
            field,
            value: other.text(),
        }),
    }
}

fn protocol(v: &RawValue) -> Result<Protocol, FilterError> {
    match (v, v.as_integer()) {
        (RawValue::Text(t), _) => Protocol::parse(t),
        (_, Some(n)) => Protocol::from_number(n),
        (other, None) => Err(FilterError::UnknownProtocol {
            value: other.text(),
        }),
    }
}

/// A short, tcpdump-flavoured summary: `src 198.18.0.0/24 and udp and dst port 53`.
impl fmt::Display for StructuredFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("all packets");
        }
        let proto = |p: &Protocol| match p.name() {
            Some(name) => name.to_owned(),
            None => format!("proto {}", p.0),
        };
        let parts = [
            ("src ", any_of(&self.source_address, Prefix::to_string)),
            ("dst ", any_of(&self.destination_address, Prefix::to_string)),
            ("", any_of(&self.protocol, proto)),
            ("src port ", any_of(&self.source_port, PortRange::to_string)),
            (
                "dst port ",
                any_of(&self.destination_port, PortRange::to_string),
            ),
        ];
        let parts: Vec<String> = parts
            .into_iter()
            .filter_map(|(label, values)| values.map(|v| format!("{label}{v}")))
            .collect();
        f.write_str(&parts.join(" and "))
    }
}

/// `a`, or `(a or b)`; `None` for an empty field.
fn any_of<T>(values: &[T], show: impl Fn(&T) -> String) -> Option<String> {
    match values {
        [] => None,
        [one] => Some(show(one)),
        many => Some(format!(
            "({})",
            many.iter().map(show).collect::<Vec<_>>().join(" or ")
        )),
    }
}

#[cfg(test)]
#[path = "structured_tests.rs"]
mod tests;

//! Why a filter was refused, always naming the field at fault.

use std::fmt;

use crate::ir::Family;
use crate::protocol::Protocol;

/// The most conjunctions (nftables rules) one filter may compile to. Each rule costs a little
/// for every packet that crosses the hook, so long lists should become prefixes or ranges.
pub const MAX_RULES: usize = 256;

/// A field of the structured filter, named as in Cloudflare's `filter_v1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    SourceAddress,
    DestinationAddress,
    SourcePort,
    DestinationPort,
    Protocol,
}

impl Field {
    pub const ALL: [Field; 5] = [
        Field::SourceAddress,
        Field::DestinationAddress,
        Field::SourcePort,
        Field::DestinationPort,
        Field::Protocol,
    ];

    /// The JSON name, which is also what error messages print.
    pub const fn name(self) -> &'static str {
        match self {
            Field::SourceAddress => "source_address",
            Field::DestinationAddress => "destination_address",
            Field::SourcePort => "source_port",
            Field::DestinationPort => "destination_port",
            Field::Protocol => "protocol",
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A filter that cannot be captured with, and why.
///
/// Every message starts with the field it concerns, so it can be shown as is; [`field`] gives the
/// same name to callers that map it elsewhere (a CLI option, an API `errors` entry).
///
/// [`field`]: FilterError::field
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FilterError {
    #[error("{field}: {value:?} is not an IPv4 or IPv6 address or prefix")]
    BadAddress { field: Field, value: String },

    #[error(
        "{field}: prefix length {len} is longer than {} for {}",
        family_bits(*family),
        family_name(*family)
    )]
    PrefixTooLong {
        field: Field,
        len: u32,
        family: Family,
    },

    /// Refused rather than silently widened: `10.1.2.3/8` is more often a typo than a wish.
    #[error("{field}: {value} has host bits set (did you mean {suggestion}?)")]
    HostBitsSet {
        field: Field,
        value: String,
        suggestion: String,
    },

    #[error(
        "{field}: {value:?} is not a port number or range \
         (use a number 0-65535 or a range such as 1024-65535)"
    )]
    BadPort { field: Field, value: String },

    #[error("{field}: {value} is outside 0-65535")]
    PortOutOfRange { field: Field, value: String },

    #[error("{field}: range {lo}-{hi} is empty (start above end)")]
    EmptyPortRange { field: Field, lo: u16, hi: u16 },

    #[error(
        "protocol: unknown protocol {value:?} \
         (use a number 0-255 or a name such as tcp, udp, icmp, icmpv6)"
    )]
    UnknownProtocol { value: String },

    #[error("protocol: {value} is outside 0-255")]
    ProtocolOutOfRange { value: String },

    /// A port field together with a protocol that has no ports (`th` would read ICMP type bytes).
    #[error("{field}: protocol {protocol} has no ports")]
    ProtocolWithoutPorts { field: Field, protocol: Protocol },

    /// Every combination asks for IPv4 in one field and IPv6 in the other.
    #[error("{first} and {second} have no IP version in common")]
    NoCommonFamily { first: Field, second: Field },

    #[error("{}", too_many_rules(fields, *count, *implied_protocols))]
    TooManyRules {
        /// The fields holding more than one value, in field order.
        fields: Vec<Field>,
        /// How many rules the filter would need (saturating).
        count: u128,
        /// Ports were given without a protocol, so each counts three times (tcp, udp, sctp).
        implied_protocols: bool,
    },
}

impl FilterError {
    /// The name of the field at fault (the first one when several share the blame).
    pub fn field(&self) -> &'static str {
        self.fields()
            .first()
            .copied()
            .unwrap_or(Field::Protocol)
            .name()
    }

    /// Every field the error concerns, in field order.
    pub fn fields(&self) -> Vec<Field> {
        match self {
            FilterError::BadAddress { field, .. }
            | FilterError::PrefixTooLong { field, .. }
            | FilterError::HostBitsSet { field, .. }
            | FilterError::BadPort { field, .. }
            | FilterError::PortOutOfRange { field, .. }
            | FilterError::EmptyPortRange { field, .. }
            | FilterError::ProtocolWithoutPorts { field, .. } => vec![*field],
            FilterError::UnknownProtocol { .. } | FilterError::ProtocolOutOfRange { .. } => {
                vec![Field::Protocol]
            }
            FilterError::NoCommonFamily { first, second } => vec![*first, *second],
            FilterError::TooManyRules { fields, .. } => fields.clone(),
        }
    }
}

fn family_bits(family: Family) -> u8 {
    match family {
        Family::V4 => 32,
        Family::V6 => 128,
    }
}

fn family_name(family: Family) -> &'static str {
    match family {
        Family::V4 => "IPv4",
        Family::V6 => "IPv6",
    }
}

fn too_many_rules(fields: &[Field], count: u128, implied_protocols: bool) -> String {
    let names: Vec<&str> = fields.iter().map(|f| f.name()).collect();
    let (subject, verb) = match names.as_slice() {
        [] => ("the filter".to_owned(), "expands"),
        [one] => ((*one).to_owned(), "expands"),
        [init @ .., last] => (format!("{} and {last}", init.join(", ")), "expand"),
    };
    let mut msg = format!(
        "{subject} {verb} to {count} rules, more than the limit of {MAX_RULES} \
         (use prefixes or port ranges instead of long lists"
    );
    if implied_protocols {
        msg.push_str("; ports without a protocol need one rule each for tcp, udp and sctp");
    }
    msg.push(')');
    msg
}

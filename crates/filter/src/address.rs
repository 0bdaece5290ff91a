//! Addresses and prefixes: `198.18.0.1`, `198.18.0.0/15`, `2001:db8::/32`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::error::{Field, FilterError};
use crate::ir::Family;

/// An IPv4 or IPv6 prefix whose host bits are clear; a single address is a full-length prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Prefix {
    addr: IpAddr,
    len: u8,
}

impl Prefix {
    /// `None` when `len` is longer than the address or `addr` has bits set past `len`.
    pub fn new(addr: IpAddr, len: u8) -> Option<Self> {
        (len <= max_len(addr) && mask(addr, len) == addr).then_some(Prefix { addr, len })
    }

    /// The prefix holding exactly `addr`.
    pub fn host(addr: IpAddr) -> Self {
        Prefix {
            addr,
            len: max_len(addr),
        }
    }

    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    pub fn prefix_len(&self) -> u8 {
        self.len
    }

    pub fn is_host(&self) -> bool {
        self.len == max_len(self.addr)
    }

    pub fn family(&self) -> Family {
        family_of(self.addr)
    }

    pub fn contains(&self, addr: IpAddr) -> bool {
        family_of(addr) == self.family() && mask(addr, self.len) == self.addr
    }

    /// Parses one address or prefix as the user typed it, blaming `field` on failure.
    pub(crate) fn parse(field: Field, text: &str) -> Result<Self, FilterError> {
        let text = text.trim();
        Prefix::parse_cidr(text).map_err(|e| match e {
            CidrError::Bad => FilterError::BadAddress {
                field,
                value: text.to_owned(),
            },
            CidrError::TooLong { len, family } => FilterError::PrefixTooLong { field, len, family },
            CidrError::HostBitsSet { value, suggestion } => FilterError::HostBitsSet {
                field,
                value,
                suggestion,
            },
        })
    }

    /// `198.18.0.0/15`, `2001:db8::/32` or a bare address (a full-length prefix); callers
    /// say what went wrong in their own words.
    pub(crate) fn parse_cidr(text: &str) -> Result<Self, CidrError> {
        let (addr_text, len_text) = match text.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (text, None),
        };
        let addr: IpAddr = addr_text.parse().map_err(|_| CidrError::Bad)?;
        let Some(len_text) = len_text else {
            return Ok(Prefix::host(addr));
        };
        // `u32::from_str` takes a leading `+`; a prefix length is digits only.
        if len_text.is_empty()
            || len_text.len() > 3
            || !len_text.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(CidrError::Bad);
        }
        let len: u32 = len_text.parse().map_err(|_| CidrError::Bad)?;
        let family = family_of(addr);
        let len = match u8::try_from(len) {
            Ok(l) if l <= max_len(addr) => l,
            _ => return Err(CidrError::TooLong { len, family }),
        };
        let network = mask(addr, len);
        if network != addr {
            return Err(CidrError::HostBitsSet {
                value: format!("{addr}/{len}"),
                suggestion: format!("{network}/{len}"),
            });
        }
        Ok(Prefix { addr, len })
    }
}

/// Why text is not a prefix ([`Prefix::parse_cidr`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CidrError {
    Bad,
    TooLong { len: u32, family: Family },
    HostBitsSet { value: String, suggestion: String },
}

/// Full-length prefixes print as plain addresses, which is how users write single hosts.
impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_host() {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{}/{}", self.addr, self.len)
        }
    }
}

pub(crate) fn family_of(addr: IpAddr) -> Family {
    match addr {
        IpAddr::V4(_) => Family::V4,
        IpAddr::V6(_) => Family::V6,
    }
}

pub(crate) fn max_len(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

/// `addr` with every bit past the first `len` cleared; `len` beyond the address keeps it whole.
pub(crate) fn mask(addr: IpAddr, len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let keep = u32::MAX
                .checked_shl(32 - u32::from(len.min(32)))
                .unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(a) & keep))
        }
        IpAddr::V6(a) => {
            let keep = u128::MAX
                .checked_shl(128 - u32::from(len.min(128)))
                .unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(a) & keep))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Prefix, String> {
        Prefix::parse(Field::SourceAddress, text).map_err(|e| e.to_string())
    }

    #[test]
    fn single_addresses_are_full_length_prefixes() {
        let p = parse("198.18.0.1").unwrap();
        assert_eq!(
            (p.prefix_len(), p.family(), p.to_string()),
            (32, Family::V4, "198.18.0.1".into())
        );
        let p = parse("2001:db8::1").unwrap();
        assert_eq!(
            (p.prefix_len(), p.family(), p.to_string()),
            (128, Family::V6, "2001:db8::1".into())
        );
        assert_eq!(parse(" 1.2.3.4 ").unwrap(), parse("1.2.3.4/32").unwrap());
    }

    #[test]
    fn prefixes_parse_and_print() {
        assert_eq!(parse("198.18.0.0/15").unwrap().to_string(), "198.18.0.0/15");
        assert_eq!(parse("2001:db8::/32").unwrap().to_string(), "2001:db8::/32");
        assert_eq!(parse("0.0.0.0/0").unwrap().prefix_len(), 0);
        assert_eq!(parse("::/0").unwrap().prefix_len(), 0);
    }

    #[test]
    fn bad_addresses_name_the_field_and_value() {
        for text in [
            "198.18.0.300",
            "",
            "1.2.3",
            "example.com",
            "1.2.3.4/",
            "1.2.3.4/+8",
            "fe80::1%eth0",
        ] {
            assert_eq!(
                parse(text).unwrap_err(),
                format!("source_address: {text:?} is not an IPv4 or IPv6 address or prefix")
            );
        }
        assert_eq!(
            parse("1.2.3.4/99999999999").unwrap_err(),
            "source_address: \"1.2.3.4/99999999999\" is not an IPv4 or IPv6 address or prefix"
        );
    }

    #[test]
    fn prefix_too_long() {
        assert_eq!(
            parse("198.18.0.0/33").unwrap_err(),
            "source_address: prefix length 33 is longer than 32 for IPv4"
        );
        assert_eq!(
            parse("2001:db8::/129").unwrap_err(),
            "source_address: prefix length 129 is longer than 128 for IPv6"
        );
        assert_eq!(
            parse("1.0.0.0/300").unwrap_err(),
            "source_address: prefix length 300 is longer than 32 for IPv4"
        );
    }

    #[test]
    fn host_bits_are_refused_with_a_suggestion() {
        assert_eq!(
            parse("198.18.0.1/24").unwrap_err(),
            "source_address: 198.18.0.1/24 has host bits set (did you mean 198.18.0.0/24?)"
        );
        assert_eq!(
            parse("2001:db8::1/32").unwrap_err(),
            "source_address: 2001:db8::1/32 has host bits set (did you mean 2001:db8::/32?)"
        );
    }

    #[test]
    fn contains_respects_family_and_prefix() {
        let p = parse("198.18.0.0/15").unwrap();
        assert!(p.contains("198.19.255.255".parse().unwrap()));
        assert!(!p.contains("198.20.0.0".parse().unwrap()));
        assert!(!p.contains("::ffff:198.18.0.1".parse().unwrap()));
        assert!(
            parse("0.0.0.0/0")
                .unwrap()
                .contains("255.255.255.255".parse().unwrap())
        );
    }

    #[test]
    fn new_checks_length_and_host_bits() {
        let a: IpAddr = "10.0.0.0".parse().unwrap();
        assert!(Prefix::new(a, 8).is_some());
        assert!(Prefix::new(a, 33).is_none());
        assert!(Prefix::new("10.0.0.1".parse().unwrap(), 8).is_none());
    }
}

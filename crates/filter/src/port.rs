//! Ports and port ranges: `53`, `1024-65535`.

use std::fmt;

use crate::error::{Field, FilterError};

/// An inclusive range of transport ports; a single port has `lo == hi`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortRange {
    lo: u16,
    hi: u16,
}

impl PortRange {
    /// `None` when the range is empty (`lo > hi`).
    pub fn new(lo: u16, hi: u16) -> Option<Self> {
        (lo <= hi).then_some(PortRange { lo, hi })
    }

    pub fn single(port: u16) -> Self {
        PortRange { lo: port, hi: port }
    }

    pub fn lo(&self) -> u16 {
        self.lo
    }

    pub fn hi(&self) -> u16 {
        self.hi
    }

    pub fn is_single(&self) -> bool {
        self.lo == self.hi
    }

    pub fn contains(&self, port: u16) -> bool {
        (self.lo..=self.hi).contains(&port)
    }

    /// Parses `53` or `1024-65535` (spaces around the dash allowed), blaming `field` on failure.
    pub(crate) fn parse(field: Field, text: &str) -> Result<Self, FilterError> {
        let text = text.trim();
        match text.split_once('-') {
            None => parse_port(field, text, text).map(PortRange::single),
            Some((lo, hi)) => {
                let lo = parse_port(field, lo.trim(), text)?;
                let hi = parse_port(field, hi.trim(), text)?;
                PortRange::new(lo, hi).ok_or(FilterError::EmptyPortRange { field, lo, hi })
            }
        }
    }

    /// A port given as a JSON number (Cloudflare's form); `-1` and `70000` are out of range.
    pub(crate) fn from_number(field: Field, n: i128) -> Result<Self, FilterError> {
        u16::try_from(n)
            .map(PortRange::single)
            .map_err(|_| FilterError::PortOutOfRange {
                field,
                value: n.to_string(),
            })
    }
}

/// `part` is one number of `whole`; a non-number blames the whole text the user wrote.
fn parse_port(field: Field, part: &str, whole: &str) -> Result<u16, FilterError> {
    if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
        return Err(FilterError::BadPort {
            field,
            value: whole.to_owned(),
        });
    }
    // All digits, so the only way to fail is being too large (even past u64).
    part.parse::<u16>()
        .map_err(|_| FilterError::PortOutOfRange {
            field,
            value: part.to_owned(),
        })
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_single() {
            write!(f, "{}", self.lo)
        } else {
            write!(f, "{}-{}", self.lo, self.hi)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<PortRange, String> {
        PortRange::parse(Field::DestinationPort, text).map_err(|e| e.to_string())
    }

    #[test]
    fn ports_and_ranges() {
        assert_eq!(parse("53").unwrap(), PortRange::single(53));
        assert_eq!(parse("0").unwrap(), PortRange::single(0));
        assert_eq!(parse("65535").unwrap(), PortRange::single(65535));
        assert_eq!(
            parse("1024-65535").unwrap(),
            PortRange::new(1024, 65535).unwrap()
        );
        assert_eq!(
            parse(" 1000 - 2000 ").unwrap(),
            PortRange::new(1000, 2000).unwrap()
        );
        assert_eq!(parse("7-7").unwrap(), PortRange::single(7));
        assert_eq!(parse("1024-65535").unwrap().to_string(), "1024-65535");
        assert_eq!(parse("7-7").unwrap().to_string(), "7");
    }

    #[test]
    fn out_of_range() {
        assert_eq!(
            parse("70000").unwrap_err(),
            "destination_port: 70000 is outside 0-65535"
        );
        assert_eq!(
            parse("1-70000").unwrap_err(),
            "destination_port: 70000 is outside 0-65535"
        );
        assert_eq!(
            parse("99999999999999999999999").unwrap_err(),
            "destination_port: 99999999999999999999999 is outside 0-65535"
        );
        assert_eq!(
            PortRange::from_number(Field::SourcePort, -1)
                .unwrap_err()
                .to_string(),
            "source_port: -1 is outside 0-65535"
        );
        assert_eq!(
            PortRange::from_number(Field::SourcePort, 65536)
                .unwrap_err()
                .to_string(),
            "source_port: 65536 is outside 0-65535"
        );
    }

    #[test]
    fn empty_range() {
        let err = PortRange::parse(Field::SourcePort, "2000-1000").unwrap_err();
        assert_eq!(
            err.to_string(),
            "source_port: range 2000-1000 is empty (start above end)"
        );
    }

    #[test]
    fn not_a_port() {
        for text in ["", "http", "-5", "5-", "1-2-3", "+5", "5.0", "0x35"] {
            assert_eq!(
                parse(text).unwrap_err(),
                format!(
                    "destination_port: {text:?} is not a port number or range \
                     (use a number 0-65535 or a range such as 1024-65535)"
                )
            );
        }
    }
}

//! Classic pcap encoding, nanosecond variant (magic `0xA1B23C4D`), little-endian.

use crate::Error;

const MAGIC_NS: u32 = 0xA1B2_3C4D;
/// What libpcap assumes when a file's snaplen is 0 or too large; classic pcap has no "no
/// limit" value, so a 0 snaplen is written as this.
pub(crate) const MAX_SNAPLEN: u32 = 262_144;

pub(crate) const GLOBAL_HEADER_LEN: usize = 24;
pub(crate) const RECORD_HEADER_LEN: usize = 16;

pub(crate) fn global_header(linktype: u16, snaplen: u32) -> [u8; GLOBAL_HEADER_LEN] {
    let snaplen = if snaplen == 0 { MAX_SNAPLEN } else { snaplen };
    let mut h = [0u8; GLOBAL_HEADER_LEN];
    h[0..4].copy_from_slice(&MAGIC_NS.to_le_bytes());
    h[4..6].copy_from_slice(&2u16.to_le_bytes());
    h[6..8].copy_from_slice(&4u16.to_le_bytes());
    // thiszone and sigfigs stay 0: timestamps are UTC and nobody reads sigfigs.
    h[16..20].copy_from_slice(&snaplen.to_le_bytes());
    h[20..24].copy_from_slice(&u32::from(linktype).to_le_bytes());
    h
}

/// Record header for `caplen` bytes; fails past 2106, where 32-bit seconds end.
pub(crate) fn record_header(
    ts_ns: u64,
    caplen: u32,
    orig_len: u32,
) -> Result<[u8; RECORD_HEADER_LEN], Error> {
    let secs =
        u32::try_from(ts_ns / 1_000_000_000).map_err(|_| Error::TimestampOutOfRange { ts_ns })?;
    let nanos = (ts_ns % 1_000_000_000) as u32;
    let mut h = [0u8; RECORD_HEADER_LEN];
    h[0..4].copy_from_slice(&secs.to_le_bytes());
    h[4..8].copy_from_slice(&nanos.to_le_bytes());
    h[8..12].copy_from_slice(&caplen.to_le_bytes());
    h[12..16].copy_from_slice(&orig_len.to_le_bytes());
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn global_header_bytes() {
        let h = global_header(101, 1500);
        assert_eq!(
            h,
            [
                0x4d, 0x3c, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xdc, 0x05, 0, 0, 101,
                0, 0, 0
            ]
        );
        assert_eq!(global_header(1, 0)[16..20], MAX_SNAPLEN.to_le_bytes());
    }

    #[test]
    fn record_header_splits_seconds_and_nanoseconds() {
        let h = record_header(1_700_000_000_123_456_789, 60, 1500).unwrap();
        assert_eq!(h[0..4], 1_700_000_000u32.to_le_bytes());
        assert_eq!(h[4..8], 123_456_789u32.to_le_bytes());
        assert_eq!(h[8..12], 60u32.to_le_bytes());
        assert_eq!(h[12..16], 1500u32.to_le_bytes());
    }

    #[test]
    fn record_header_rejects_timestamps_after_2106() {
        let last = u64::from(u32::MAX) * 1_000_000_000 + 999_999_999;
        assert!(record_header(last, 1, 1).is_ok());
        assert!(matches!(
            record_header(last + 1, 1, 1),
            Err(Error::TimestampOutOfRange { ts_ns }) if ts_ns == last + 1
        ));
        assert!(record_header(u64::MAX, 1, 1).is_err());
    }
}

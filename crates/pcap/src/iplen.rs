//! The untruncated length of an IP packet, from its header.
//!
//! NFLOG copies at most the configured range and never says how long the packet really was, so
//! the only honest source for a record's original length is the IP header itself.

/// The packet's length on the wire, derived from the IP header at the start of `data`.
///
/// IPv4: the total length field. IPv6: payload length + 40 (the fixed header). When the header
/// is too short to read, the version is neither 4 nor 6, the field is 0 (IPv6 jumbograms, and
/// GSO/GRO super-packets of "BIG TCP" which do the same for IPv4) or the field claims fewer
/// bytes than were captured, the result is `captured_len`: a record's original length must
/// never be below its captured length.
pub fn orig_len_from_ip(data: &[u8], captured_len: usize) -> u32 {
    let captured = u32::try_from(captured_len).unwrap_or(u32::MAX);
    let derived = match data.first().map(|b| b >> 4) {
        Some(4) => ipv4_total_len(data),
        Some(6) => ipv6_len(data),
        _ => None,
    };
    match derived {
        Some(len) if len > captured => len,
        _ => captured,
    }
}

fn be16(data: &[u8], at: usize) -> Option<u16> {
    let bytes = data.get(at..at + 2)?;
    Some(u16::from_be_bytes([bytes[0], bytes[1]]))
}

fn ipv4_total_len(data: &[u8]) -> Option<u32> {
    let ihl_bytes = u32::from(data.first()? & 0x0f) * 4;
    let total = u32::from(be16(data, 2)?);
    // A total length shorter than the header is garbage, not a truncation hint.
    (ihl_bytes >= 20 && total >= ihl_bytes).then_some(total)
}

fn ipv6_len(data: &[u8]) -> Option<u32> {
    let payload = u32::from(be16(data, 4)?);
    (payload > 0).then_some(payload + 40)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipv4(total: u16, ihl: u8) -> Vec<u8> {
        let mut p = vec![0u8; 20];
        p[0] = 0x40 | ihl;
        p[2..4].copy_from_slice(&total.to_be_bytes());
        p
    }

    fn ipv6(payload: u16) -> Vec<u8> {
        let mut p = vec![0u8; 40];
        p[0] = 0x60;
        p[4..6].copy_from_slice(&payload.to_be_bytes());
        p
    }

    #[test]
    fn ipv4_truncated_reports_total_length() {
        assert_eq!(orig_len_from_ip(&ipv4(1500, 5), 20), 1500);
        assert_eq!(orig_len_from_ip(&ipv4(65535, 15), 20), 65535);
    }

    #[test]
    fn ipv6_truncated_reports_payload_plus_fixed_header() {
        assert_eq!(orig_len_from_ip(&ipv6(1460), 40), 1500);
        assert_eq!(orig_len_from_ip(&ipv6(65535), 40), 65575);
    }

    #[test]
    fn untruncated_packets_keep_their_captured_length() {
        assert_eq!(orig_len_from_ip(&ipv4(20, 5), 20), 20);
        assert_eq!(orig_len_from_ip(&ipv6(0), 40), 40);
    }

    #[test]
    fn garbage_falls_back_to_captured_length() {
        assert_eq!(orig_len_from_ip(&[], 0), 0);
        assert_eq!(orig_len_from_ip(&[0x45], 1), 1);
        assert_eq!(orig_len_from_ip(&[0x45, 0, 5], 3), 3);
        assert_eq!(orig_len_from_ip(&[0x60, 0, 0, 0, 5], 5), 5);
        // Version 5 and ARP-looking bytes.
        assert_eq!(orig_len_from_ip(&[0x50, 0, 0x10, 0], 4), 4);
        assert_eq!(orig_len_from_ip(&[0x00, 0x01, 0x08, 0x00], 4), 4);
        // IHL below 5, or a total length shorter than the header.
        assert_eq!(orig_len_from_ip(&ipv4(1500, 4), 20), 20);
        assert_eq!(orig_len_from_ip(&ipv4(10, 5), 20), 20);
        // Total length below the captured length (trailing bytes): never shrink.
        assert_eq!(orig_len_from_ip(&ipv4(100, 5), 200), 200);
    }

    #[test]
    fn jumbograms_and_big_tcp_fall_back() {
        assert_eq!(orig_len_from_ip(&ipv6(0), 9000), 9000);
        assert_eq!(orig_len_from_ip(&ipv4(0, 5), 70000), 70000);
    }

    #[test]
    fn never_below_captured_length_for_any_prefix() {
        let mut data = [0u8; 8];
        for first in 0..=255u8 {
            for len_byte in [0u8, 1, 0x14, 0x7f, 0xff] {
                data[0] = first;
                data[2..6].fill(len_byte);
                for n in 0..=data.len() {
                    assert!(orig_len_from_ip(&data[..n], n) >= n as u32);
                }
            }
        }
    }

    #[test]
    fn huge_captured_length_saturates() {
        assert_eq!(orig_len_from_ip(&[], usize::MAX), u32::MAX);
    }
}

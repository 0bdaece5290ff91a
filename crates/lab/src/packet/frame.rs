//! Payload markers and Ethernet framing.

/// Marker prefix embedded in payloads so tests can tell packets apart.
pub const MARKER_PREFIX: &[u8] = b"EDGECAP-MARK-";

/// The bytes `EDGECAP-MARK-<n>` (decimal), to put in a payload.
pub fn marker(n: u32) -> Vec<u8> {
    let mut m = MARKER_PREFIX.to_vec();
    m.extend_from_slice(n.to_string().as_bytes());
    m
}

/// The number of the first marker found in `data` (a payload, packet or frame).
pub fn find_marker(data: &[u8]) -> Option<u32> {
    let at = data
        .windows(MARKER_PREFIX.len())
        .position(|w| w == MARKER_PREFIX)?;
    let digits = &data[at + MARKER_PREFIX.len()..];
    let len = digits.iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&digits[..len]).ok()?.parse().ok()
}

/// EtherType for an IP packet: IPv6 (0x86dd) when its version nibble is 6, else IPv4 (0x0800).
pub fn ethertype_of(ip_packet: &[u8]) -> u16 {
    match ip_packet.first().map(|b| b >> 4) {
        Some(6) => 0x86dd,
        _ => 0x0800,
    }
}

/// An Ethernet II frame `dst_mac, src_mac, ethertype, ip_packet` (the EtherType follows the
/// IP version nibble, see [`ethertype_of`]).
pub fn ethernet(dst_mac: [u8; 6], src_mac: [u8; 6], ip_packet: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(14 + ip_packet.len());
    frame.extend_from_slice(&dst_mac);
    frame.extend_from_slice(&src_mac);
    frame.extend_from_slice(&ethertype_of(ip_packet).to_be_bytes());
    frame.extend_from_slice(ip_packet);
    frame
}

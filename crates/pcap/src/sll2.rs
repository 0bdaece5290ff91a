//! Linux cooked capture v2 (`LINKTYPE_LINUX_SLL2`) framing for IP packets.
//!
//! edgecap captures IP packets, which a single-interface file stores as `LINKTYPE_RAW`. A
//! pcapng file with several RAW interfaces is valid, but libpcap (and so tcpdump) refuses it
//! (see `compat`): its linktype check compares DLT_RAW (12) with LINKTYPE_RAW (101). SLL2 has
//! equal LINKTYPE and DLT values, so files with several interfaces frame each packet with a
//! 20-byte SLL2 header instead. The header also carries what RAW cannot: the interface index
//! and whether the packet was arriving or leaving.

use crate::model::Direction;

/// Length of the SLL2 header placed before the IP packet.
pub const SLL2_HEADER_LEN: usize = 20;

/// `ARPHRD_NONE`: a device without a link-layer header (a tun device's raw IP). Readers then
/// dispatch on the protocol field alone.
const ARPHRD_NONE: u16 = 0xFFFE;
/// `PACKET_HOST`: addressed to this host (what prerouting, input and forward see).
const PACKET_HOST: u8 = 0;
/// `PACKET_OUTGOING`: sent by this host (output, postrouting).
const PACKET_OUTGOING: u8 = 4;

/// The SLL2 header for the IP packet `ip` seen on interface `ifindex` (0 when unknown) going
/// `dir`. The protocol is taken from the IP version nibble: 0x0800 for IPv4, 0x86DD for IPv6,
/// 0 for anything else (readers then show the bytes undecoded).
pub fn sll2_header(ip: &[u8], ifindex: u32, dir: Direction) -> [u8; SLL2_HEADER_LEN] {
    let protocol: u16 = match ip.first().map(|b| b >> 4) {
        Some(4) => 0x0800,
        Some(6) => 0x86DD,
        _ => 0,
    };
    let packet_type = match dir {
        Direction::Outbound => PACKET_OUTGOING,
        Direction::Inbound | Direction::Unknown => PACKET_HOST,
    };
    let mut h = [0u8; SLL2_HEADER_LEN];
    h[0..2].copy_from_slice(&protocol.to_be_bytes());
    // 2..4 reserved, zero.
    h[4..8].copy_from_slice(&ifindex.to_be_bytes());
    h[8..10].copy_from_slice(&ARPHRD_NONE.to_be_bytes());
    h[10] = packet_type;
    // 11: address length 0; 12..20: no address.
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::LINKTYPE_LINUX_SLL2;
    use crate::read::{Endian, link::ip_packet};

    #[test]
    fn the_reader_finds_the_ip_packet_behind_the_header() {
        let v4 = [
            0x45u8, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2,
        ];
        let mut framed = sll2_header(&v4, 7, Direction::Outbound).to_vec();
        framed.extend_from_slice(&v4);
        assert_eq!(&framed[0..2], &[0x08, 0x00]);
        assert_eq!(&framed[4..8], &[0, 0, 0, 7]);
        assert_eq!(framed[10], PACKET_OUTGOING);
        assert_eq!(
            ip_packet(LINKTYPE_LINUX_SLL2, &framed, Endian::Little),
            Some(&v4[..])
        );
        let v6 = sll2_header(&[0x60, 0, 0, 0], 0, Direction::Inbound);
        assert_eq!((&v6[0..2], v6[10]), (&[0x86, 0xDD][..], PACKET_HOST));
        assert_eq!(&sll2_header(&[], 1, Direction::Unknown)[0..2], &[0, 0]);
    }
}

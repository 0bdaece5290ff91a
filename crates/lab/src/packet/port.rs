//! Rewriting the source port of a crafted TCP/UDP packet in place, fixing the checksum
//! incrementally (RFC 1624), for generators that vary flows without re-crafting.

use crate::LabError;

/// Where the source port and checksum of a TCP or UDP packet sit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortPatch {
    port_at: usize,
    checksum_at: Option<usize>,
    udp: bool,
}

impl PortPatch {
    /// Locates the fields in a raw IP packet (IPv4 with any header length, or IPv6 with TCP
    /// or UDP directly after the fixed header).
    pub fn locate(ip_packet: &[u8]) -> Result<PortPatch, LabError> {
        let bad = |why: &str| LabError::Packet(format!("cannot vary the source port: {why}"));
        let first = *ip_packet.first().ok_or_else(|| bad("empty packet"))?;
        let (l4, proto) = match first >> 4 {
            4 => (usize::from(first & 0x0f) * 4, ip_packet.get(9).copied()),
            6 => (40, ip_packet.get(6).copied()),
            _ => return Err(bad("not an IP packet")),
        };
        let (checksum_at, udp) = match proto {
            Some(6) => (l4 + 16, false),
            Some(17) => (l4 + 6, true),
            _ => {
                return Err(bad(
                    "not TCP or UDP (IPv6 extension headers are not supported)",
                ));
            }
        };
        if ip_packet.len() < checksum_at + 2 {
            return Err(bad("truncated transport header"));
        }
        let stored = u16::from_be_bytes([ip_packet[checksum_at], ip_packet[checksum_at + 1]]);
        // A zero UDP checksum over IPv4 means "none" and stays zero.
        let has_checksum = !(udp && first >> 4 == 4 && stored == 0);
        Ok(PortPatch {
            port_at: l4,
            checksum_at: has_checksum.then_some(checksum_at),
            udp,
        })
    }

    /// Offset of the source port from the start of the IP packet.
    pub fn port_offset(&self) -> usize {
        self.port_at
    }

    /// Sets the source port of `ip_packet` (the packet given to [`PortPatch::locate`], or a
    /// copy of it at an offset removed by the caller) and updates the checksum.
    pub fn apply(&self, ip_packet: &mut [u8], port: u16) {
        let at = self.port_at;
        let Some(field) = ip_packet.get_mut(at..at + 2) else {
            return;
        };
        let old = u16::from_be_bytes([field[0], field[1]]);
        field.copy_from_slice(&port.to_be_bytes());
        let Some(c) = self.checksum_at else {
            return;
        };
        let Some(field) = ip_packet.get_mut(c..c + 2) else {
            return;
        };
        let hc = u16::from_be_bytes([field[0], field[1]]);
        let mut new = update_checksum(hc, old, port);
        if self.udp && new == 0 {
            new = 0xffff;
        }
        field.copy_from_slice(&new.to_be_bytes());
    }
}

/// RFC 1624 eq. 3: HC' = ~(~HC + ~m + m').
fn update_checksum(hc: u16, old: u16, new: u16) -> u16 {
    let mut sum = u32::from(!hc) + u32::from(!old) + u32::from(new);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    !(sum as u16)
}

//! TCP flags as a small bit set.

use std::ops::{BitOr, BitOrAssign};

use etherparse::TcpHeader;

/// TCP flags, combined with `|`: `TcpFlags::SYN | TcpFlags::ACK`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    /// No flag.
    pub const NONE: TcpFlags = TcpFlags(0);
    /// FIN.
    pub const FIN: TcpFlags = TcpFlags(0x01);
    /// SYN.
    pub const SYN: TcpFlags = TcpFlags(0x02);
    /// RST.
    pub const RST: TcpFlags = TcpFlags(0x04);
    /// PSH.
    pub const PSH: TcpFlags = TcpFlags(0x08);
    /// ACK.
    pub const ACK: TcpFlags = TcpFlags(0x10);
    /// URG.
    pub const URG: TcpFlags = TcpFlags(0x20);
    /// ECE.
    pub const ECE: TcpFlags = TcpFlags(0x40);
    /// CWR.
    pub const CWR: TcpFlags = TcpFlags(0x80);

    /// True when all flags of `other` are set.
    pub fn contains(self, other: TcpFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Sets the header's flag booleans from this set.
    pub(crate) fn apply(self, tcp: &mut TcpHeader) {
        tcp.fin = self.contains(TcpFlags::FIN);
        tcp.syn = self.contains(TcpFlags::SYN);
        tcp.rst = self.contains(TcpFlags::RST);
        tcp.psh = self.contains(TcpFlags::PSH);
        tcp.ack = self.contains(TcpFlags::ACK);
        tcp.urg = self.contains(TcpFlags::URG);
        tcp.ece = self.contains(TcpFlags::ECE);
        tcp.cwr = self.contains(TcpFlags::CWR);
    }
}

impl BitOr for TcpFlags {
    type Output = TcpFlags;
    fn bitor(self, rhs: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 | rhs.0)
    }
}

impl BitOrAssign for TcpFlags {
    fn bitor_assign(&mut self, rhs: TcpFlags) {
        self.0 |= rhs.0;
    }
}

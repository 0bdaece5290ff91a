//! What the reader yields: packets, borrowed until the next call, and the interfaces they were
//! captured on.

use super::Endian;

/// One interface: a pcapng IDB, or the single implicit interface of a classic pcap file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceInfo {
    /// Index over the whole file: sections number their interfaces from 0 again, this does not.
    pub index: u32,
    /// Section the interface belongs to, from 0 (always 0 for classic pcap).
    pub section: u32,
    /// `if_name`, or `if<index>` when the file gives none (always `if0` for classic pcap).
    pub name: String,
    /// Whether `name` came from the file.
    pub named: bool,
    /// `if_description`.
    pub description: Option<String>,
    /// The `LINKTYPE_*` value.
    pub linktype: u16,
    /// Snapshot length; 0 means none.
    pub snaplen: u32,
    /// `if_tsresol`: bit 7 clear, 10^-n s per tick; set, 2^-n s (6 for µs pcap, 9 for ns).
    pub tsresol: u8,
    /// `if_tsoffset`, seconds added to every timestamp.
    pub tsoffset_s: i64,
    /// Byte order of the file or section (NFLOG and NULL frames depend on it).
    pub byte_order: Endian,
}

/// One packet, borrowed from the reader until the next call.
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    /// File offset of the record or block.
    pub offset: u64,
    /// [`InterfaceInfo::index`] of the interface it was captured on.
    pub interface: u32,
    /// That interface's name.
    pub interface_name: &'a str,
    /// That interface's linktype.
    pub linktype: u16,
    /// Nanoseconds since the Unix epoch. A Simple Packet Block has no timestamp: it gets the
    /// previous packet's (0 before any) and `ts_known` is false.
    pub ts_ns: i64,
    /// False for Simple Packet Blocks.
    pub ts_known: bool,
    /// Bytes captured (`data.len()`).
    pub caplen: u32,
    /// Bytes the packet had on the wire.
    pub orig_len: u32,
    /// The frame as captured, link-layer header included.
    pub data: &'a [u8],
    /// The IPv4/IPv6 packet in the frame, cut to its declared length; `None` when the frame
    /// holds no IP packet (ARP, an unknown linktype, a frame too short for its header).
    pub ip: Option<&'a [u8]>,
    /// Which way it went, from a pcapng EPB's `epb_flags`; `Unknown` for pcap and SPBs.
    pub direction: crate::model::Direction,
    /// Byte order of the file or section it came from (its interface's
    /// [`InterfaceInfo::byte_order`]): NFLOG and NULL frames, and so
    /// [`crate::dissect::dissect`], depend on it.
    pub byte_order: Endian,
}

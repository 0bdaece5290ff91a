//! What callers describe: the file format, the section, its interfaces, their statistics and a
//! packet's direction. Plain data; the encoders in [`crate::pcapng`] and [`crate::pcap`] give
//! it bytes.

use std::fmt;
use std::str::FromStr;

use crate::Error;

/// IPv4 or IPv6 without a link-layer header: what `NFULA_PAYLOAD` carries, and so our default.
pub const LINKTYPE_RAW: u16 = 101;
/// Ethernet, for callers that rebuild a MAC header.
pub const LINKTYPE_ETHERNET: u16 = 1;
/// Linux "cooked" capture v2: a synthetic header keeping ifindex and packet type.
pub const LINKTYPE_LINUX_SLL2: u16 = 276;
/// The NFLOG netlink message body, unchanged (lossless, but fewer tools decode it).
pub const LINKTYPE_NFLOG: u16 = 239;

/// Which container to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Format {
    /// pcapng: several interfaces, direction flags, drop counts, statistics, comments.
    #[default]
    Pcapng,
    /// Classic pcap with nanosecond timestamps: one linktype and snaplen per file, no metadata.
    Pcap,
}

impl Format {
    /// Every format, in the order they are offered.
    pub const ALL: [Format; 2] = [Format::Pcapng, Format::Pcap];

    /// The format a request names exactly by its extension (`pcapng`, `pcap`): the spelling
    /// the CLI, the API and assignments use (the file's own `FromStr` is lenient on case).
    pub fn from_name(name: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.extension() == name)
    }

    /// The usual file name extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Pcapng => "pcapng",
            Format::Pcap => "pcap",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.extension())
    }
}

impl FromStr for Format {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        // Case-insensitive because the value often arrives from a CLI flag or a JSON request
        // typed by a person; the canonical spelling is still the lower-case one.
        if s.eq_ignore_ascii_case("pcapng") {
            Ok(Format::Pcapng)
        } else if s.eq_ignore_ascii_case("pcap") {
            Ok(Format::Pcap)
        } else {
            Err(Error::UnknownFormat(s.to_owned()))
        }
    }
}

/// Section Header Block options, describing who wrote the file and why.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Section {
    /// `shb_userappl`, e.g. "edgecap 0.1.0".
    pub user_appl: String,
    /// `shb_os`, e.g. the node's kernel.
    pub os: Option<String>,
    /// `shb_hardware`, e.g. the node name.
    pub hardware: Option<String>,
    /// `opt_comment`, e.g. the capture id and the request.
    pub comment: Option<String>,
}

/// One capture interface: an Interface Description Block in pcapng.
///
/// Timestamps are always written in nanoseconds (`if_tsresol = 9`), so there is no field for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// `if_name`, e.g. "node-a/eth0".
    pub name: String,
    /// `if_description`.
    pub description: Option<String>,
    /// `if_filter`, written with filter type 0 (a filter string), e.g. the nft expression.
    pub filter: Option<String>,
    /// A `LINKTYPE_*` value.
    pub linktype: u16,
    /// The largest packet the caller will write; 0 means no limit (pcapng semantics).
    pub snaplen: u32,
}

impl Interface {
    /// A [`LINKTYPE_RAW`] interface with no description or filter.
    pub fn raw(name: impl Into<String>, snaplen: u32) -> Self {
        Interface {
            name: name.into(),
            description: None,
            filter: None,
            linktype: LINKTYPE_RAW,
            snaplen,
        }
    }
}

/// Which way a packet travelled, for `epb_flags`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Direction {
    /// Not recorded: no `epb_flags` option is written.
    #[default]
    Unknown,
    /// Received by the node (prerouting, input, forward).
    Inbound,
    /// Sent by the node (output, postrouting).
    Outbound,
}

impl Direction {
    /// The `epb_flags` value: direction lives in bits 0-1 (01 inbound, 10 outbound).
    pub(crate) fn epb_flags(self) -> Option<u32> {
        match self {
            Direction::Unknown => None,
            Direction::Inbound => Some(1),
            Direction::Outbound => Some(2),
        }
    }
}

/// Interface Statistics Block contents. Timestamps are nanoseconds since the Unix epoch; the
/// block's own timestamp is `end_ns`, the moment the counters were read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InterfaceStats {
    /// `isb_starttime`: when the capture started.
    pub start_ns: u64,
    /// `isb_endtime`: when the counters were read.
    pub end_ns: u64,
    /// `isb_ifrecv`: packets seen before filtering (e.g. the nft counter before sampling).
    pub if_recv: Option<u64>,
    /// `isb_ifdrop`: packets the interface dropped.
    pub if_drop: Option<u64>,
    /// `isb_filteraccept`: packets the filter accepted.
    pub filter_accept: Option<u64>,
    /// `isb_osdrop`: packets lost between kernel and writer (NFLOG sequence gaps).
    pub os_drop: Option<u64>,
    /// `isb_usrdeliv`: packets written to the file.
    pub usr_deliv: Option<u64>,
    /// `opt_comment`.
    pub comment: Option<String>,
}

//! The crate's single error type. Messages name the interface, block or option involved so an
//! operator reading a log line knows what to change.

use std::io;

/// Everything that can go wrong while writing a capture file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A format name that is neither "pcapng" nor "pcap".
    #[error("unknown capture file format {0:?}: expected \"pcapng\" or \"pcap\"")]
    UnknownFormat(String),

    /// Classic pcap was asked for without an interface to take the linktype from.
    #[error(
        "classic pcap needs at least one interface: its file header carries the linktype and \
         snaplen"
    )]
    PcapNoInterface,

    /// Classic pcap was asked for with interfaces it cannot tell apart.
    #[error(
        "classic pcap holds one linktype and one snaplen per file, but interface {index} \
         ({name:?}) has linktype {linktype} and snaplen {snaplen} while interface 0 \
         ({first_name:?}) has linktype {first_linktype} and snaplen {first_snaplen}; write \
         pcapng or give every interface the same linktype and snaplen"
    )]
    PcapMixedInterfaces {
        /// Index of the interface that differs.
        index: usize,
        /// Its name.
        name: String,
        /// Its linktype.
        linktype: u16,
        /// Its snaplen.
        snaplen: u32,
        /// Interface 0's name.
        first_name: String,
        /// Interface 0's linktype, the one in the file header.
        first_linktype: u16,
        /// Interface 0's snaplen, the one in the file header.
        first_snaplen: u32,
    },

    /// A packet or statistics record names an interface this file does not define.
    #[error("interface {iface} is not defined: this file has {count} interface(s)")]
    UnknownInterface {
        /// The interface index given.
        iface: u32,
        /// How many interfaces the file has.
        count: usize,
    },

    /// More interfaces than a 32-bit interface id can address.
    #[error("cannot add interface {name:?}: the file already has the maximum number of interfaces")]
    TooManyInterfaces {
        /// The interface that did not fit.
        name: String,
    },

    /// The caller passed more bytes than the interface's snaplen (the caller must truncate).
    #[error(
        "packet of {len} bytes on interface {iface} ({name:?}) exceeds the limit of {limit} \
         bytes; truncate to the snaplen before writing"
    )]
    PacketTooLong {
        /// The interface index.
        iface: u32,
        /// Its name.
        name: String,
        /// The packet's captured length.
        len: usize,
        /// The snaplen, or the format's own maximum when the snaplen is 0.
        limit: u64,
    },

    /// An option value longer than pcapng's 16-bit option length.
    #[error("{block} option {option} is {len} bytes; a pcapng option holds at most 65535")]
    OptionTooLong {
        /// "SHB", "IDB" or "ISB", with the interface where it applies.
        block: String,
        /// The option's name in the pcapng specification, e.g. "opt_comment".
        option: &'static str,
        /// The value's length.
        len: usize,
    },

    /// A timestamp classic pcap's 32-bit seconds field cannot hold.
    #[error(
        "timestamp {ts_ns} ns is after 2106-02-07T06:28:15Z, the last second classic pcap can \
         hold; write pcapng"
    )]
    TimestampOutOfRange {
        /// The timestamp given, in nanoseconds since the Unix epoch.
        ts_ns: u64,
    },

    /// The sink refused bytes.
    #[error("writing {what}: {source}")]
    Io {
        /// What was being written, e.g. "the section header block" or "1048576 buffered bytes".
        what: String,
        /// The sink's error.
        #[source]
        source: io::Error,
    },

    /// A call after the sink already failed once.
    #[error(
        "the sink failed earlier ({0}); the file is incomplete and this writer accepts no more \
         data"
    )]
    SinkFailed(String),
}

impl Error {
    pub(crate) fn io(what: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            what: what.into(),
            source,
        }
    }
}

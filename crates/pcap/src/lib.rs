//! pcapng and classic pcap writing for edgecap, built for the capture hot path: no allocation
//! per packet, records assembled on the stack and copied into one reusable buffer. Pure: writes
//! to any [`std::io::Write`]; no threads, no async.
//!
//! Modules:
//! - `model`: what callers describe: [`Format`], [`Section`] (SHB options), [`Interface`]
//!   (IDB), [`Direction`] (`epb_flags`), [`InterfaceStats`] (ISB) and the `LINKTYPE_*` values.
//! - `writer`: the streaming [`Writer`]: validation and exact byte accounting
//!   ([`Writer::record_len`] predicts what [`Writer::write_packet`] adds, for byte limits).
//! - `output`: the writer's reusable buffer, vectored direct writes, and fail-stop on the
//!   first sink error.
//! - `pcapng`: pcapng block encoding (SHB, IDB, EPB, ISB), little-endian, nanosecond
//!   timestamps (`if_tsresol = 9`).
//! - `pcap`: classic pcap encoding with nanosecond timestamps (magic `0xA1B23C4D`).
//! - `compat`: [`libpcap_incompatibility`], why tcpdump would refuse a pcapng file with given
//!   interfaces (notably: more than one LINKTYPE_RAW interface, a libpcap bug).
//! - `sll2`: [`sll2_header`], the Linux cooked v2 framing that lets tcpdump read files with
//!   several interfaces of IP packets (RAW would trip a libpcap bug, see `compat`).
//! - `iplen`: [`orig_len_from_ip`], the untruncated length NFLOG does not report.
//! - `error`: the single [`Error`] type.
//! - [`read`]: the streaming reader for files from any tool (pcap in both byte orders, µs/ns;
//!   pcapng with several sections, `if_tsresol`/`if_tsoffset`; linktypes RAW, IPv4/IPv6,
//!   Ethernet with VLAN tags, SLL/SLL2, NFLOG, NULL/LOOP, PPP), with its own [`read::ReadError`].
//! - [`merge`]: the k-way merge of N readers into one time-ordered pcapng (one interface per
//!   input interface, named `<node>/<point>`) or classic pcap; memory bounded by the readers.
//!
//! Format decisions (one linktype and snaplen per file, RAW by default, loss recorded in
//! `epb_dropcount` and an ISB) are in the project's kernel-capture facts, section 7.

mod compat;
pub mod dissect;
mod error;
mod iplen;
pub mod merge;
mod model;
mod output;
mod pcap;
mod pcapng;
pub mod read;
mod sll2;
mod writer;

pub use compat::libpcap_incompatibility;
pub use error::Error;
pub use iplen::orig_len_from_ip;
pub use model::{
    Direction, Format, Interface, InterfaceStats, LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL2,
    LINKTYPE_NFLOG, LINKTYPE_RAW, Section,
};
pub use sll2::{SLL2_HEADER_LEN, sll2_header};
pub use writer::{DEFAULT_BUFFER_CAPACITY, Writer};

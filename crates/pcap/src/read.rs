//! Streaming reading of capture files written by any tool: classic pcap (either byte order,
//! µs or ns timestamps) and pcapng (any number of sections, each in its own byte order).
//!
//! Pure over [`std::io::Read`] and bounded: one reusable buffer holds the current block (at most
//! [`MAX_BLOCK_LEN`] bytes), blocks the reader does not use are skipped without buffering, and at
//! most [`MAX_INTERFACES`] interfaces are kept. Total: any byte string yields packets, a clean
//! end, or a [`ReadError`] naming the offset, never a panic. Wrap files in a `BufReader`; the
//! reader makes small reads for headers.
//!
//! Modules: `packet` ([`Packet`], [`InterfaceInfo`]), `source` (offsets, exact reads, skipping), `bytes` (bounds-checked integers in a
//! byte order), `pcap` (classic headers and records), `pcapng` (blocks), `options` (IDB
//! options, timestamp resolution), `link` (from a linktype's frame to the IP packet), `error`.

mod bytes;
mod error;
pub(crate) mod link;
mod options;
mod packet;
mod pcap;
mod pcapng;
mod source;
#[cfg(test)]
mod tests_build;
#[cfg(test)]
mod tests_garbage;
#[cfg(test)]
mod tests_link;
#[cfg(test)]
mod tests_pcap;
#[cfg(test)]
mod tests_pcapng;

use std::io::Read;

use crate::{Direction, Format};

pub use bytes::Endian;
pub use error::ReadError;
pub use link::{
    DLT_RAW_12, DLT_RAW_14, LINKTYPE_ETHERNET, LINKTYPE_IPV4, LINKTYPE_IPV6, LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2, LINKTYPE_LOOP, LINKTYPE_NFLOG, LINKTYPE_NULL, LINKTYPE_PPP,
    LINKTYPE_PPP_HDLC, LINKTYPE_PPP_WITH_DIR, LINKTYPE_RAW, ip_packet,
};
pub use packet::{InterfaceInfo, Packet};
pub use source::MAX_BLOCK_LEN;

/// Most interfaces kept over all sections of a file; more is treated as corruption.
pub const MAX_INTERFACES: usize = 65_536;

#[derive(Debug, Clone, Copy)]
enum Kind {
    Pcap(pcap::Header),
    Pcapng {
        order: Endian,
        section: u32,
        /// Global index of the section's interface 0.
        first: usize,
    },
}

/// Where the current packet is, before it is borrowed.
struct Meta {
    offset: u64,
    iface: usize,
    ts_ns: i64,
    ts_known: bool,
    orig_len: u32,
    start: usize,
    len: usize,
    direction: Direction,
}

/// A streaming pcap/pcapng reader. See the module documentation.
#[derive(Debug)]
pub struct Reader<R> {
    src: source::Source<R>,
    kind: Kind,
    interfaces: Vec<InterfaceInfo>,
    buf: Vec<u8>,
    last_ts: i64,
}

impl<R: Read> Reader<R> {
    /// Reads the file header (pcap) or first section header (pcapng). A file that starts with
    /// neither gets [`ReadError::NotCapture`].
    pub fn new(inner: R) -> Result<Self, ReadError> {
        let mut src = source::Source::new(inner);
        let mut start = [0u8; 4];
        let n = src.read_start(&mut start)?;
        if n < 4 {
            return Err(ReadError::NotCapture {
                start: start.get(..n).unwrap_or_default().to_vec(),
            });
        }
        let mut buf = Vec::new();
        let mut interfaces = Vec::new();
        let kind = if start == pcapng::SHB_TYPE {
            let mut len_raw = [0u8; 4];
            src.fill(&mut len_raw, 0, "a section header block", 28)?;
            let order = pcapng::section(&mut src, 0, len_raw, &mut buf)?;
            Kind::Pcapng {
                order,
                section: 0,
                first: 0,
            }
        } else if let Some((order, tsresol)) = pcap::magic(start) {
            let h = pcap::header(&mut src, start, order, tsresol)?;
            interfaces.push(InterfaceInfo {
                index: 0,
                section: 0,
                name: "if0".to_owned(),
                named: false,
                description: None,
                linktype: h.linktype,
                snaplen: h.snaplen,
                tsresol,
                tsoffset_s: 0,
                byte_order: order,
            });
            Kind::Pcap(h)
        } else {
            return Err(ReadError::NotCapture {
                start: start.to_vec(),
            });
        };
        Ok(Reader {
            src,
            kind,
            interfaces,
            buf,
            last_ts: 0,
        })
    }

    /// Classic pcap or pcapng.
    pub fn format(&self) -> Format {
        match self.kind {
            Kind::Pcap(_) => Format::Pcap,
            Kind::Pcapng { .. } => Format::Pcapng,
        }
    }

    /// Every interface defined so far, in file order; pcapng files may define more later.
    pub fn interfaces(&self) -> &[InterfaceInfo] {
        &self.interfaces
    }

    /// Bytes consumed so far.
    pub fn offset(&self) -> u64 {
        self.src.offset()
    }

    /// The next packet, or `None` at the end of the file.
    pub fn next_packet(&mut self) -> Result<Option<Packet<'_>>, ReadError> {
        let Some(m) = self.next_meta()? else {
            return Ok(None);
        };
        let Some(info) = self.interfaces.get(m.iface) else {
            return Err(ReadError::malformed(
                m.offset,
                "packet of an unknown interface",
            ));
        };
        let data = self.buf.get(m.start..m.start + m.len).unwrap_or_default();
        Ok(Some(Packet {
            offset: m.offset,
            interface: info.index,
            interface_name: &info.name,
            linktype: info.linktype,
            ts_ns: m.ts_ns,
            ts_known: m.ts_known,
            caplen: m.len as u32,
            orig_len: m.orig_len,
            data,
            ip: ip_packet(info.linktype, data, info.byte_order),
            direction: m.direction,
            byte_order: info.byte_order,
        }))
    }

    fn next_meta(&mut self) -> Result<Option<Meta>, ReadError> {
        loop {
            let (order, section, first) = match self.kind {
                Kind::Pcap(h) => return self.next_pcap(&h),
                Kind::Pcapng {
                    order,
                    section,
                    first,
                } => (order, section, first),
            };
            let Some(block) = pcapng::next_block(&mut self.src, order, &mut self.buf)? else {
                return Ok(None);
            };
            match block {
                pcapng::Block::Section(order) => {
                    self.kind = Kind::Pcapng {
                        order,
                        section: section.saturating_add(1),
                        first: self.interfaces.len(),
                    };
                }
                pcapng::Block::Interface(idb) => self.add_interface(idb, order, section)?,
                pcapng::Block::Packet(p) => return self.packet_meta(p, section, first).map(Some),
                pcapng::Block::Other => {}
            }
        }
    }

    fn next_pcap(&mut self, h: &pcap::Header) -> Result<Option<Meta>, ReadError> {
        let Some(r) = pcap::record(&mut self.src, h, &mut self.buf)? else {
            return Ok(None);
        };
        Ok(Some(Meta {
            offset: r.offset,
            iface: 0,
            ts_ns: pcap::ts_ns(&r, h.tsresol),
            ts_known: true,
            orig_len: r.orig_len,
            start: 0,
            len: r.caplen as usize,
            direction: Direction::Unknown,
        }))
    }

    fn add_interface(
        &mut self,
        idb: options::Idb,
        order: Endian,
        section: u32,
    ) -> Result<(), ReadError> {
        let index = self.interfaces.len();
        if index >= MAX_INTERFACES {
            return Err(ReadError::malformed(
                self.src.offset(),
                format!("more than {MAX_INTERFACES} interfaces; refusing to keep more"),
            ));
        }
        let named = idb.name.as_deref().is_some_and(|n| !n.is_empty());
        self.interfaces.push(InterfaceInfo {
            index: index as u32,
            section,
            name: match idb.name {
                Some(n) if named => n,
                _ => format!("if{index}"),
            },
            named,
            description: idb.description,
            linktype: idb.linktype,
            snaplen: idb.snaplen,
            tsresol: idb.tsresol,
            tsoffset_s: idb.tsoffset_s,
            byte_order: order,
        });
        Ok(())
    }

    fn packet_meta(
        &mut self,
        p: pcapng::PacketBlock,
        section: u32,
        first: usize,
    ) -> Result<Meta, ReadError> {
        let defined = self.interfaces.len() - first;
        let global = first.checked_add(p.iface as usize);
        let Some(info) = global.and_then(|g| self.interfaces.get(g)) else {
            return Err(ReadError::malformed(
                p.offset,
                format!(
                    "packet refers to interface {} but section {section} defines {defined} \
                     interface(s) before it",
                    p.iface
                ),
            ));
        };
        let (ts_ns, ts_known) = match p.ticks {
            Some(t) => (options::ticks_to_ns(t, info.tsresol, info.tsoffset_s), true),
            None => (self.last_ts, false),
        };
        self.last_ts = ts_ns;
        let mut len = p.data_len;
        if p.simple {
            len = len.min(p.orig_len as usize);
            if info.snaplen != 0 {
                len = len.min(info.snaplen as usize);
            }
        }
        Ok(Meta {
            offset: p.offset,
            iface: info.index as usize,
            ts_ns,
            ts_known,
            orig_len: p.orig_len,
            start: p.data_start,
            len,
            direction: p.direction,
        })
    }
}

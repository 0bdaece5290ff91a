//! The streaming [`Writer`]: validation and byte accounting around the encoders; buffering
//! and sink errors are `output`'s.

use std::fmt;
use std::io::Write;

use crate::model::{Direction, Format, Interface, InterfaceStats, Section};
use crate::output::Output;
use crate::{Error, pcap, pcapng};

/// Buffer size used by [`Writer::new`]: the sink sees few, big writes. In `tests/bench.rs` the
/// writer's own buffer beat one vectored write per record into a `BufWriter` by 1.2x to 1.6x;
/// 64 KiB and 1 MiB buffers tied, and 1 MiB means fewer system calls on real files.
pub const DEFAULT_BUFFER_CAPACITY: usize = 1 << 20;

/// Largest packet accepted even when an interface's snaplen is larger, so an EPB's 32-bit total
/// length (data plus at most 59 bytes of framing) cannot overflow.
const MAX_DATA: u32 = u32::MAX - 64;

/// What the writer remembers of an interface: enough to validate packets and name it in errors.
#[derive(Debug)]
struct Iface {
    name: String,
    linktype: u16,
    snaplen: u32,
}

impl From<&Interface> for Iface {
    fn from(i: &Interface) -> Self {
        Iface {
            name: i.name.clone(),
            linktype: i.linktype,
            snaplen: i.snaplen,
        }
    }
}

impl Iface {
    /// The largest packet accepted. A snaplen of 0 means "no limit" in pcapng; we still cap it
    /// at libpcap's maximum because Wireshark and tcpdump refuse larger records.
    fn limit(&self) -> u32 {
        match self.snaplen {
            0 => pcap::MAX_SNAPLEN,
            n => n.min(MAX_DATA),
        }
    }
}

/// A streaming pcapng or pcap writer over any [`Write`].
///
/// The writer buffers by itself, so give it the `File`, pipe or upload sink directly. Wrapping
/// the sink in a `BufWriter` at least as large as the writer's buffer halved throughput for
/// 1428-byte packets in `tests/bench.rs`: every buffer is then copied twice.
///
/// Dropping the writer flushes what is buffered and ignores errors, like `BufWriter`; call
/// [`Writer::finish`] to see them. After the sink fails once, every call returns
/// [`Error::SinkFailed`]: the file then ends at an unknown point, and retrying could duplicate
/// or interleave bytes.
pub struct Writer<W: Write> {
    out: Output<W>,
    format: Format,
    ifaces: Vec<Iface>,
}

impl<W: Write> fmt::Debug for Writer<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Writer")
            .field("format", &self.format)
            .field("interfaces", &self.ifaces)
            .field("out", &self.out)
            .finish()
    }
}

impl<W: Write> Writer<W> {
    /// Starts a file: the SHB and one IDB per interface (pcapng), or the global header with
    /// interface 0's linktype and snaplen (pcap). Uses a [`DEFAULT_BUFFER_CAPACITY`] buffer.
    pub fn new(
        sink: W,
        format: Format,
        section: &Section,
        interfaces: &[Interface],
    ) -> Result<Self, Error> {
        Self::with_buffer_capacity(sink, format, section, interfaces, DEFAULT_BUFFER_CAPACITY)
    }

    /// Like [`Writer::new`] with an explicit buffer size; 0 sends every record straight to the
    /// sink (one vectored write each), for sinks that already buffer.
    pub fn with_buffer_capacity(
        sink: W,
        format: Format,
        section: &Section,
        interfaces: &[Interface],
        capacity: usize,
    ) -> Result<Self, Error> {
        // Encode and validate everything before the first byte reaches the sink, so a rejected
        // configuration leaves the sink untouched.
        let header = match format {
            Format::Pcapng => {
                let mut header = pcapng::shb(section)?;
                for (index, iface) in interfaces.iter().enumerate() {
                    header.extend_from_slice(&pcapng::idb(index, iface)?);
                }
                header
            }
            Format::Pcap => {
                let first = Iface::from(interfaces.first().ok_or(Error::PcapNoInterface)?);
                for (index, iface) in interfaces.iter().enumerate().skip(1) {
                    check_pcap_compatible(&first, index, iface)?;
                }
                pcap::global_header(first.linktype, first.snaplen).to_vec()
            }
        };
        let mut out = Output::new(sink, capacity);
        out.put(&[&header], || "the file header".to_owned())?;
        Ok(Writer {
            out,
            format,
            ifaces: interfaces.iter().map(Iface::from).collect(),
        })
    }

    /// Declares another interface mid-stream and returns its index. pcapng writes an IDB
    /// (interfaces may be discovered as packets arrive); pcap only checks that the new
    /// interface matches the file header.
    pub fn add_interface(&mut self, iface: &Interface) -> Result<u32, Error> {
        let index = self.ifaces.len();
        let id = u32::try_from(index).map_err(|_| Error::TooManyInterfaces {
            name: iface.name.clone(),
        })?;
        match self.format {
            Format::Pcapng => {
                let idb = pcapng::idb(index, iface)?;
                self.out.put(&[&idb], || {
                    format!("the IDB of interface {index} ({:?})", iface.name)
                })?;
            }
            Format::Pcap => {
                if let Some(first) = self.ifaces.first() {
                    check_pcap_compatible(first, index, iface)?;
                }
            }
        }
        self.ifaces.push(Iface::from(iface));
        Ok(id)
    }

    /// Appends one packet and returns the bytes its record added to the file, which always
    /// equals [`Writer::record_len`]. `data` must already be truncated to the interface's
    /// snaplen; an `orig_len` below `data.len()` is raised to it, since readers reject records
    /// claiming fewer bytes on the wire than were captured. pcap cannot store `dir` or
    /// `drops_before` and ignores them.
    pub fn write_packet(
        &mut self,
        iface: u32,
        ts_ns: u64,
        data: &[u8],
        orig_len: u32,
        dir: Direction,
        drops_before: u64,
    ) -> Result<u64, Error> {
        self.write_framed_packet(iface, ts_ns, &[], data, orig_len, dir, drops_before)
    }

    /// [`Writer::write_packet`] for a packet stored as `link_header` followed by `data` (an
    /// SLL2 header before an IP packet, say) without copying them together. The snaplen and
    /// `orig_len` count both.
    #[allow(clippy::too_many_arguments)]
    pub fn write_framed_packet(
        &mut self,
        iface: u32,
        ts_ns: u64,
        link_header: &[u8],
        data: &[u8],
        orig_len: u32,
        dir: Direction,
        drops_before: u64,
    ) -> Result<u64, Error> {
        let info = self.iface(iface)?;
        let limit = info.limit();
        let len = link_header.len() + data.len();
        let caplen = match u32::try_from(len) {
            Ok(n) if n <= limit => n,
            _ => {
                return Err(Error::PacketTooLong {
                    iface,
                    name: info.name.clone(),
                    len,
                    limit: u64::from(limit),
                });
            }
        };
        let orig_len = orig_len.max(caplen);
        let what = || format!("a {caplen}-byte packet record of interface {iface}");
        let added = match self.format {
            Format::Pcapng => {
                let epb = pcapng::epb(iface, ts_ns, len, orig_len, dir, drops_before);
                self.out
                    .put(&[&epb.head, link_header, data, epb.tail()], what)?;
                (epb.head.len() + len + epb.tail().len()) as u64
            }
            Format::Pcap => {
                let head = pcap::record_header(ts_ns, caplen, orig_len)?;
                self.out.put(&[&head, link_header, data], what)?;
                (head.len() + len) as u64
            }
        };
        Ok(added)
    }

    /// The exact number of bytes [`Writer::write_packet`] would add for such a packet, so a
    /// caller can enforce a byte limit before writing. The interface does not change the
    /// length; it is taken so call sites read like the write they guard.
    pub fn record_len(
        &self,
        _iface: u32,
        data_len: usize,
        dir: Direction,
        drops_before: u64,
    ) -> u64 {
        match self.format {
            Format::Pcapng => pcapng::epb_len(data_len, dir, drops_before),
            Format::Pcap => (data_len as u64).saturating_add(pcap::RECORD_HEADER_LEN as u64),
        }
    }

    /// Appends an Interface Statistics Block (pcapng); classic pcap has nowhere to put them,
    /// so there it only checks `iface`.
    pub fn write_stats(&mut self, iface: u32, stats: &InterfaceStats) -> Result<(), Error> {
        self.iface(iface)?;
        if self.format == Format::Pcapng {
            let isb = pcapng::isb(iface, stats)?;
            self.out
                .put(&[&isb], || format!("the ISB of interface {iface}"))?;
        }
        Ok(())
    }

    /// Bytes of the file so far, including buffered bytes the sink has not seen yet.
    pub fn bytes_written(&self) -> u64 {
        self.out.len()
    }

    /// Bytes waiting in the writer's buffer.
    pub fn buffered(&self) -> usize {
        self.out.buffered()
    }

    /// The format being written.
    pub fn format(&self) -> Format {
        self.format
    }

    /// How many interfaces the file defines; valid indexes are below this.
    pub fn interface_count(&self) -> usize {
        self.ifaces.len()
    }

    /// Hands everything buffered to the sink and flushes the sink.
    pub fn flush(&mut self) -> Result<(), Error> {
        self.out.flush()
    }

    /// Flushes and returns the sink.
    pub fn finish(self) -> Result<W, Error> {
        self.out.finish()
    }

    fn iface(&self, iface: u32) -> Result<&Iface, Error> {
        self.ifaces
            .get(iface as usize)
            .ok_or(Error::UnknownInterface {
                iface,
                count: self.ifaces.len(),
            })
    }
}

fn check_pcap_compatible(first: &Iface, index: usize, iface: &Interface) -> Result<(), Error> {
    if iface.linktype == first.linktype && iface.snaplen == first.snaplen {
        return Ok(());
    }
    Err(Error::PcapMixedInterfaces {
        index,
        name: iface.name.clone(),
        linktype: iface.linktype,
        snaplen: iface.snaplen,
        first_name: first.name.clone(),
        first_linktype: first.linktype,
        first_snaplen: first.snaplen,
    })
}

#[cfg(test)]
mod tests;

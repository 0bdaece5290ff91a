//! [`merge`]: N capture files into one time-ordered file, streaming.
//!
//! A k-way merge over the inputs' [`Reader`]s: each input contributes its next packet (copied
//! into one reusable buffer per input) to a min-heap keyed by (timestamp, input position), so
//! packets with equal timestamps keep the inputs' order and each input keeps its own order.
//! Memory is the inputs' reader buffers plus one packet per input, never the files' size.
//!
//! Output interfaces: pcapng gets one interface per (input, input interface), in the order
//! they are met. An input interface named `<node>/<point>` (as edgecap names them) keeps its
//! name; any other name, or none, is prefixed with the input's name (its file stem):
//! `<stem>/<if_name>` or `<stem>/if<k>`. Classic pcap, when asked for, needs every input
//! interface to share one linktype; its snaplen is the largest of theirs.
//!
//! tcpdump: libpcap reads one linktype and one snaplen per file, and no file with several
//! RAW interfaces (see `compat`). So when the output is pcapng with several interfaces that
//! all hold IP packets (RAW, IPv4, IPv6) or SLL2, every interface is written as SLL2 with one
//! snaplen, IP packets getting an SLL2 header ([`crate::sll2_header`]); such a merge of
//! edgecap files always opens in tcpdump. Inputs with other linktypes (Ethernet from tcpdump,
//! say) are written as they are, and [`Merger::libpcap_note`] says before the merge starts
//! that tcpdump will refuse the result.
//!
//! Carried over: the direction (`epb_flags`). Not carried over: other per-packet options
//! (drop counts, comments) and statistics blocks, which the reader does not expose; the
//! per-node files keep them.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{Read, Write};

use crate::model::{Format, Interface, Section};
use crate::model::{LINKTYPE_LINUX_SLL2, LINKTYPE_RAW};
use crate::read::{InterfaceInfo, ReadError, Reader};
use crate::sll2::{SLL2_HEADER_LEN, sll2_header};
use crate::{Direction, Error, Writer, libpcap_incompatibility};

/// The output writer's buffer. Smaller than the writer's 1 MiB default: on the development
/// machine's ext4, `write(2)` of 1 MiB into the page cache cost ~1.3 ms each, far more per byte
/// than 128 KiB writes (`edgecap bench merge`, docs/benchmarks.md).
const OUTPUT_BUFFER: usize = 128 << 10;

/// How often (in packets) the progress callback runs.
const PROGRESS_EVERY: u64 = 1 << 16;

/// One input: its reader and the name its interfaces are prefixed with when theirs do not
/// say `<node>/<point>` (callers pass the file stem or the node name).
#[derive(Debug)]
pub struct MergeInput<R> {
    pub name: String,
    pub reader: Reader<R>,
}

impl<R: Read> MergeInput<R> {
    /// Opens `source` as a capture file; the error names the input.
    pub fn new(name: impl Into<String>, source: R) -> Result<Self, MergeError> {
        let name = name.into();
        match Reader::new(source) {
            Ok(reader) => Ok(MergeInput { name, reader }),
            Err(source) => Err(MergeError::Read {
                input: name,
                source,
            }),
        }
    }
}

/// What to write.
#[derive(Debug, Clone, Default)]
pub struct MergeOptions {
    /// pcapng (default: one interface per node and point) or classic pcap.
    pub format: Format,
    /// The output's section header; `user_appl` defaults to "edgecap <version> merge".
    pub section: Option<Section>,
}

/// Progress, passed to the callback every few ten thousand packets.
#[derive(Debug, Clone, Copy, Default)]
pub struct MergeProgress {
    pub packets: u64,
    /// Bytes read from all inputs so far.
    pub bytes_in: u64,
    /// Bytes of output so far.
    pub bytes_out: u64,
}

/// What a finished merge wrote.
#[derive(Debug, Clone)]
pub struct MergeSummary {
    pub packets: u64,
    /// Packets taken from each input, in input order.
    pub per_input: Vec<u64>,
    /// The output's interfaces (for pcap: the one the file header describes).
    pub interfaces: Vec<Interface>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Why tcpdump (libpcap) could not read the output, if it could not; tshark and
    /// Wireshark read it either way.
    pub libpcap_note: Option<String>,
}

/// Why a merge failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MergeError {
    #[error("no input files")]
    NoInputs,
    #[error("{input}: {source}")]
    Read {
        input: String,
        #[source]
        source: ReadError,
    },
    #[error("writing the merged file: {0}")]
    Write(#[from] Error),
    #[error(
        "classic pcap holds one linktype, but interface {first_input} has \
         linktype {first} and interface {input} has linktype {other}; write pcapng instead"
    )]
    MixedLinktypes {
        first_input: String,
        first: u16,
        input: String,
        other: u16,
    },
    #[error(
        "{input}: packet at offset {offset} is timestamped before 1970, which the output cannot hold"
    )]
    BeforeEpoch { input: String, offset: u64 },
}

/// The next packet of one input, copied out of its reader.
#[derive(Debug, Default)]
struct Head {
    ts_ns: i64,
    /// The input's global interface index.
    iface: u32,
    orig_len: u32,
    offset: u64,
    direction: Direction,
    data: Vec<u8>,
}

struct Input<R> {
    name: String,
    reader: Reader<R>,
    head: Head,
    /// Input interface index -> output interface index.
    map: Vec<u32>,
    packets: u64,
}

impl<R: Read> Input<R> {
    /// Reads the next packet into `head`; false at the end.
    fn advance(&mut self) -> Result<bool, MergeError> {
        let p = match self.reader.next_packet() {
            Ok(Some(p)) => p,
            Ok(None) => return Ok(false),
            Err(source) => {
                return Err(MergeError::Read {
                    input: self.name.clone(),
                    source,
                });
            }
        };
        self.head.ts_ns = p.ts_ns;
        self.head.iface = p.interface;
        self.head.orig_len = p.orig_len;
        self.head.offset = p.offset;
        self.head.direction = p.direction;
        self.head.data.clear();
        self.head.data.extend_from_slice(p.data);
        Ok(true)
    }
}

/// The output name of an input interface (see the module documentation).
pub fn interface_name(input: &str, info: &InterfaceInfo) -> String {
    if info.named && info.name.contains('/') {
        info.name.clone()
    } else if info.named {
        format!("{input}/{}", info.name)
    } else {
        format!("{input}/if{}", info.index)
    }
}

/// Merges `inputs` into `out`; see the module documentation. Returns the sink once
/// everything is flushed.
pub fn merge<R: Read, W: Write>(
    inputs: Vec<MergeInput<R>>,
    out: W,
    opts: &MergeOptions,
    progress: impl FnMut(&MergeProgress),
) -> Result<(MergeSummary, W), MergeError> {
    Merger::open(inputs, out, opts)?.run(progress)
}

/// A merge whose output header is written and whose packets are not yet: [`Merger::open`]
/// reads each input up to its first packet, so the interfaces (and whether tcpdump will read
/// the result, [`Merger::libpcap_note`]) are known before [`Merger::run`] does the work.
pub struct Merger<R, W: Write> {
    ins: Vec<Input<R>>,
    heap: BinaryHeap<Reverse<(i64, usize)>>,
    writer: Writer<W>,
    out: OutInterfaces,
    header_ifaces: Vec<Interface>,
}

impl<R, W: Write> std::fmt::Debug for Merger<R, W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Merger")
            .field("inputs", &self.ins.len())
            .field("interfaces", &self.out.all.len())
            .finish()
    }
}

impl<R: Read, W: Write> Merger<R, W> {
    /// Opens the inputs and writes the output's header.
    pub fn open(
        inputs: Vec<MergeInput<R>>,
        out: W,
        opts: &MergeOptions,
    ) -> Result<Self, MergeError> {
        if inputs.is_empty() {
            return Err(MergeError::NoInputs);
        }
        let mut ins: Vec<Input<R>> = Vec::with_capacity(inputs.len());
        let mut heap = BinaryHeap::with_capacity(inputs.len());
        for (pos, i) in inputs.into_iter().enumerate() {
            let mut input = Input {
                name: i.name,
                reader: i.reader,
                head: Head::default(),
                map: Vec::new(),
                packets: 0,
            };
            if input.advance()? {
                heap.push(Reverse((input.head.ts_ns, pos)));
            }
            ins.push(input);
        }
        // Several interfaces of IP packets get SLL2 framing, which tcpdump reads (see
        // `crate::sll2`); a single one stays as it is.
        let initial: Vec<u16> = ins
            .iter()
            .flat_map(|i| i.reader.interfaces().iter().map(|f| f.linktype))
            .collect();
        let frame_ip = opts.format == Format::Pcapng
            && initial.len() > 1
            && initial.iter().all(|&l| framable(l));
        let mut out_ifaces = OutInterfaces {
            format: opts.format,
            frame_ip,
            all: Vec::new(),
            framed: Vec::new(),
            pending: Vec::new(),
        };
        for input in ins.iter_mut() {
            out_ifaces.map_new(input)?;
        }
        if frame_ip {
            out_ifaces.equalize_snaplens();
        }
        let header_ifaces = match opts.format {
            Format::Pcapng => std::mem::take(&mut out_ifaces.pending),
            Format::Pcap => pcap_interface(&out_ifaces.all),
        };
        let section = opts.section.clone().unwrap_or_else(|| Section {
            user_appl: format!("edgecap {} merge", env!("CARGO_PKG_VERSION")),
            comment: Some(format!(
                "merged from {}",
                ins.iter()
                    .map(|i| i.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            ..Section::default()
        });
        let writer = Writer::with_buffer_capacity(
            out,
            opts.format,
            &section,
            &header_ifaces,
            OUTPUT_BUFFER,
        )?;
        Ok(Merger {
            ins,
            heap,
            writer,
            out: out_ifaces,
            header_ifaces,
        })
    }

    /// Why tcpdump (libpcap) could not read the output, as far as the interfaces known at the
    /// start tell (an input may still declare another one later).
    pub fn libpcap_note(&self) -> Option<String> {
        match self.out.format {
            Format::Pcapng => libpcap_incompatibility(&self.out.all),
            Format::Pcap => None,
        }
    }

    /// The output's interfaces known so far.
    pub fn interfaces(&self) -> &[Interface] {
        &self.out.all
    }

    /// Writes every packet in time order and returns the summary and the flushed sink.
    pub fn run(
        mut self,
        mut progress: impl FnMut(&MergeProgress),
    ) -> Result<(MergeSummary, W), MergeError> {
        let (ins, heap, writer, out) = (
            &mut self.ins,
            &mut self.heap,
            &mut self.writer,
            &mut self.out,
        );
        let mut packets = 0u64;
        while let Some(Reverse((_, pos))) = heap.pop() {
            let Some(input) = ins.get_mut(pos) else { break };
            let head = &input.head;
            let Some(&iface) = input.map.get(head.iface as usize) else {
                return Err(MergeError::Read {
                    input: input.name.clone(),
                    source: ReadError::Malformed {
                        offset: head.offset,
                        what: format!("packet of undefined interface {}", head.iface),
                    },
                });
            };
            let Ok(ts) = u64::try_from(head.ts_ns) else {
                return Err(MergeError::BeforeEpoch {
                    input: input.name.clone(),
                    offset: head.offset,
                });
            };
            // A packet longer than its interface's snaplen breaks the input's own promise
            // (the writer refuses to repeat it): the input is at fault, and is named.
            let framed = out.framed.get(iface as usize).copied().unwrap_or(false);
            let limit = out.all.get(iface as usize).map_or(0, |i| i.snaplen);
            let extra = if framed { SLL2_HEADER_LEN } else { 0 };
            if limit != 0 && head.data.len().saturating_add(extra) > limit as usize {
                return Err(MergeError::Read {
                    input: input.name.clone(),
                    source: ReadError::Malformed {
                        offset: head.offset,
                        what: format!(
                            "packet of {} bytes is longer than its interface's snaplen {}",
                            head.data.len(),
                            limit as usize - extra.min(limit as usize)
                        ),
                    },
                });
            }
            if framed {
                let link = sll2_header(&head.data, 0, head.direction);
                let orig = head.orig_len.saturating_add(SLL2_HEADER_LEN as u32);
                writer.write_framed_packet(
                    iface,
                    ts,
                    &link,
                    &head.data,
                    orig,
                    head.direction,
                    0,
                )?;
            } else {
                writer.write_packet(iface, ts, &head.data, head.orig_len, head.direction, 0)?;
            }
            input.packets += 1;
            packets += 1;
            if input.advance()? {
                heap.push(Reverse((input.head.ts_ns, pos)));
            }
            if input.reader.interfaces().len() > input.map.len() {
                out.map_new(input)?;
                for iface in out.pending.drain(..) {
                    writer.add_interface(&iface)?;
                }
            }
            if packets.is_multiple_of(PROGRESS_EVERY) {
                progress(&MergeProgress {
                    packets,
                    bytes_in: ins.iter().map(|i| i.reader.offset()).sum(),
                    bytes_out: writer.bytes_written(),
                });
            }
        }
        let libpcap_note = self.libpcap_note();
        let bytes_out = self.writer.bytes_written();
        let sink = self.writer.finish()?;
        let summary = MergeSummary {
            packets,
            per_input: self.ins.iter().map(|i| i.packets).collect(),
            libpcap_note,
            interfaces: match self.out.format {
                Format::Pcapng => self.out.all,
                Format::Pcap => self.header_ifaces,
            },
            bytes_in: self.ins.iter().map(|i| i.reader.offset()).sum(),
            bytes_out,
        };
        progress(&MergeProgress {
            packets,
            bytes_in: summary.bytes_in,
            bytes_out,
        });
        Ok((summary, sink))
    }
}

/// Whether packets of `linktype` are bare IP packets (or already SLL2) and can be framed as
/// SLL2 in a merged file.
fn framable(linktype: u16) -> bool {
    use crate::read::link::{LINKTYPE_IPV4, LINKTYPE_IPV6};
    matches!(
        linktype,
        LINKTYPE_RAW | LINKTYPE_IPV4 | LINKTYPE_IPV6 | LINKTYPE_LINUX_SLL2
    )
}

/// The output's interfaces as they are met.
#[derive(Debug)]
struct OutInterfaces {
    format: Format,
    /// Whether IP interfaces are written as SLL2 (decided at the start).
    frame_ip: bool,
    all: Vec<Interface>,
    /// Per output interface: its packets need an SLL2 header.
    framed: Vec<bool>,
    /// pcapng interfaces not yet given to the writer.
    pending: Vec<Interface>,
}

impl OutInterfaces {
    /// One snaplen for every interface, the largest (0, no limit, if any has none): libpcap
    /// reads one snaplen per file.
    fn equalize_snaplens(&mut self) {
        let snaplen = if self.all.iter().any(|i| i.snaplen == 0) {
            0
        } else {
            self.all.iter().map(|i| i.snaplen).max().unwrap_or(0)
        };
        for i in self.all.iter_mut().chain(self.pending.iter_mut()) {
            i.snaplen = snaplen;
        }
    }

    /// Gives every interface `input` defined since the last call an output index. pcapng:
    /// a new output interface each (queued in `pending` for the writer); pcap: all map to
    /// interface 0, after checking the linktype.
    fn map_new<R: Read>(&mut self, input: &mut Input<R>) -> Result<(), MergeError> {
        let (format, all, pending) = (self.format, &mut self.all, &mut self.pending);
        let known = input.map.len();
        for info in input.reader.interfaces().iter().skip(known) {
            let frame =
                self.frame_ip && framable(info.linktype) && info.linktype != LINKTYPE_LINUX_SLL2;
            let iface = Interface {
                name: interface_name(&input.name, info),
                description: info.description.clone(),
                filter: None,
                linktype: if self.frame_ip && framable(info.linktype) {
                    LINKTYPE_LINUX_SLL2
                } else {
                    info.linktype
                },
                snaplen: match info.snaplen {
                    n if frame && n > 0 => n.saturating_add(SLL2_HEADER_LEN as u32),
                    n => n,
                },
            };
            // An interface met mid-stream cannot shrink the others' snaplen: it keeps at least
            // theirs, so the file stays readable if it fits.
            let iface = match all.first() {
                Some(first)
                    if self.frame_ip
                        && iface.linktype == LINKTYPE_LINUX_SLL2
                        && iface.snaplen != 0
                        && first.snaplen != 0 =>
                {
                    Interface {
                        snaplen: iface.snaplen.max(first.snaplen),
                        ..iface
                    }
                }
                _ => iface,
            };
            self.framed.push(frame);
            let index = match format {
                Format::Pcapng => u32::try_from(all.len()).unwrap_or(u32::MAX),
                Format::Pcap => {
                    if let Some(first) = all.first()
                        && first.linktype != iface.linktype
                    {
                        let first_input = first.name.clone();
                        return Err(MergeError::MixedLinktypes {
                            first_input,
                            first: first.linktype,
                            input: iface.name.clone(),
                            other: iface.linktype,
                        });
                    }
                    0
                }
            };
            input.map.push(index);
            if format == Format::Pcapng {
                pending.push(iface.clone());
            }
            all.push(iface);
        }
        Ok(())
    }
}

/// The single interface of a classic pcap output: the common linktype, the largest snaplen
/// (0, "no limit", if any input has none).
fn pcap_interface(all: &[Interface]) -> Vec<Interface> {
    let Some(first) = all.first() else {
        // No input defined an interface (all empty pcapng sections): RAW is as good as any.
        return vec![Interface::raw("merged", 0)];
    };
    let snaplen = if all.iter().any(|i| i.snaplen == 0) {
        0
    } else {
        all.iter().map(|i| i.snaplen).max().unwrap_or(0)
    };
    vec![Interface {
        name: "merged".into(),
        description: None,
        filter: None,
        linktype: first.linktype,
        snaplen,
    }]
}

#[cfg(test)]
mod tests;

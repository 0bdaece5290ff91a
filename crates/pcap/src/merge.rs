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
//! Not carried over: per-packet options (direction flags, drop counts, comments) and
//! statistics blocks, which the reader does not expose; the per-node files keep them.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{Read, Write};

use crate::model::{Format, Interface, Section};
use crate::read::{InterfaceInfo, ReadError, Reader};
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
    mut progress: impl FnMut(&MergeProgress),
) -> Result<(MergeSummary, W), MergeError> {
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

    let mut out_ifaces: Vec<Interface> = Vec::new();
    let mut pending: Vec<Interface> = Vec::new();
    for input in ins.iter_mut() {
        map_new_interfaces(input, opts.format, &mut out_ifaces, &mut pending)?;
    }
    let header_ifaces = match opts.format {
        Format::Pcapng => std::mem::take(&mut pending),
        Format::Pcap => pcap_interface(&out_ifaces),
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
    let mut writer =
        Writer::with_buffer_capacity(out, opts.format, &section, &header_ifaces, OUTPUT_BUFFER)?;

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
        writer.write_packet(iface, ts, &head.data, head.orig_len, Direction::Unknown, 0)?;
        input.packets += 1;
        packets += 1;
        if input.advance()? {
            heap.push(Reverse((input.head.ts_ns, pos)));
        }
        if input.reader.interfaces().len() > input.map.len() {
            map_new_interfaces(input, opts.format, &mut out_ifaces, &mut pending)?;
            for iface in pending.drain(..) {
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
    let bytes_out = writer.bytes_written();
    let sink = writer.finish()?;
    let summary = MergeSummary {
        packets,
        per_input: ins.iter().map(|i| i.packets).collect(),
        libpcap_note: match opts.format {
            Format::Pcapng => libpcap_incompatibility(&out_ifaces),
            Format::Pcap => None,
        },
        interfaces: match opts.format {
            Format::Pcapng => out_ifaces,
            Format::Pcap => header_ifaces,
        },
        bytes_in: ins.iter().map(|i| i.reader.offset()).sum(),
        bytes_out,
    };
    progress(&MergeProgress {
        packets,
        bytes_in: summary.bytes_in,
        bytes_out,
    });
    Ok((summary, sink))
}

/// Gives every interface `input` defined since the last call an output index. pcapng:
/// a new output interface each (queued in `pending` for the writer); pcap: all map to
/// interface 0, after checking the linktype.
fn map_new_interfaces<R: Read>(
    input: &mut Input<R>,
    format: Format,
    all: &mut Vec<Interface>,
    pending: &mut Vec<Interface>,
) -> Result<(), MergeError> {
    let known = input.map.len();
    for info in input.reader.interfaces().iter().skip(known) {
        let iface = Interface {
            name: interface_name(&input.name, info),
            description: info.description.clone(),
            filter: None,
            linktype: info.linktype,
            snaplen: info.snaplen,
        };
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

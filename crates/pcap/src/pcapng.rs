//! pcapng block encoding (little-endian sections).
//!
//! The rare blocks (SHB, IDB, ISB) are built in a small `Vec`; the Enhanced Packet Block, written
//! once per packet, is built as a fixed-size header and trailer on the stack around the caller's
//! data so the hot path never allocates.

use crate::Error;
use crate::model::{Direction, Interface, InterfaceStats, Section};

const SHB_TYPE: u32 = 0x0A0D_0D0A;
const IDB_TYPE: u32 = 1;
const ISB_TYPE: u32 = 5;
const EPB_TYPE: u32 = 6;
const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;

const OPT_ENDOFOPT: u16 = 0;
const OPT_COMMENT: u16 = 1;
const SHB_HARDWARE: u16 = 2;
const SHB_OS: u16 = 3;
const SHB_USERAPPL: u16 = 4;
const IF_NAME: u16 = 2;
const IF_DESCRIPTION: u16 = 3;
const IF_TSRESOL: u16 = 9;
const IF_FILTER: u16 = 11;
const EPB_FLAGS: u16 = 2;
const EPB_DROPCOUNT: u16 = 4;
const ISB_STARTTIME: u16 = 2;
const ISB_ENDTIME: u16 = 3;
const ISB_IFRECV: u16 = 4;
const ISB_IFDROP: u16 = 5;
const ISB_FILTERACCEPT: u16 = 6;
const ISB_OSDROP: u16 = 7;
const ISB_USRDELIV: u16 = 8;

/// `if_tsresol` value: a power of ten, 10^-9 s.
const TSRESOL_NS: u8 = 9;
/// `if_filter` type byte for a filter expression in text.
const FILTER_TYPE_STRING: u8 = 0;

/// EPB fixed part before the data: type, length, interface id, ts high, ts low, caplen, len.
pub(crate) const EPB_HEAD_LEN: usize = 28;
/// Largest EPB trailer: 3 padding bytes, epb_flags (8), epb_dropcount (12), opt_endofopt (4),
/// block total length (4).
const EPB_TAIL_MAX: usize = 3 + 8 + 12 + 4 + 4;

/// Bytes needed to pad `len` to a 32-bit boundary.
pub(crate) fn pad32(len: usize) -> usize {
    (4 - len % 4) % 4
}

/// Exact size of the EPB [`epb`] produces.
pub(crate) fn epb_len(data_len: usize, dir: Direction, drops_before: u64) -> u64 {
    let framing = EPB_HEAD_LEN + pad32(data_len) + epb_options_len(dir, drops_before) + 4;
    // Saturating, in u64: callers may ask about lengths the writer would refuse.
    (data_len as u64).saturating_add(framing as u64)
}

fn epb_options_len(dir: Direction, drops_before: u64) -> usize {
    let flags = if dir.epb_flags().is_some() { 8 } else { 0 };
    let drops = if drops_before > 0 { 12 } else { 0 };
    // A block without options carries no opt_endofopt either: the spec makes the whole options
    // field optional, and skipping it saves 4 bytes on the common packet.
    if flags + drops > 0 {
        flags + drops + 4
    } else {
        0
    }
}

/// An Enhanced Packet Block minus its data: `head`, then the data, then `tail()`.
pub(crate) struct Epb {
    pub(crate) head: [u8; EPB_HEAD_LEN],
    tail: [u8; EPB_TAIL_MAX],
    tail_len: usize,
}

impl Epb {
    pub(crate) fn tail(&self) -> &[u8] {
        &self.tail[..self.tail_len]
    }
}

/// Builds an EPB around `data_len` bytes. The caller has checked that the block length fits in
/// 32 bits (see `MAX_DATA` in the writer).
pub(crate) fn epb(
    iface: u32,
    ts_ns: u64,
    data_len: usize,
    orig_len: u32,
    dir: Direction,
    drops_before: u64,
) -> Epb {
    let total = epb_len(data_len, dir, drops_before) as u32;
    let mut head = [0u8; EPB_HEAD_LEN];
    head[0..4].copy_from_slice(&EPB_TYPE.to_le_bytes());
    head[4..8].copy_from_slice(&total.to_le_bytes());
    head[8..12].copy_from_slice(&iface.to_le_bytes());
    head[12..16].copy_from_slice(&((ts_ns >> 32) as u32).to_le_bytes());
    head[16..20].copy_from_slice(&(ts_ns as u32).to_le_bytes());
    head[20..24].copy_from_slice(&(data_len as u32).to_le_bytes());
    head[24..28].copy_from_slice(&orig_len.to_le_bytes());

    // Zero-initialised, so padding and opt_endofopt need only be skipped over.
    let mut tail = [0u8; EPB_TAIL_MAX];
    let mut at = pad32(data_len);
    if let Some(flags) = dir.epb_flags() {
        tail[at..at + 2].copy_from_slice(&EPB_FLAGS.to_le_bytes());
        tail[at + 2..at + 4].copy_from_slice(&4u16.to_le_bytes());
        tail[at + 4..at + 8].copy_from_slice(&flags.to_le_bytes());
        at += 8;
    }
    if drops_before > 0 {
        tail[at..at + 2].copy_from_slice(&EPB_DROPCOUNT.to_le_bytes());
        tail[at + 2..at + 4].copy_from_slice(&8u16.to_le_bytes());
        tail[at + 4..at + 12].copy_from_slice(&drops_before.to_le_bytes());
        at += 12;
    }
    if epb_options_len(dir, drops_before) > 0 {
        at += 4;
    }
    tail[at..at + 4].copy_from_slice(&total.to_le_bytes());
    Epb {
        head,
        tail,
        tail_len: at + 4,
    }
}

/// Section Header Block with section length -1 (unknown: we stream).
pub(crate) fn shb(section: &Section) -> Result<Vec<u8>, Error> {
    let mut b = Block::new(SHB_TYPE, "SHB".to_owned());
    b.bytes.extend_from_slice(&BYTE_ORDER_MAGIC.to_le_bytes());
    b.bytes.extend_from_slice(&1u16.to_le_bytes());
    b.bytes.extend_from_slice(&0u16.to_le_bytes());
    b.bytes.extend_from_slice(&(-1i64).to_le_bytes());
    b.str_opt(OPT_COMMENT, "opt_comment", section.comment.as_deref())?;
    b.str_opt(SHB_HARDWARE, "shb_hardware", section.hardware.as_deref())?;
    b.str_opt(SHB_OS, "shb_os", section.os.as_deref())?;
    b.str_opt(SHB_USERAPPL, "shb_userappl", Some(&section.user_appl))?;
    b.finish()
}

/// Interface Description Block; always nanosecond timestamps.
pub(crate) fn idb(index: usize, iface: &Interface) -> Result<Vec<u8>, Error> {
    let mut b = Block::new(
        IDB_TYPE,
        format!("IDB of interface {index} ({:?})", iface.name),
    );
    b.bytes.extend_from_slice(&iface.linktype.to_le_bytes());
    b.bytes.extend_from_slice(&0u16.to_le_bytes());
    b.bytes.extend_from_slice(&iface.snaplen.to_le_bytes());
    b.str_opt(IF_NAME, "if_name", Some(&iface.name))?;
    b.str_opt(
        IF_DESCRIPTION,
        "if_description",
        iface.description.as_deref(),
    )?;
    b.opt(IF_TSRESOL, "if_tsresol", &[TSRESOL_NS])?;
    if let Some(filter) = iface.filter.as_deref().filter(|f| !f.is_empty()) {
        let mut value = Vec::with_capacity(filter.len() + 1);
        value.push(FILTER_TYPE_STRING);
        value.extend_from_slice(filter.as_bytes());
        b.opt(IF_FILTER, "if_filter", &value)?;
    }
    b.finish()
}

/// Interface Statistics Block; its own timestamp is `end_ns`.
pub(crate) fn isb(iface: u32, stats: &InterfaceStats) -> Result<Vec<u8>, Error> {
    let mut b = Block::new(ISB_TYPE, format!("ISB of interface {iface}"));
    b.bytes.extend_from_slice(&iface.to_le_bytes());
    b.bytes.extend_from_slice(&split_ts(stats.end_ns));
    b.opt(ISB_STARTTIME, "isb_starttime", &split_ts(stats.start_ns))?;
    b.opt(ISB_ENDTIME, "isb_endtime", &split_ts(stats.end_ns))?;
    let counters = [
        (ISB_IFRECV, "isb_ifrecv", stats.if_recv),
        (ISB_IFDROP, "isb_ifdrop", stats.if_drop),
        (ISB_FILTERACCEPT, "isb_filteraccept", stats.filter_accept),
        (ISB_OSDROP, "isb_osdrop", stats.os_drop),
        (ISB_USRDELIV, "isb_usrdeliv", stats.usr_deliv),
    ];
    for (code, name, value) in counters {
        if let Some(v) = value {
            b.opt(code, name, &v.to_le_bytes())?;
        }
    }
    b.str_opt(OPT_COMMENT, "opt_comment", stats.comment.as_deref())?;
    b.finish()
}

/// A pcapng timestamp: high 32 bits, then low 32 bits, each in section byte order.
fn split_ts(ts_ns: u64) -> [u8; 8] {
    let mut out = [0u8; 8];
    out[..4].copy_from_slice(&((ts_ns >> 32) as u32).to_le_bytes());
    out[4..].copy_from_slice(&(ts_ns as u32).to_le_bytes());
    out
}

/// A variable-size block under construction; `label` names it in errors.
struct Block {
    bytes: Vec<u8>,
    label: String,
    has_options: bool,
}

impl Block {
    fn new(block_type: u32, label: String) -> Self {
        let mut bytes = Vec::with_capacity(256);
        bytes.extend_from_slice(&block_type.to_le_bytes());
        // Total length, patched in finish().
        bytes.extend_from_slice(&[0; 4]);
        Block {
            bytes,
            label,
            has_options: false,
        }
    }

    /// Empty strings are skipped: a zero-length string option says nothing.
    fn str_opt(&mut self, code: u16, name: &'static str, v: Option<&str>) -> Result<(), Error> {
        match v {
            Some(s) if !s.is_empty() => self.opt(code, name, s.as_bytes()),
            _ => Ok(()),
        }
    }

    fn opt(&mut self, code: u16, name: &'static str, value: &[u8]) -> Result<(), Error> {
        let len = u16::try_from(value.len()).map_err(|_| Error::OptionTooLong {
            block: self.label.clone(),
            option: name,
            len: value.len(),
        })?;
        self.bytes.extend_from_slice(&code.to_le_bytes());
        self.bytes.extend_from_slice(&len.to_le_bytes());
        self.bytes.extend_from_slice(value);
        self.bytes.resize(self.bytes.len() + pad32(value.len()), 0);
        self.has_options = true;
        Ok(())
    }

    fn finish(mut self) -> Result<Vec<u8>, Error> {
        if self.has_options {
            self.bytes.extend_from_slice(&OPT_ENDOFOPT.to_le_bytes());
            self.bytes.extend_from_slice(&0u16.to_le_bytes());
        }
        // Options are at most 65535 bytes each and a block has a handful, so this cannot fail
        // in practice; it is checked rather than assumed because panics are not allowed here.
        let total = u32::try_from(self.bytes.len() + 4).map_err(|_| Error::OptionTooLong {
            block: self.label.clone(),
            option: "(all options)",
            len: self.bytes.len(),
        })?;
        self.bytes[4..8].copy_from_slice(&total.to_le_bytes());
        self.bytes.extend_from_slice(&total.to_le_bytes());
        Ok(self.bytes)
    }
}

#[cfg(test)]
mod tests;

//! pcapng blocks: Section Header (any number, each with its own byte order), Interface
//! Description, Enhanced/Simple Packet and the obsolete Packet Block. Every other block type
//! (statistics, name resolution, secrets, custom) is skipped without being buffered.

use std::io::Read;

use super::ReadError;
use super::bytes::{Endian, u16_at, u32_at};
use super::options::{self, Idb};
use super::source::{Fill, MAX_BLOCK_LEN, Source};
use crate::model::Direction;

/// The SHB type: a palindrome, the same in both byte orders.
pub(crate) const SHB_TYPE: [u8; 4] = [0x0A, 0x0D, 0x0D, 0x0A];
const IDB_TYPE: u32 = 1;
const PB_TYPE: u32 = 2;
const SPB_TYPE: u32 = 3;
const EPB_TYPE: u32 = 6;
const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;
const SHB_MIN_LEN: u32 = 28;

/// A block the reader acts on.
#[derive(Debug)]
pub(crate) enum Block {
    /// A new section begins; its interfaces replace the previous section's.
    Section(Endian),
    Interface(Idb),
    Packet(PacketBlock),
    /// Anything else; already skipped.
    Other,
}

/// A packet block's fields; the data is `buf[data_start..data_start + data_len]`.
#[derive(Debug)]
pub(crate) struct PacketBlock {
    pub(crate) offset: u64,
    /// Section-relative interface id.
    pub(crate) iface: u32,
    /// Timestamp ticks; `None` for a Simple Packet Block, which has none.
    pub(crate) ticks: Option<u64>,
    pub(crate) orig_len: u32,
    pub(crate) data_start: usize,
    /// Bytes present; for an SPB the caller still caps it at the snaplen and `orig_len`.
    pub(crate) data_len: usize,
    pub(crate) simple: bool,
    /// The direction in the EPB's `epb_flags` option (bits 0-1), when it says one.
    pub(crate) direction: Direction,
}

/// Reads the next block; `None` at a clean end of file.
pub(crate) fn next_block<R: Read>(
    src: &mut Source<R>,
    order: Endian,
    buf: &mut Vec<u8>,
) -> Result<Option<Block>, ReadError> {
    let offset = src.offset();
    let mut head = [0u8; 8];
    if let Fill::End = src.fill_or_end(&mut head, offset, "a block header", 8)? {
        return Ok(None);
    }
    let [t0, t1, t2, t3, l0, l1, l2, l3] = head;
    if [t0, t1, t2, t3] == SHB_TYPE {
        return section(src, offset, [l0, l1, l2, l3], buf).map(|o| Some(Block::Section(o)));
    }
    let kind = order.u32([t0, t1, t2, t3]);
    let len = order.u32([l0, l1, l2, l3]);
    check_len(kind, len, 12, offset)?;
    if !matches!(kind, IDB_TYPE | PB_TYPE | SPB_TYPE | EPB_TYPE) {
        let what = "a block";
        src.skip(u64::from(len - 12), offset, what, u64::from(len))?;
        let mut tail = [0u8; 4];
        src.fill(&mut tail, offset, what, u64::from(len))?;
        check_trailer(kind, len, order.u32(tail), offset)?;
        return Ok(Some(Block::Other));
    }
    check_max(kind, len, offset)?;
    let what = block_name(kind);
    src.fill_vec(buf, (len - 8) as usize, offset, what, u64::from(len))?;
    let body_len = (len - 12) as usize;
    check_trailer(kind, len, u32_at(buf, body_len, order).unwrap_or(0), offset)?;
    let body = buf.get(..body_len).unwrap_or_default();
    match kind {
        IDB_TYPE => options::idb(body, order, offset).map(|i| Some(Block::Interface(i))),
        _ => packet(kind, body, order, offset).map(|p| Some(Block::Packet(p))),
    }
}

/// Reads a Section Header Block whose type has been read; `len_raw` are its next 4 bytes.
/// Returns the section's byte order.
pub(crate) fn section<R: Read>(
    src: &mut Source<R>,
    offset: u64,
    len_raw: [u8; 4],
    buf: &mut Vec<u8>,
) -> Result<Endian, ReadError> {
    let what = "a section header block";
    let mut bom = [0u8; 4];
    src.fill(&mut bom, offset, what, u64::from(SHB_MIN_LEN))?;
    let order = if u32::from_le_bytes(bom) == BYTE_ORDER_MAGIC {
        Endian::Little
    } else if u32::from_be_bytes(bom) == BYTE_ORDER_MAGIC {
        Endian::Big
    } else {
        return Err(ReadError::malformed(
            offset,
            format!(
                "section header block has byte-order magic 0x{:08x}, expected 0x1a2b3c4d in \
                 either byte order",
                u32::from_be_bytes(bom)
            ),
        ));
    };
    let len = order.u32(len_raw);
    check_len(0x0A0D_0D0A, len, SHB_MIN_LEN, offset)?;
    check_max(0x0A0D_0D0A, len, offset)?;
    src.fill_vec(buf, (len - 12) as usize, offset, what, u64::from(len))?;
    let body_len = (len - 16) as usize;
    check_trailer(
        0x0A0D_0D0A,
        len,
        u32_at(buf, body_len, order).unwrap_or(0),
        offset,
    )?;
    let major = u16_at(buf, 0, order).unwrap_or(0);
    if major != 1 {
        return Err(ReadError::malformed(
            offset,
            format!("pcapng major version {major} is not supported (only 1 is)"),
        ));
    }
    Ok(order)
}

fn packet(kind: u32, body: &[u8], order: Endian, offset: u64) -> Result<PacketBlock, ReadError> {
    let name = block_name(kind);
    let short = |need: usize| {
        ReadError::malformed(
            offset,
            format!(
                "{name} body is {} bytes, less than the {need} it needs",
                body.len()
            ),
        )
    };
    let (iface, ticks, caplen, orig_len, data_start) = match kind {
        SPB_TYPE => {
            let orig_len = u32_at(body, 0, order).ok_or_else(|| short(4))?;
            let present = body.len() - 4;
            return Ok(PacketBlock {
                offset,
                iface: 0,
                ticks: None,
                orig_len,
                data_start: 4,
                data_len: present,
                simple: true,
                direction: Direction::Unknown,
            });
        }
        PB_TYPE => {
            let f = |o| u32_at(body, o, order).ok_or_else(|| short(20));
            let iface = u32::from(u16_at(body, 0, order).ok_or_else(|| short(20))?);
            (iface, options::ticks(body, 4, order), f(12)?, f(16)?, 20)
        }
        _ => {
            let f = |o| u32_at(body, o, order).ok_or_else(|| short(20));
            (f(0)?, options::ticks(body, 4, order), f(12)?, f(16)?, 20)
        }
    };
    let present = body.len().saturating_sub(data_start);
    if caplen as usize > present {
        return Err(ReadError::malformed(
            offset,
            format!("{name} claims {caplen} captured bytes but holds only {present}"),
        ));
    }
    let direction = if kind == EPB_TYPE {
        epb_direction(
            body,
            data_start + (caplen as usize).next_multiple_of(4),
            order,
        )
    } else {
        Direction::Unknown
    };
    Ok(PacketBlock {
        offset,
        iface,
        ticks: Some(ticks.ok_or_else(|| short(20))?),
        orig_len,
        data_start,
        data_len: caplen as usize,
        simple: false,
        direction,
    })
}

/// The direction bits of an EPB's `epb_flags` (option 2) in the options from `start`. A
/// malformed option list is not worth failing the packet for: it just says nothing.
fn epb_direction(body: &[u8], start: usize, order: Endian) -> Direction {
    const EPB_FLAGS: u16 = 2;
    let mut flags = None;
    let _ = options::for_each_option(body, start, order, 0, "enhanced packet", |code, value| {
        if code == EPB_FLAGS {
            flags = u32_at(value, 0, order);
        }
    });
    match flags.map(|f| f & 0b11) {
        Some(1) => Direction::Inbound,
        Some(2) => Direction::Outbound,
        _ => Direction::Unknown,
    }
}

fn block_name(kind: u32) -> &'static str {
    match kind {
        IDB_TYPE => "an interface description block",
        PB_TYPE => "a packet block",
        SPB_TYPE => "a simple packet block",
        EPB_TYPE => "an enhanced packet block",
        _ => "a block",
    }
}

fn check_len(kind: u32, len: u32, min: u32, offset: u64) -> Result<(), ReadError> {
    if len < min || !len.is_multiple_of(4) {
        return Err(ReadError::malformed(
            offset,
            format!(
                "block of type 0x{kind:08x} has total length {len}; it must be a multiple of 4 \
                 and at least {min}"
            ),
        ));
    }
    Ok(())
}

fn check_max(kind: u32, len: u32, offset: u64) -> Result<(), ReadError> {
    if len > MAX_BLOCK_LEN {
        return Err(ReadError::malformed(
            offset,
            format!(
                "block of type 0x{kind:08x} claims {len} bytes, more than the {MAX_BLOCK_LEN} \
                 this reader accepts (corrupt length?)"
            ),
        ));
    }
    Ok(())
}

fn check_trailer(kind: u32, len: u32, trailer: u32, offset: u64) -> Result<(), ReadError> {
    if trailer != len {
        return Err(ReadError::malformed(
            offset,
            format!(
                "block of type 0x{kind:08x} starts with total length {len} but ends with \
                 {trailer}"
            ),
        ));
    }
    Ok(())
}

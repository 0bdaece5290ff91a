//! Classic pcap: the 24-byte file header and 16-byte record headers, in either byte order,
//! with microsecond (`0xA1B2C3D4`) or nanosecond (`0xA1B23C4D`) timestamps.

use std::io::Read;

use super::ReadError;
use super::bytes::{Endian, u16_at, u32_at};
use super::options::{TSRESOL_NS, TSRESOL_US};
use super::source::{Fill, MAX_BLOCK_LEN, Source};

pub(crate) const MAGIC_US: u32 = 0xA1B2_C3D4;
pub(crate) const MAGIC_NS: u32 = 0xA1B2_3C4D;
const HEADER_LEN: usize = 24;
const RECORD_LEN: usize = 16;

/// What the file header says.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Header {
    pub(crate) order: Endian,
    /// `if_tsresol` equivalent: 6 (µs) or 9 (ns).
    pub(crate) tsresol: u8,
    pub(crate) linktype: u16,
    pub(crate) snaplen: u32,
}

/// The byte order and resolution a classic pcap magic announces, if it is one.
pub(crate) fn magic(start: [u8; 4]) -> Option<(Endian, u8)> {
    for order in [Endian::Little, Endian::Big] {
        match order.u32(start) {
            MAGIC_US => return Some((order, TSRESOL_US)),
            MAGIC_NS => return Some((order, TSRESOL_NS)),
            _ => {}
        }
    }
    None
}

/// Reads the rest of the file header, the magic (`start`) having been read already.
pub(crate) fn header<R: Read>(
    src: &mut Source<R>,
    start: [u8; 4],
    order: Endian,
    tsresol: u8,
) -> Result<Header, ReadError> {
    let mut h = [0u8; HEADER_LEN];
    h[..4].copy_from_slice(&start);
    let what = "the pcap file header";
    src.fill(&mut h[4..], 0, what, HEADER_LEN as u64)?;
    let major = u16_at(&h, 4, order).unwrap_or(0);
    if major != 2 {
        return Err(ReadError::malformed(
            4,
            format!("pcap version {major} is not supported (only version 2 exists)"),
        ));
    }
    let snaplen = u32_at(&h, 16, order).unwrap_or(0);
    // The upper bits of the linktype field carry FCS information; the type is the low 16.
    let linktype = (u32_at(&h, 20, order).unwrap_or(0) & 0xFFFF) as u16;
    Ok(Header {
        order,
        tsresol,
        linktype,
        snaplen,
    })
}

/// One record's header fields.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Record {
    pub(crate) offset: u64,
    pub(crate) secs: u32,
    pub(crate) frac: u32,
    pub(crate) caplen: u32,
    pub(crate) orig_len: u32,
}

/// Reads the next record into `buf` (its data only); `None` at a clean end of file.
pub(crate) fn record<R: Read>(
    src: &mut Source<R>,
    h: &Header,
    buf: &mut Vec<u8>,
) -> Result<Option<Record>, ReadError> {
    let offset = src.offset();
    let mut rh = [0u8; RECORD_LEN];
    let what = "a packet record header";
    if let Fill::End = src.fill_or_end(&mut rh, offset, what, RECORD_LEN as u64)? {
        return Ok(None);
    }
    let field = |i: usize| u32_at(&rh, i * 4, h.order).unwrap_or(0);
    let (secs, frac, caplen, orig_len) = (field(0), field(1), field(2), field(3));
    if caplen > MAX_BLOCK_LEN {
        return Err(ReadError::malformed(
            offset,
            format!(
                "packet record claims {caplen} captured bytes, more than the {MAX_BLOCK_LEN} this \
                 reader accepts (corrupt record header?)"
            ),
        ));
    }
    let expected = RECORD_LEN as u64 + u64::from(caplen);
    src.fill_vec(buf, caplen as usize, offset, "a packet record", expected)?;
    Ok(Some(Record {
        offset,
        secs,
        frac,
        caplen,
        orig_len,
    }))
}

/// Nanoseconds since the epoch of a record.
pub(crate) fn ts_ns(r: &Record, tsresol: u8) -> i64 {
    let frac_ns = if tsresol == TSRESOL_NS {
        i64::from(r.frac)
    } else {
        i64::from(r.frac) * 1_000
    };
    i64::from(r.secs) * 1_000_000_000 + frac_ns
}

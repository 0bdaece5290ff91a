//! pcapng options and timestamps: the Interface Description Block's `if_name`,
//! `if_description`, `if_tsresol` and `if_tsoffset`, and the conversion of a block's timestamp
//! ticks to nanoseconds since the Unix epoch.

use super::ReadError;
use super::bytes::{Endian, array, pad4, u16_at, u32_at, u64_at};

const OPT_ENDOFOPT: u16 = 0;
const IF_NAME: u16 = 2;
const IF_DESCRIPTION: u16 = 3;
const IF_TSRESOL: u16 = 9;
const IF_TSOFFSET: u16 = 14;

/// The pcapng default resolution: microseconds (`if_tsresol` 6).
pub(crate) const TSRESOL_US: u8 = 6;
/// Classic pcap's nanosecond variant, as an `if_tsresol` value.
pub(crate) const TSRESOL_NS: u8 = 9;

/// An Interface Description Block, decoded.
#[derive(Debug)]
pub(crate) struct Idb {
    pub(crate) linktype: u16,
    pub(crate) snaplen: u32,
    pub(crate) name: Option<String>,
    pub(crate) description: Option<String>,
    pub(crate) tsresol: u8,
    pub(crate) tsoffset_s: i64,
}

/// Decodes an IDB body (after type and length, without the trailing length). `offset` is the
/// block's file offset, for errors.
pub(crate) fn idb(body: &[u8], order: Endian, offset: u64) -> Result<Idb, ReadError> {
    let (Some(linktype), Some(snaplen)) = (u16_at(body, 0, order), u32_at(body, 4, order)) else {
        return Err(ReadError::malformed(
            offset,
            format!(
                "interface description block body is {} bytes, less than the 8 it needs",
                body.len()
            ),
        ));
    };
    let mut out = Idb {
        linktype,
        snaplen,
        name: None,
        description: None,
        tsresol: TSRESOL_US,
        tsoffset_s: 0,
    };
    for_each_option(
        body,
        8,
        order,
        offset,
        "interface description",
        |code, value| match code {
            IF_NAME => out.name = Some(text(value)),
            IF_DESCRIPTION => out.description = Some(text(value)),
            IF_TSRESOL => {
                if let Some(&r) = value.first() {
                    out.tsresol = r;
                }
            }
            IF_TSOFFSET => {
                if let Some(v) = u64_at(value, 0, order) {
                    out.tsoffset_s = v as i64;
                }
            }
            _ => {}
        },
    )?;
    Ok(out)
}

/// Walks the options starting at `start` in `body`, calling `f(code, value)` for each until
/// `opt_endofopt` or the end of the body. An option running past the body is malformed.
pub(crate) fn for_each_option(
    body: &[u8],
    start: usize,
    order: Endian,
    offset: u64,
    block: &str,
    mut f: impl FnMut(u16, &[u8]),
) -> Result<(), ReadError> {
    let mut off = start;
    while let (Some(code), Some(len)) = (u16_at(body, off, order), u16_at(body, off + 2, order)) {
        if code == OPT_ENDOFOPT {
            break;
        }
        let len = usize::from(len);
        let value_start = off + 4;
        let Some(value) = body.get(value_start..value_start + len) else {
            return Err(ReadError::malformed(
                offset,
                format!(
                    "{block} block option {code} claims {len} bytes but only {} remain in the \
                     block",
                    body.len().saturating_sub(value_start)
                ),
            ));
        };
        f(code, value);
        off = value_start + pad4(len).unwrap_or(len);
    }
    Ok(())
}

/// An option's string value: UTF-8 (lossy), without the NUL padding some writers include.
fn text(value: &[u8]) -> String {
    let end = value.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    String::from_utf8_lossy(value.get(..end).unwrap_or_default()).into_owned()
}

/// Nanoseconds since the epoch for `ticks` in units of `if_tsresol` (bit 7 clear: 10^-n s;
/// set: 2^-n s) plus `if_tsoffset` seconds. Saturates at the ends of `i64` (years 1677 and
/// 2262) rather than wrapping.
pub(crate) fn ticks_to_ns(ticks: u64, tsresol: u8, tsoffset_s: i64) -> i64 {
    let exp = u32::from(tsresol & 0x7F);
    let ticks = u128::from(ticks);
    let ns: u128 = if tsresol & 0x80 == 0 {
        if exp <= 9 {
            // exp <= 9: at most 2^64 * 10^9, far inside u128.
            ticks * 10u128.pow(9 - exp)
        } else {
            match 10u128.checked_pow(exp - 9) {
                Some(div) => ticks / div,
                None => 0,
            }
        }
    } else {
        // 2^-exp seconds per tick; exp <= 127, and ticks * 10^9 < 2^94.
        (ticks * 1_000_000_000) >> exp
    };
    let total = i128::try_from(ns)
        .unwrap_or(i128::MAX)
        .saturating_add(i128::from(tsoffset_s).saturating_mul(1_000_000_000));
    i64::try_from(total).unwrap_or(if total < 0 { i64::MIN } else { i64::MAX })
}

/// A 64-bit timestamp split in two 32-bit words, high first (EPB, PB).
pub(crate) fn ticks(body: &[u8], off: usize, order: Endian) -> Option<u64> {
    let hi = u64::from(u32_at(body, off, order)?);
    let lo = u64::from(order.u32(array(body, off + 4)?));
    Some(hi << 32 | lo)
}

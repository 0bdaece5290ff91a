//! Bounds-checked integer access in a file's byte order. Every accessor returns `None` past the
//! end of the slice instead of panicking, which is what keeps the reader total on garbage.

/// The byte order of a pcap file or of one pcapng section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endian {
    /// Least significant byte first (x86, ARM as usually run).
    Little,
    /// Most significant byte first.
    Big,
}

impl Endian {
    pub(crate) fn u16(self, b: [u8; 2]) -> u16 {
        match self {
            Endian::Little => u16::from_le_bytes(b),
            Endian::Big => u16::from_be_bytes(b),
        }
    }

    pub(crate) fn u32(self, b: [u8; 4]) -> u32 {
        match self {
            Endian::Little => u32::from_le_bytes(b),
            Endian::Big => u32::from_be_bytes(b),
        }
    }

    pub(crate) fn u64(self, b: [u8; 8]) -> u64 {
        match self {
            Endian::Little => u64::from_le_bytes(b),
            Endian::Big => u64::from_be_bytes(b),
        }
    }
}

/// `N` bytes at `off`, or `None` past the end.
pub(crate) fn array<const N: usize>(b: &[u8], off: usize) -> Option<[u8; N]> {
    b.get(off..off.checked_add(N)?)?.try_into().ok()
}

pub(crate) fn u16_at(b: &[u8], off: usize, e: Endian) -> Option<u16> {
    array(b, off).map(|a| e.u16(a))
}

pub(crate) fn u32_at(b: &[u8], off: usize, e: Endian) -> Option<u32> {
    array(b, off).map(|a| e.u32(a))
}

pub(crate) fn u64_at(b: &[u8], off: usize, e: Endian) -> Option<u64> {
    array(b, off).map(|a| e.u64(a))
}

/// Big-endian (network order) `u16` at `off`.
pub(crate) fn be16(b: &[u8], off: usize) -> Option<u16> {
    u16_at(b, off, Endian::Big)
}

/// `len` rounded up to a multiple of 4 (pcapng pads data and options to 32 bits).
pub(crate) fn pad4(len: usize) -> Option<usize> {
    len.checked_add(3).map(|n| n & !3)
}

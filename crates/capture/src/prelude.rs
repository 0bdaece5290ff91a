//! What a capture started by a trigger (issue 14) adds around the live packets:
//!
//! - a [`Prelude`]: sampled packets from before the capture started (the observer's ring),
//!   written first, each on an interface of its own named `<node>/<point>/sampled` whose
//!   description says it is sampled and at what rate. pcapng only: classic pcap has one
//!   interface and no way to mark them, so there they are left out
//!   ([`Prelude::applies_to`]).
//! - a [`Tap`]: the first packets written, cut short, kept in memory for the caller (the
//!   agent computes the attack's signature from them when the capture ends). Bounded: at
//!   most `max` packets of at most `snap` bytes.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use edgecap_pcap::Format;

/// One interface of sampled packets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampledInterface {
    /// The point's name; the interface is `<node>/<point>/sampled`.
    pub point: String,
    /// The most packets one sample stood for (1 in N), said in the interface's description.
    pub one_in: u64,
    /// What else the description says (where the samples come from, what they were matched
    /// against).
    pub note: String,
}

/// One sampled packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampledPacket {
    /// Index into [`Prelude::interfaces`].
    pub interface: usize,
    pub ts_ns: u64,
    pub orig_len: u32,
    pub ifindex: u32,
    /// The packet's first bytes (raw IP).
    pub data: Vec<u8>,
}

/// Sampled packets written before the live ones, in time order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Prelude {
    pub interfaces: Vec<SampledInterface>,
    pub packets: Vec<SampledPacket>,
}

impl Prelude {
    /// Whether a file of `format` holds the prelude (pcapng with at least one packet).
    pub fn applies_to(&self, format: Format) -> bool {
        format == Format::Pcapng && !self.packets.is_empty()
    }

    /// Bytes of packet data it writes (the samples as kept, without framing).
    pub fn data_bytes(&self) -> u64 {
        self.packets.iter().map(|p| p.data.len() as u64).sum()
    }

    /// The description of interface `i`.
    pub fn describe(&self, i: usize) -> String {
        let s = &self.interfaces[i];
        format!("sampled 1 in {}: {}", s.one_in.max(1), s.note)
    }
}

/// Keeps the first `max` written packets, each cut to `snap` bytes.
#[derive(Debug)]
pub struct Tap {
    max: usize,
    snap: usize,
    seen: AtomicUsize,
    kept: Mutex<Vec<Vec<u8>>>,
}

impl Tap {
    pub fn new(max: usize, snap: usize) -> Tap {
        Tap {
            max,
            snap,
            seen: AtomicUsize::new(0),
            kept: Mutex::new(Vec::new()),
        }
    }

    /// Offers one written packet (raw IP); taken while fewer than `max` were.
    pub fn offer(&self, ip: &[u8]) {
        // Past the bound no lock is taken: the hot path pays one atomic add.
        if self.seen.fetch_add(1, Ordering::Relaxed) >= self.max {
            return;
        }
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        if kept.len() < self.max {
            kept.push(ip[..ip.len().min(self.snap)].to_vec());
        }
    }

    /// The packets kept so far (taken out).
    pub fn take(&self) -> Vec<Vec<u8>> {
        std::mem::take(&mut *self.kept.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tap_keeps_the_first_packets_cut_short() {
        let t = Tap::new(2, 3);
        t.offer(&[1, 2, 3, 4]);
        t.offer(&[5]);
        t.offer(&[6, 7, 8]);
        assert_eq!(t.take(), vec![vec![1, 2, 3], vec![5]]);
        assert!(t.take().is_empty());
    }

    #[test]
    fn a_prelude_is_written_only_to_pcapng_and_when_it_holds_packets() {
        let mut p = Prelude {
            interfaces: vec![SampledInterface {
                point: "pre-firewall".into(),
                one_in: 64,
                note: "x".into(),
            }],
            packets: vec![],
        };
        assert!(!p.applies_to(Format::Pcapng));
        p.packets.push(SampledPacket {
            interface: 0,
            ts_ns: 1,
            orig_len: 100,
            ifindex: 2,
            data: vec![0x45; 40],
        });
        assert!(p.applies_to(Format::Pcapng));
        assert!(!p.applies_to(Format::Pcap));
        assert_eq!(p.data_bytes(), 40);
        assert_eq!(p.describe(0), "sampled 1 in 64: x");
    }
}

//! Per-batch accounting: sequence gaps, exact limits, demultiplexing packets to the interface
//! of their capture point (by NFLOG prefix), writing records.

use std::io::Write;
use std::time::Instant;

use edgecap_netfilter::NflogReader;
use edgecap_pcap::{Direction, Writer, sll2_header};

use crate::error::CaptureError;
use crate::run::{Progress, is_broken_pipe, now_ns};
use crate::spec::CaptureSpec;
use crate::stamp::Stamper;
use crate::summary::StopReason;

/// Counting state of the capture loop.
#[derive(Debug)]
pub(crate) struct State {
    pub packets: u64,
    pub bytes: u64,
    /// Packets lost between kernel and us, from sequence gaps (and, at the end, the tail).
    pub lost: u64,
    /// Lost packets not yet reported in a packet record's drop count.
    pending_drops: u64,
    /// Next NFLOG sequence number we expect (the kernel starts a new instance at 0).
    next_seq: u32,
    /// Per point: packets received from the kernel, written or not.
    pub received: Vec<u64>,
    /// Per point: packets written.
    pub written: Vec<u64>,
    /// Packets whose prefix names no point of ours (another rule logging to our group).
    pub foreign: u64,
    pub limit_hit: bool,
    /// Times for packets the kernel gave none.
    stamper: Stamper,
    /// Whether a point of this capture logs at a hook without kernel times, so batches need
    /// a look at how many of their first packets have none.
    estimates: bool,
    /// Whether packets are framed with an SLL2 header (files with several interfaces, see
    /// `edgecap_pcap::sll2_header`) rather than stored as raw IP.
    framed: bool,
}

impl State {
    pub fn new(points: usize, estimates: bool, framed: bool) -> Self {
        Self {
            stamper: Stamper::default(),
            estimates,
            framed,
            packets: 0,
            bytes: 0,
            lost: 0,
            pending_drops: 0,
            next_seq: 0,
            received: vec![0; points],
            written: vec![0; points],
            foreign: 0,
            limit_hit: false,
        }
    }

    pub fn progress(&self, started: Instant) -> Progress {
        Progress {
            packets: self.packets,
            bytes: self.bytes,
            lost: self.lost,
            overruns: 0,
            elapsed: started.elapsed(),
        }
    }

    /// Writes the packets of the reader's current batch. Returns the limit that stopped it.
    pub fn take_batch<W: Write>(
        &mut self,
        reader: &NflogReader,
        writer: &mut Writer<W>,
        spec: &CaptureSpec,
        deadline_ns: Option<u64>,
    ) -> Result<Option<StopReason>, CaptureError> {
        if self.estimates {
            self.stamper
                .begin(now_ns(), reader.packets().map(|p| p.timestamp_ns));
        } else {
            self.stamper.begin(now_ns(), std::iter::empty());
        }
        for p in reader.packets() {
            if let Some(seq) = p.seq {
                let gap = seq.wrapping_sub(self.next_seq);
                // A "gap" of more than 2^31 is a reordering we cannot explain; never count it.
                if gap < 1 << 31 {
                    self.lost += u64::from(gap);
                    self.pending_drops += u64::from(gap);
                }
                self.next_seq = seq.wrapping_add(1);
            }
            let Some(iface) = p
                .prefix
                .and_then(point_index)
                .filter(|&i| i < self.received.len())
            else {
                self.foreign += 1;
                continue;
            };
            self.received[iface] += 1;
            // Ingress is NFLOG hook 5 (NF_INET_INGRESS), logged before prerouting.
            let ts = self.stamper.stamp(p.timestamp_ns, p.hook == 5);
            // Only a kernel time tells a packet logged after the time limit (and before the
            // rules were detached) from one read late: an estimate is at most the read time.
            if p.timestamp_ns.zip(deadline_ns).is_some_and(|(k, d)| k > d) {
                continue;
            }
            if spec.limits.packets.is_some_and(|n| self.packets >= n) {
                self.limit_hit = true;
                return Ok(Some(StopReason::PacketLimit));
            }
            let len = p.payload.len() as u64;
            if spec.limits.bytes.is_some_and(|n| self.bytes + len > n) {
                self.limit_hit = true;
                return Ok(Some(StopReason::ByteLimit));
            }
            // prerouting, input, forward and ingress see packets arriving; output and
            // postrouting see them leaving.
            let dir = if matches!(p.hook, 3 | 4) {
                Direction::Outbound
            } else {
                Direction::Inbound
            };
            let orig = edgecap_pcap::orig_len_from_ip(p.payload, p.payload.len());
            let written = if self.framed {
                let ifindex = match dir {
                    Direction::Outbound => p.outdev,
                    _ => p.indev,
                };
                let head = sll2_header(p.payload, ifindex.unwrap_or(0), dir);
                writer.write_framed_packet(
                    iface as u32,
                    ts,
                    &head,
                    p.payload,
                    orig + head.len() as u32,
                    dir,
                    self.pending_drops,
                )
            } else {
                writer.write_packet(iface as u32, ts, p.payload, orig, dir, self.pending_drops)
            };
            match written {
                Ok(_) => {}
                Err(e) if is_broken_pipe(&e) => return Ok(Some(StopReason::OutputClosed)),
                Err(e) => return Err(e.into()),
            }
            if let Some(tap) = &spec.tap {
                tap.offer(p.payload);
            }
            self.pending_drops = 0;
            self.packets += 1;
            self.written[iface] += 1;
            self.bytes += len;
            if spec.limits.packets.is_some_and(|n| self.packets >= n) {
                self.limit_hit = true;
                return Ok(Some(StopReason::PacketLimit));
            }
        }
        Ok(None)
    }
}

/// The NFLOG prefix of point `i`.
pub(crate) fn point_label(i: usize) -> String {
    format!("p{i}")
}

/// The inverse of [`point_label`], on the packet path: digits only, no allocation, no UTF-8.
pub(crate) fn point_index(prefix: &[u8]) -> Option<usize> {
    let digits = prefix.strip_prefix(b"p")?;
    if digits.is_empty() || digits.len() > 4 {
        return None;
    }
    digits.iter().try_fold(0usize, |n, &d| {
        d.is_ascii_digit().then(|| n * 10 + usize::from(d - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_round_trip() {
        for i in [0, 1, 7, 12] {
            assert_eq!(point_index(point_label(i).as_bytes()), Some(i));
        }
        assert_eq!(point_index(b"x1"), None);
        assert_eq!(point_index(b"p"), None);
        assert_eq!(point_index(b"p-1"), None);
        assert_eq!(point_index(b"p1x"), None);
        assert_eq!(point_index(b"p99999"), None);
    }
}

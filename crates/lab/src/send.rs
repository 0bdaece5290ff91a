//! Sending crafted packets into the lab from the source (or the origin), and the high-rate
//! generator used by benchmarks.
//!
//! Each call runs on a fresh thread that `setns`es into the sending namespace (which affects
//! only that thread, see [`crate::netns`]), opens an AF_PACKET socket on the interface toward the chosen edge and
//! sends Ethernet frames addressed to the edge's MAC. The thread is joined before returning.
//! Every loop is bounded: `send` by the number of packets given, [`SEND_RETRY_LIMIT`] per
//! packet and [`SEND_TIME_LIMIT`] per call; `blast` by `count` and `max_duration`.

use std::io;
use std::thread;
use std::time::{Duration, Instant};

use crate::packet::{PortPatch, ethernet};
use crate::sys::PacketSocket;
use crate::{Lab, LabError, netns, plan::Mac};

/// How long `send` keeps retrying a packet refused with ENOBUFS/EAGAIN before giving up.
pub const SEND_RETRY_LIMIT: Duration = Duration::from_secs(5);
/// The longest one `send` call may take, whatever the number of packets.
pub const SEND_TIME_LIMIT: Duration = Duration::from_secs(60);
/// The longest `max_duration` a blast may ask for.
pub const MAX_BLAST_DURATION: Duration = Duration::from_secs(3600);
/// Frames per `sendmmsg` call.
pub const BLAST_BATCH: usize = 64;

/// Which way packets travel through the chosen edge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// From the source namespace (`to-edge<i>`) to edge `i`'s `from-src`, toward the origin.
    Forward,
    /// From the origin namespace (`from-edge<i>`) to edge `i`'s `to-origin`, toward the source.
    Reverse,
}

/// What a `send` did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SendReport {
    /// Packets sent.
    pub sent: usize,
    /// Ethernet bytes sent.
    pub bytes: u64,
    /// Times a packet was refused with ENOBUFS/EAGAIN and retried after a short pause.
    pub retries: u64,
}

/// Parameters of [`Lab::blast`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Blast {
    /// Stop after this many packets...
    pub count: u64,
    /// ...at this rate (packets per second), or as fast as possible when `None`...
    pub pps: Option<u64>,
    /// ...or after this long, whichever comes first (at most [`MAX_BLAST_DURATION`]).
    pub max_duration: Duration,
    /// Give consecutive packets different TCP/UDP source ports (cycling 1024..=65535), so they
    /// form different flows; checksums are updated.
    pub vary_source_port: bool,
}

/// What a blast did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlastReport {
    /// Packets sent.
    pub sent: u64,
    /// Time from the first send to the last.
    pub elapsed: Duration,
    /// Pauses taken because the kernel refused a batch with ENOBUFS/EAGAIN.
    pub backoffs: u64,
}

impl BlastReport {
    /// Achieved packets per second.
    pub fn pps(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.sent as f64 / secs
        } else {
            0.0
        }
    }
}

/// Namespace, interface and MACs of one sending end.
struct Endpoint {
    netns: String,
    ifname: String,
    src_mac: Mac,
    dst_mac: Mac,
}

fn retryable(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOBUFS) | Some(libc::EAGAIN) | Some(libc::ENOMEM)
    )
}

fn open(ep: &Endpoint) -> Result<PacketSocket, LabError> {
    PacketSocket::open(&ep.ifname)
        .map_err(|e| LabError::io(format!("opening AF_PACKET socket on {}", ep.ifname), e))
}

fn check_ip(packet: &[u8]) -> Result<(), LabError> {
    match packet.first().map(|b| b >> 4) {
        Some(4) | Some(6) => Ok(()),
        _ => Err(LabError::Packet(
            "not an IPv4 or IPv6 packet (send takes raw IP packets)".into(),
        )),
    }
}

impl Lab {
    fn endpoint(&self, dir: Direction, edge: usize) -> Result<Endpoint, LabError> {
        if edge >= self.edges() {
            return Err(LabError::invalid(
                "edge",
                format!("{edge} (the lab has {} edges)", self.edges()),
            ));
        }
        Ok(match dir {
            Direction::Forward => Endpoint {
                netns: self.src_ns().to_string(),
                ifname: self.src_if(edge),
                src_mac: self.src_mac(edge),
                dst_mac: self.edge_mac_src_side(edge),
            },
            Direction::Reverse => Endpoint {
                netns: self.origin_ns().to_string(),
                ifname: self.origin_if(edge),
                src_mac: self.origin_mac(edge),
                dst_mac: self.edge_mac_origin_side(edge),
            },
        })
    }

    /// Sends raw IP packets from the source toward edge `edge` (which forwards them to the
    /// origin), in order, one `send` per packet.
    pub fn send(&self, edge: usize, packets: &[Vec<u8>]) -> Result<SendReport, LabError> {
        self.send_from(Direction::Forward, edge, packets)
    }

    /// Sends raw IP packets through edge `edge` in the given direction.
    pub fn send_from(
        &self,
        dir: Direction,
        edge: usize,
        packets: &[Vec<u8>],
    ) -> Result<SendReport, LabError> {
        let ep = self.endpoint(dir, edge)?;
        packets.iter().try_for_each(|p| check_ip(p))?;
        let frames: Vec<Vec<u8>> = packets
            .iter()
            .map(|p| ethernet(ep.dst_mac, ep.src_mac, p))
            .collect();
        netns::run(&ep.netns, || {
            let sock = open(&ep)?;
            let mut report = SendReport::default();
            let call_started = Instant::now();
            for frame in &frames {
                if call_started.elapsed() > SEND_TIME_LIMIT {
                    return Err(LabError::io(
                        format!("sending on {} after {} packets", ep.ifname, report.sent),
                        io::Error::new(io::ErrorKind::TimedOut, "send time limit reached"),
                    ));
                }
                let started = Instant::now();
                let mut pause = Duration::from_micros(20);
                loop {
                    match sock.send(frame) {
                        Ok(_) => break,
                        Err(e) if retryable(&e) && started.elapsed() < SEND_RETRY_LIMIT => {
                            report.retries += 1;
                            thread::sleep(pause);
                            pause = (pause * 2).min(Duration::from_millis(5));
                        }
                        Err(e) => {
                            return Err(LabError::io(
                                format!("sending packet {} on {}", report.sent, ep.ifname),
                                e,
                            ));
                        }
                    }
                }
                report.sent += 1;
                report.bytes += frame.len() as u64;
            }
            Ok(report)
        })?
    }

    /// Sends copies of `template` (a raw IP packet) from the source toward edge `edge` as fast
    /// as possible or at `pps`, until `count` packets or `max_duration`, whichever first.
    pub fn blast(
        &self,
        edge: usize,
        template: &[u8],
        blast: Blast,
    ) -> Result<BlastReport, LabError> {
        self.blast_from(Direction::Forward, edge, template, blast)
    }

    /// [`Lab::blast`] in the given direction.
    pub fn blast_from(
        &self,
        dir: Direction,
        edge: usize,
        template: &[u8],
        blast: Blast,
    ) -> Result<BlastReport, LabError> {
        let ep = self.endpoint(dir, edge)?;
        check_ip(template)?;
        if blast.max_duration > MAX_BLAST_DURATION {
            return Err(LabError::invalid(
                "max_duration",
                format!("{:?} (at most {MAX_BLAST_DURATION:?})", blast.max_duration),
            ));
        }
        if blast.pps == Some(0) {
            return Err(LabError::invalid("pps", "0 (use None for no limit)"));
        }
        let patch = if blast.vary_source_port {
            Some(PortPatch::locate(template)?)
        } else {
            None
        };
        let frame = ethernet(ep.dst_mac, ep.src_mac, template);
        netns::run(&ep.netns, || {
            let sock = open(&ep)?;
            let _ = sock.set_send_buffer(4 << 20);
            run_blast(&sock, frame, patch, blast)
        })?
    }
}

/// The generator loop: batches of up to [`BLAST_BATCH`] frames per `sendmmsg`, paced against
/// an absolute schedule when `pps` is set.
fn run_blast(
    sock: &PacketSocket,
    frame: Vec<u8>,
    patch: Option<PortPatch>,
    blast: Blast,
) -> Result<BlastReport, LabError> {
    // Small batches at low rates keep the pacing smooth (one batch per millisecond or less).
    let batch = match blast.pps {
        Some(pps) => usize::try_from(pps / 1000)
            .unwrap_or(BLAST_BATCH)
            .clamp(1, BLAST_BATCH),
        None => BLAST_BATCH,
    };
    let mut frames = vec![frame; batch];
    let mut report = BlastReport::default();
    let mut next_port: u32 = 0;
    let mut pause = Duration::from_micros(20);
    let start = Instant::now();
    let deadline = start + blast.max_duration;
    while report.sent < blast.count {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        if let Some(pps) = blast.pps {
            let due = start + Duration::from_secs_f64(report.sent as f64 / pps as f64);
            if due > now {
                thread::sleep((due - now).min(deadline - now));
                continue;
            }
        }
        let n = usize::try_from(blast.count - report.sent).map_or(batch, |left| left.min(batch));
        if let Some(p) = patch {
            for f in &mut frames[..n] {
                // Ports 1024..=65535 (64512 values).
                let port = 1024 + (next_port % 64512) as u16;
                next_port = next_port.wrapping_add(1);
                p.apply(&mut f[14..], port);
            }
        }
        match sock.send_batch(&frames[..n]) {
            Ok(k) => {
                report.sent += k as u64;
                pause = Duration::from_micros(20);
            }
            Err(e) if retryable(&e) => {
                report.backoffs += 1;
                thread::sleep(pause.min(deadline.saturating_duration_since(Instant::now())));
                pause = (pause * 2).min(Duration::from_millis(2));
            }
            Err(e) => {
                return Err(LabError::io(
                    format!("sendmmsg after {} packets", report.sent),
                    e,
                ));
            }
        }
    }
    report.elapsed = start.elapsed();
    Ok(report)
}

//! The capture loop: bind the group, install the rule, read batches, write the file, stop on the
//! first limit, and tear everything down in an order that loses nothing and counts what was lost.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use edgecap_netfilter::{CaptureTable, NflogConfig, NflogReader, RuleSpec};
use edgecap_pcap::{Direction, Interface, InterfaceStats, LINKTYPE_RAW, Section, Writer};

use crate::error::CaptureError;
use crate::spec::{AUTO_GROUPS, CaptureSpec, GroupChoice};
use crate::summary::{StopReason, Summary};

/// How long a partial kernel batch can wait before the kernel flushes it (timeout 1 = 10 ms),
/// with margin: after detaching the rules we read until the socket stays quiet this long.
const DRAIN_QUIET: Duration = Duration::from_millis(60);
/// Upper bound on draining, so a flood through another table logging to our group cannot hold
/// the capture open.
const DRAIN_MAX: Duration = Duration::from_secs(2);
/// How often the loop wakes to check the stop flag and deadline when no packet arrives.
const TICK: Duration = Duration::from_millis(50);
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// A snapshot for progress display.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub packets: u64,
    pub bytes: u64,
    pub lost: u64,
    pub elapsed: Duration,
}

/// Runs one capture to completion, writing the file into `sink`.
///
/// Nothing is installed in the kernel until the group is bound and the file header is written,
/// so a busy group or an unwritable sink leaves the ruleset untouched. The table is owned by a
/// netlink socket of this process: if the process dies, the kernel removes it.
pub fn run<W: Write>(
    spec: &CaptureSpec,
    sink: W,
    stop: &AtomicBool,
    mut on_progress: impl FnMut(&Progress),
) -> Result<(Summary, W), CaptureError> {
    let mut reader = bind_group(spec)?;
    let group = reader.group();
    let snaplen = spec.snaplen.min(edgecap_netfilter::nflog::MAX_SNAPLEN);

    let iface = Interface {
        name: format!("{}/{}", spec.node, spec.point),
        description: Some(format!(
            "edgecap capture {} at {} on {} (NFLOG group {group})",
            spec.id, spec.point, spec.node
        )),
        filter: Some(spec.filter_text.clone()),
        linktype: LINKTYPE_RAW,
        snaplen,
    };
    let section = Section {
        user_appl: format!("edgecap {}", env!("CARGO_PKG_VERSION")),
        os: os_name(),
        hardware: None,
        comment: Some(format!("capture {} filter: {}", spec.id, spec.filter_text)),
    };
    let mut writer = Writer::new(sink, spec.format, &section, &[iface])?;

    let table_name = format!("edgecap_{}", spec.id);
    let rules = RuleSpec {
        filter: &spec.filter,
        group,
        snaplen,
        sample_one_in: spec.sample_one_in,
        prefix: None,
    };
    let mut table = CaptureTable::install(&table_name, &spec.point.hooks(), &rules)?;
    tracing::info!(table = %table_name, group, point = %spec.point, filter = %spec.filter_text, "capture rule installed");

    let started = Instant::now();
    let start_ns = now_ns();
    let deadline = spec.limits.time.map(|t| started + t);
    let deadline_ns = spec.limits.time.map(|t| start_ns + t.as_nanos() as u64);
    let mut st = State::default();
    let mut last_progress = started;

    let reason = loop {
        if stop.load(Ordering::Relaxed) {
            break StopReason::Stopped;
        }
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            break StopReason::TimeLimit;
        }
        let wait = deadline.map_or(TICK, |d| d.saturating_duration_since(now).min(TICK));
        if reader.recv(wait)? {
            if let Some(r) = st.take_batch(&reader, &mut writer, spec, deadline_ns)? {
                break r;
            }
            if spec.live_output {
                match writer.flush() {
                    Ok(()) => {}
                    Err(e) if is_broken_pipe(&e) => break StopReason::OutputClosed,
                    Err(e) => return Err(e.into()),
                }
            }
        }
        if last_progress.elapsed() >= PROGRESS_EVERY {
            last_progress = Instant::now();
            on_progress(&st.progress(started));
        }
    };

    // Stop logging first, then read what the kernel had already queued for us.
    table.detach()?;
    let drained_fully = !matches!(
        reason,
        StopReason::PacketLimit | StopReason::ByteLimit | StopReason::OutputClosed
    );
    if drained_fully {
        let drain_start = Instant::now();
        while drain_start.elapsed() < DRAIN_MAX && reader.recv(DRAIN_QUIET)? {
            if st
                .take_batch(&reader, &mut writer, spec, deadline_ns)?
                .is_some()
            {
                break;
            }
        }
    }
    let counters = table.counters()?;
    if drained_fully && !st.limit_hit {
        // Logged by the kernel but never received: lost after the last packet we saw.
        st.lost += counters.logged.saturating_sub(st.kernel_sent());
    }
    let end_ns = now_ns();
    let duration = started.elapsed();
    table.remove()?;
    let overruns = reader.stats().enobufs;
    drop(reader);

    let stats = InterfaceStats {
        start_ns,
        end_ns,
        if_recv: Some(counters.matched),
        if_drop: None,
        filter_accept: Some(counters.logged),
        os_drop: Some(st.lost),
        usr_deliv: Some(st.packets),
        comment: Some(format!("stopped: {}", reason.describe())),
    };
    let sink = if reason == StopReason::OutputClosed {
        // The reader is gone; a trailer nobody reads is not worth an error.
        None
    } else {
        writer.write_stats(0, &stats)?;
        Some(writer)
    };
    let file_bytes = sink.as_ref().map_or(0, |w| w.bytes_written());
    let summary = Summary {
        id: spec.id.clone(),
        point: spec.point.to_string(),
        group,
        filter: spec.filter_text.clone(),
        packets: st.packets,
        bytes: st.bytes,
        file_bytes,
        lost: st.lost,
        matched: counters.matched,
        logged: counters.logged,
        overruns,
        duration,
        stop_reason: reason,
    };
    match sink {
        Some(w) => Ok((summary, w.finish()?)),
        None => Err(CaptureError::OutputClosed(Box::new(summary))),
    }
}

/// Counting state of the loop.
#[derive(Debug, Default)]
struct State {
    packets: u64,
    bytes: u64,
    lost: u64,
    /// Lost packets not yet reported in a packet record's drop count.
    pending_drops: u64,
    /// Next NFLOG sequence number we expect (the kernel starts a new instance at 0).
    next_seq: u32,
    /// Packets received from the kernel, written or not.
    received: u64,
    limit_hit: bool,
}

impl State {
    /// Packets the kernel has sent us up to the last one received.
    fn kernel_sent(&self) -> u64 {
        self.received + self.lost
    }

    fn progress(&self, started: Instant) -> Progress {
        Progress {
            packets: self.packets,
            bytes: self.bytes,
            lost: self.lost,
            elapsed: started.elapsed(),
        }
    }

    /// Writes the packets of the reader's current batch. Returns the limit that stopped it.
    fn take_batch<W: Write>(
        &mut self,
        reader: &NflogReader,
        writer: &mut Writer<W>,
        spec: &CaptureSpec,
        deadline_ns: Option<u64>,
    ) -> Result<Option<StopReason>, CaptureError> {
        let batch_ns = now_ns();
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
            self.received += 1;
            let ts = p.timestamp_ns.unwrap_or(batch_ns);
            if deadline_ns.is_some_and(|d| ts > d) {
                // Queued before we detached but after the time limit: not part of the capture.
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
            let dir = if p.hook <= 2 {
                Direction::Inbound
            } else {
                Direction::Outbound
            };
            let orig = edgecap_pcap::orig_len_from_ip(p.payload, p.payload.len());
            match writer.write_packet(0, ts, p.payload, orig, dir, self.pending_drops) {
                Ok(_) => {}
                Err(e) if is_broken_pipe(&e) => return Ok(Some(StopReason::OutputClosed)),
                Err(e) => return Err(e.into()),
            }
            self.pending_drops = 0;
            self.packets += 1;
            self.bytes += len;
            if spec.limits.packets.is_some_and(|n| self.packets >= n) {
                self.limit_hit = true;
                return Ok(Some(StopReason::PacketLimit));
            }
        }
        Ok(None)
    }
}

fn is_broken_pipe(e: &edgecap_pcap::Error) -> bool {
    std::error::Error::source(e)
        .and_then(|s| s.downcast_ref::<std::io::Error>())
        .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
}

fn bind_group(spec: &CaptureSpec) -> Result<NflogReader, CaptureError> {
    let cfg = |g| {
        let mut c = NflogConfig::tuned(g, spec.snaplen.min(edgecap_netfilter::nflog::MAX_SNAPLEN));
        if let Some(b) = spec.socket_buffer {
            c.rcvbuf = b;
        }
        c
    };
    match spec.group {
        GroupChoice::Fixed(g) => Ok(NflogReader::bind(&cfg(g))?),
        GroupChoice::Auto => {
            let span = u32::from(AUTO_GROUPS.end() - AUTO_GROUPS.start()) + 1;
            let offset = std::process::id() % span;
            for i in 0..span {
                let g = AUTO_GROUPS.start() + ((offset + i) % span) as u16;
                match NflogReader::bind(&cfg(g)) {
                    Ok(r) => return Ok(r),
                    Err(edgecap_netfilter::Error::GroupBusy { .. }) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            Err(CaptureError::NoFreeGroup)
        }
    }
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn os_name() -> Option<String> {
    let rel = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
    Some(format!("Linux {}", rel.trim()))
}

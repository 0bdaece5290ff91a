//! The capture loop: bind the group, install the rule, read batches, write the file, stop on the
//! first limit, and tear everything down in an order that loses nothing and counts what was lost.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use edgecap_netfilter::{CaptureTable, NflogConfig, NflogReader, PointRules, RuleSpec};
use edgecap_pcap::{
    Direction, Format, Interface, InterfaceStats, LINKTYPE_LINUX_SLL2, LINKTYPE_RAW,
    SLL2_HEADER_LEN, Section, Writer, sll2_header,
};

use crate::batch::{State, point_label};

use crate::error::CaptureError;
use crate::spec::{AUTO_GROUPS, CaptureSpec, GroupChoice};
use crate::summary::{PointSummary, StopReason, Summary};

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
    /// Receive-buffer overrun reports so far (ENOBUFS; never a packet count).
    pub overruns: u64,
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
    on_progress: impl FnMut(&Progress),
) -> Result<(Summary, W), CaptureError> {
    // The request builder refuses more than NFLOG copies; a spec made by hand is held to it
    // here, the one place the engine reads it.
    let snaplen = spec.snaplen.min(edgecap_netfilter::nflog::MAX_SNAPLEN);
    let mut reader = bind_group(spec.group, snaplen, spec.socket_buffer)?;
    let group = reader.group();
    let mut writer = open_writer(spec, sink, group, snaplen)?;
    let mut table = install(spec, group, snaplen)?;

    let clock = Clock::start(spec);
    let estimates = spec
        .points
        .iter()
        .flat_map(|p| &p.hooks)
        .any(|h| !crate::stamp::has_kernel_time(h.hook));
    let mut st = State::new(spec.points.len(), estimates, framed(spec));
    let reason = read(
        spec,
        &mut reader,
        &mut writer,
        &mut st,
        &clock,
        stop,
        on_progress,
    )?;

    // Stop logging first, then read what the kernel had already queued for us.
    table.detach()?;
    let drained = !matches!(
        reason,
        StopReason::PacketLimit | StopReason::ByteLimit | StopReason::OutputClosed
    );
    if drained {
        drain(spec, &mut reader, &mut writer, &mut st, &clock)?;
    }
    let per_point = account(spec, &mut table, &mut st, drained)?;
    let end_ns = now_ns();
    let duration = clock.started.elapsed();
    table.remove()?;
    let overruns = reader.stats().enobufs;
    drop(reader);

    let closed = reason == StopReason::OutputClosed;
    if !closed {
        write_stats(spec, &mut writer, &per_point, &st, &clock, end_ns, reason)?;
    }
    let summary = Summary {
        id: spec.id.clone(),
        point: point_names(spec),
        group,
        filter: spec.filter_text.clone(),
        packets: st.packets,
        bytes: st.bytes,
        file_bytes: writer.bytes_written(),
        lost: st.lost,
        matched: per_point.iter().map(|p| p.matched).sum(),
        logged: per_point.iter().map(|p| p.logged).sum(),
        overruns,
        duration,
        stop_reason: reason,
        points: per_point,
    };
    if closed {
        // The reader is gone; a trailer nobody reads is not worth an error.
        return Err(CaptureError::OutputClosed(Box::new(summary)));
    }
    Ok((summary, writer.finish()?))
}

/// When the capture started and when its time limit ends it, on both clocks.
struct Clock {
    started: Instant,
    start_ns: u64,
    deadline: Option<Instant>,
    /// The time limit on the kernel's clock, for packets logged after it.
    deadline_ns: Option<u64>,
}

impl Clock {
    fn start(spec: &CaptureSpec) -> Clock {
        let started = Instant::now();
        let start_ns = now_ns();
        Clock {
            started,
            start_ns,
            deadline: spec.limits.time.and_then(|t| started.checked_add(t)),
            deadline_ns: spec
                .limits
                .time
                .map(|t| start_ns.saturating_add(u64::try_from(t.as_nanos()).unwrap_or(u64::MAX))),
        }
    }
}

/// Installs the owned table with one chain per point hook, logging to `group`.
fn install(spec: &CaptureSpec, group: u16, snaplen: u32) -> Result<CaptureTable, CaptureError> {
    let table_name = format!("edgecap_{}", spec.id);
    let rules = RuleSpec {
        filter: &spec.filter,
        group,
        snaplen,
        sample_one_in: spec.sample_one_in,
        counting: edgecap_netfilter::Counting::Objects,
    };
    let table = CaptureTable::install(&table_name, &point_rules(&spec.points), &rules)?;
    tracing::info!(table = %table_name, group, points = %point_names(spec), filter = %spec.filter_text, "capture rules installed");
    Ok(table)
}

/// Each point's hooks under its label (`p<i>`): the chains and counters of a table.
pub(crate) fn point_rules(points: &[crate::points::PointDef]) -> Vec<PointRules> {
    points
        .iter()
        .enumerate()
        .map(|(i, p)| PointRules {
            label: point_label(i),
            hooks: p.hooks.clone(),
        })
        .collect()
}

/// Reads and writes batches until a limit, the stop flag or a closed output ends the capture.
fn read<W: Write>(
    spec: &CaptureSpec,
    reader: &mut NflogReader,
    writer: &mut Writer<W>,
    st: &mut State,
    clock: &Clock,
    stop: &AtomicBool,
    mut on_progress: impl FnMut(&Progress),
) -> Result<StopReason, CaptureError> {
    let mut last_progress = clock.started;
    loop {
        if stop.load(Ordering::Relaxed) {
            return Ok(StopReason::Stopped);
        }
        let now = Instant::now();
        if clock.deadline.is_some_and(|d| now >= d) {
            return Ok(StopReason::TimeLimit);
        }
        let wait = clock
            .deadline
            .map_or(TICK, |d| d.saturating_duration_since(now).min(TICK));
        if reader.recv(wait)? {
            if let Some(r) = st.take_batch(reader, writer, spec, clock.deadline_ns)? {
                return Ok(r);
            }
            if spec.live_output {
                match writer.flush() {
                    Ok(()) => {}
                    Err(e) if is_broken_pipe(&e) => return Ok(StopReason::OutputClosed),
                    Err(e) => return Err(e.into()),
                }
            }
        }
        if last_progress.elapsed() >= PROGRESS_EVERY {
            last_progress = Instant::now();
            let mut p = st.progress(clock.started);
            p.overruns = reader.stats().enobufs;
            on_progress(&p);
        }
    }
}

/// After the rules are detached: reads what the kernel had queued until the socket stays
/// quiet (or [`DRAIN_MAX`]), so every packet logged before the stop is written or counted.
fn drain<W: Write>(
    spec: &CaptureSpec,
    reader: &mut NflogReader,
    writer: &mut Writer<W>,
    st: &mut State,
    clock: &Clock,
) -> Result<(), CaptureError> {
    let drain_start = Instant::now();
    while drain_start.elapsed() < DRAIN_MAX && reader.recv(DRAIN_QUIET)? {
        if st
            .take_batch(reader, writer, spec, clock.deadline_ns)?
            .is_some()
        {
            break;
        }
    }
    Ok(())
}

/// Each point's counts from its rule counters; after a full drain, the exact loss per point.
fn account(
    spec: &CaptureSpec,
    table: &mut CaptureTable,
    st: &mut State,
    drained: bool,
) -> Result<Vec<PointSummary>, CaptureError> {
    let mut per_point = Vec::with_capacity(spec.points.len());
    for (i, p) in spec.points.iter().enumerate() {
        let c = table.counters(&point_label(i))?;
        // After a full drain every logged packet was either received or lost, so the counter
        // attributes loss to points exactly; after a limit we stopped reading early and only
        // the sequence gaps (not attributable to a point) are known.
        let lost = (drained && !st.limit_hit).then(|| c.logged.saturating_sub(st.received[i]));
        per_point.push(PointSummary {
            point: p.name.clone(),
            packets: st.written[i],
            matched: c.matched,
            logged: c.logged,
            lost,
        });
    }
    if drained && !st.limit_hit {
        st.lost = per_point.iter().filter_map(|p| p.lost).sum();
    }
    Ok(per_point)
}

/// One interface statistics block per point: the kernel's counts and why the capture ended.
fn write_stats<W: Write>(
    spec: &CaptureSpec,
    writer: &mut Writer<W>,
    per_point: &[PointSummary],
    st: &State,
    clock: &Clock,
    end_ns: u64,
    reason: StopReason,
) -> Result<(), CaptureError> {
    for (i, p) in per_point.iter().enumerate() {
        let stats = InterfaceStats {
            start_ns: clock.start_ns,
            end_ns,
            if_recv: Some(p.matched),
            if_drop: None,
            filter_accept: Some(p.logged),
            os_drop: p.lost.or((spec.points.len() == 1).then_some(st.lost)),
            usr_deliv: Some(p.packets),
            comment: Some(format!("stopped: {}", reason.describe())),
        };
        writer.write_stats(i as u32, &stats)?;
    }
    Ok(())
}

fn open_writer<W: Write>(
    spec: &CaptureSpec,
    sink: W,
    group: u16,
    snaplen: u32,
) -> Result<Writer<W>, CaptureError> {
    let (linktype, snaplen) = if framed(spec) {
        (LINKTYPE_LINUX_SLL2, snaplen + SLL2_HEADER_LEN as u32)
    } else {
        (LINKTYPE_RAW, snaplen)
    };
    let mut interfaces: Vec<Interface> = spec
        .points
        .iter()
        .map(|p| Interface {
            name: format!("{}/{}", spec.node, p.name),
            description: Some(format!(
                "edgecap capture {} at {} on {} (NFLOG group {group}; {}); {}",
                spec.id,
                p.name,
                spec.node,
                describe_hooks(&p.hooks),
                crate::stamp::describe(&p.hooks)
            )),
            filter: Some(spec.filter_text.clone()),
            linktype,
            snaplen,
        })
        .collect();
    let prelude = spec
        .prelude
        .as_deref()
        .filter(|p| p.applies_to(spec.format));
    if let Some(p) = prelude {
        // libpcap reads a file only when every interface has the same snaplen: the
        // points'; the samples are shorter.
        for (i, s) in p.interfaces.iter().enumerate() {
            interfaces.push(Interface {
                name: format!("{}/{}/sampled", spec.node, s.point),
                description: Some(p.describe(i)),
                filter: Some(spec.filter_text.clone()),
                linktype,
                snaplen,
            });
        }
    }
    let section = Section {
        user_appl: format!("edgecap {}", env!("CARGO_PKG_VERSION")),
        os: os_name(),
        hardware: None,
        comment: Some(format!("capture {} filter: {}", spec.id, spec.filter_text)),
    };
    // A spool takes whole blocks: the writer only gathers records into a small buffer that
    // stays in cache (64 KiB measured better than handing the spool each record).
    let buffer = if spec.sink_buffers {
        64 << 10
    } else {
        edgecap_pcap::DEFAULT_BUFFER_CAPACITY
    };
    let mut writer =
        Writer::with_buffer_capacity(sink, spec.format, &section, &interfaces, buffer)?;
    if let Some(p) = prelude {
        write_prelude(spec, p, &mut writer)?;
    }
    Ok(writer)
}

/// The sampled packets from before the capture, on the interfaces after the points'.
fn write_prelude<W: Write>(
    spec: &CaptureSpec,
    p: &crate::prelude::Prelude,
    writer: &mut Writer<W>,
) -> Result<(), CaptureError> {
    let first = spec.points.len();
    let keep = usize::try_from(spec.snaplen).unwrap_or(usize::MAX);
    for k in &p.packets {
        let Ok(iface) = u32::try_from(first + k.interface) else {
            continue;
        };
        // Never more of a packet than the capture keeps of its live ones.
        let data = &k.data[..k.data.len().min(keep)];
        if framed(spec) {
            let head = sll2_header(data, k.ifindex, Direction::Unknown);
            writer.write_framed_packet(
                iface,
                k.ts_ns,
                &head,
                data,
                k.orig_len + head.len() as u32,
                Direction::Unknown,
                0,
            )?;
        } else {
            writer.write_packet(iface, k.ts_ns, data, k.orig_len, Direction::Unknown, 0)?;
        }
    }
    Ok(())
}

/// Whether packets are stored with an SLL2 header: a pcapng file with several interfaces
/// (points). One RAW interface stays RAW, the leanest; several RAW interfaces would be
/// unreadable for tcpdump (`edgecap_pcap::libpcap_incompatibility`). Classic pcap holds one
/// interface whatever the points.
fn framed(spec: &CaptureSpec) -> bool {
    let sampled = spec
        .prelude
        .as_deref()
        .filter(|p| p.applies_to(spec.format))
        .map_or(0, |p| p.interfaces.len());
    spec.format == Format::Pcapng && spec.points.len() + sampled > 1
}

fn describe_hooks(hooks: &[edgecap_netfilter::Hook]) -> String {
    hooks
        .iter()
        .map(|h| match &h.device {
            Some(d) => format!("{} {d} priority {}", h.hook.name(), h.priority),
            None => format!("{} priority {}", h.hook.name(), h.priority),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn point_names(spec: &CaptureSpec) -> String {
    spec.points
        .iter()
        .map(|p| p.name.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

pub(crate) fn is_broken_pipe(e: &edgecap_pcap::Error) -> bool {
    std::error::Error::source(e)
        .and_then(|s| s.downcast_ref::<std::io::Error>())
        .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
}

/// Binds `group`, or the first free one of [`AUTO_GROUPS`] from a place that depends on the
/// process (so concurrent captures rarely collide).
pub(crate) fn bind_group(
    group: GroupChoice,
    snaplen: u32,
    socket_buffer: Option<usize>,
) -> Result<NflogReader, CaptureError> {
    let cfg = |g| {
        let mut c = NflogConfig::tuned(g, snaplen);
        if let Some(b) = socket_buffer {
            c.rcvbuf = b;
        }
        c
    };
    match group {
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

pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn os_name() -> Option<String> {
    let rel = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
    Some(format!("Linux {}", rel.trim()))
}

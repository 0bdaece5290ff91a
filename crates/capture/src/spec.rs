//! What to capture: the validated request the engine runs.

use std::time::Duration;

use edgecap_filter::ir::Conjunction;
use edgecap_pcap::Format;

/// Stop conditions; the first one reached ends the capture. `None` means unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    pub time: Option<Duration>,
    pub packets: Option<u64>,
    /// Packet bytes as captured (after snaplen), not counting file headers.
    pub bytes: Option<u64>,
}

/// Which NFLOG group to log to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupChoice {
    /// Exactly this group; fails if another process holds it.
    Fixed(u16),
    /// The first free group of [`AUTO_GROUPS`], starting at a per-process offset.
    Auto,
}

/// Groups edgecap picks from when none is given (chosen away from the low numbers that hand-made
/// rules and ulogd configurations tend to use).
pub const AUTO_GROUPS: std::ops::RangeInclusive<u16> = 0xEC00..=0xEFFF;

/// The snaplen bound and default are the request rules' (`edgecap_filter::request`).
pub use edgecap_filter::request::{DEFAULT_SNAPLEN, MAX_SNAPLEN};

/// A complete, validated capture request for this node.
#[derive(Debug, Clone)]
pub struct CaptureSpec {
    /// Short id; names the nftables table (`edgecap_<id>`) and appears in the file.
    pub id: String,
    /// This node's name, used in interface names (`<node>/<point>`).
    pub node: String,
    pub filter: Vec<Conjunction>,
    /// Human-readable filter, recorded in the file (`if_filter`) and summaries.
    pub filter_text: String,
    /// Where to capture; each point becomes one pcapng interface named `<node>/<point>`.
    pub points: Vec<crate::points::PointDef>,
    pub limits: Limits,
    /// Bytes kept of each packet, at most [`MAX_SNAPLEN`] ([`crate::request`] checks it).
    pub snaplen: u32,
    /// Capture one matching packet in N, chosen at random by the kernel.
    pub sample_one_in: Option<u32>,
    pub group: GroupChoice,
    pub format: Format,
    /// NFLOG socket receive buffer in bytes (default 32 MiB; the kernel doubles it).
    pub socket_buffer: Option<usize>,
    /// Flush the output after every kernel batch, so a live reader of a pipe sees packets
    /// within ~10 ms instead of once per 1 MiB of output.
    pub live_output: bool,
    /// The sink buffers writes itself (a [`crate::FileSpool`]), so the pcap writer keeps only a
    /// small, cache-resident buffer instead of its usual 1 MiB.
    pub sink_buffers: bool,
    /// Sampled packets from before the capture, written first on `<node>/<point>/sampled`
    /// interfaces (pcapng only; a trigger's capture, issue 14).
    pub prelude: Option<std::sync::Arc<crate::prelude::Prelude>>,
    /// Keeps the first written packets in memory for the caller (a trigger's signature).
    pub tap: Option<std::sync::Arc<crate::prelude::Tap>>,
}

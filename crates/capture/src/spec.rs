//! What to capture: the validated request the engine runs.

use std::time::Duration;

use edgecap_filter::ir::Conjunction;
use edgecap_netfilter::{Hook, HookNum};
use edgecap_pcap::Format;

/// A named place in the node's packet pipeline (DESIGN.md §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Point {
    /// Prerouting at `raw - 10`: everything routed or delivered, before any firewall.
    PreFirewall,
    /// Input and forward at `filter + 10`: what the firewall accepted.
    PostFirewall,
}

impl Point {
    pub const ALL: [Point; 2] = [Point::PreFirewall, Point::PostFirewall];

    pub fn name(self) -> &'static str {
        match self {
            Point::PreFirewall => "pre-firewall",
            Point::PostFirewall => "post-firewall",
        }
    }

    /// The base chains that implement the point. Locally generated traffic does not pass
    /// prerouting, input or forward; it belongs to the `egress` point.
    pub fn hooks(self) -> Vec<Hook> {
        match self {
            Point::PreFirewall => vec![Hook {
                hook: HookNum::Prerouting,
                priority: -310,
            }],
            Point::PostFirewall => vec![
                Hook {
                    hook: HookNum::Input,
                    priority: 10,
                },
                Hook {
                    hook: HookNum::Forward,
                    priority: 10,
                },
            ],
        }
    }
}

impl std::str::FromStr for Point {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Point::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Point::ALL.iter().map(|p| p.name()).collect();
                format!("unknown capture point {s:?} (known: {})", names.join(", "))
            })
    }
}

impl std::fmt::Display for Point {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

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

pub const DEFAULT_SNAPLEN: u32 = 262_144;

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
    pub point: Point,
    pub limits: Limits,
    /// Bytes kept of each packet (capped by the kernel at 65 531).
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
}

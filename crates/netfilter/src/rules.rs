//! What a capture installs, as data: the points with their hooks, what the rules do with a
//! matching packet, and the names of the chains made from them.

use edgecap_filter::ir::Conjunction;

/// A netfilter hook of the `inet` family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HookNum {
    Prerouting = 0,
    Input = 1,
    Forward = 2,
    Output = 3,
    Postrouting = 4,
    /// `inet` ingress (Linux 5.10+): per device, before prerouting; needs [`Hook::device`].
    Ingress = 5,
}

impl HookNum {
    pub fn name(self) -> &'static str {
        match self {
            Self::Prerouting => "prerouting",
            Self::Input => "input",
            Self::Forward => "forward",
            Self::Output => "output",
            Self::Postrouting => "postrouting",
            Self::Ingress => "ingress",
        }
    }

    /// Parses the nft name of a hook.
    pub fn from_name(name: &str) -> Option<Self> {
        [
            Self::Prerouting,
            Self::Input,
            Self::Forward,
            Self::Output,
            Self::Postrouting,
            Self::Ingress,
        ]
        .into_iter()
        .find(|h| h.name() == name)
    }
}

/// Where one base chain of the capture attaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    pub hook: HookNum,
    pub priority: i32,
    /// The device of an `ingress` hook (ignored by the other hooks).
    pub device: Option<String>,
}

/// One capture point: its hooks, and the label that names its chains and counters and is
/// carried as the NFLOG prefix of its packets, so one group can serve several points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PointRules {
    /// Short label (`p0`, `p1`, ...): at most 15 bytes, letters, digits and `_`.
    pub label: String,
    pub hooks: Vec<Hook>,
}

/// What the capture rules do with a matching packet.
#[derive(Debug, Clone)]
pub struct RuleSpec<'a> {
    /// The compiled filter: one rule per conjunction.
    pub filter: &'a [Conjunction],
    /// NFLOG group the packets are logged to.
    pub group: u16,
    /// Bytes of each packet copied to the group.
    pub snaplen: u32,
    /// Log one matching packet in N (random), or every packet when `None`.
    pub sample_one_in: Option<u32>,
    /// Where the packets are counted.
    pub counting: Counting,
}

/// Where a table's rules count packets: named counter objects, or counters in the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Counting {
    /// Named counter objects of the table (`counter name "p0_seen"`): each packet goes
    /// through an `objref` and then the object's own evaluation (two calls), and the objects
    /// outlive the chains, so a capture reads its final counts after detaching them.
    #[default]
    Objects,
    /// Anonymous counters in the rules themselves (`counter`): one call per packet fewer,
    /// for a table that never detaches (the observer); they go with their chains, so they
    /// are read while the chains exist.
    InRule,
}

/// `p0_prerouting_m310`, `p1_ingress_eth0_0`: unique per point and hook.
pub(crate) fn chain_name(label: &str, h: &Hook) -> String {
    match (&h.device, h.hook) {
        (Some(dev), HookNum::Ingress) => {
            format!("{label}_ingress_{dev}_{}", priority_label(h.priority))
        }
        _ => format!("{label}_{}_{}", h.hook.name(), priority_label(h.priority)),
    }
}

/// `-310` -> `m310`, `10` -> `10`: chain names may not carry a minus sign nicely in nft output.
fn priority_label(p: i32) -> String {
    if p < 0 {
        format!("m{}", p.unsigned_abs())
    } else {
        p.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_names_are_unique_per_point_hook_and_device() {
        let h = |hook, priority, device: Option<&str>| Hook {
            hook,
            priority,
            device: device.map(String::from),
        };
        assert_eq!(
            chain_name("p0", &h(HookNum::Prerouting, -310, None)),
            "p0_prerouting_m310"
        );
        assert_eq!(
            chain_name("p1", &h(HookNum::Ingress, 0, Some("eth0"))),
            "p1_ingress_eth0_0"
        );
        // A device on another hook is ignored, as the hook ignores it.
        assert_eq!(
            chain_name("p2", &h(HookNum::Output, 10, Some("eth0"))),
            "p2_output_10"
        );
        assert_eq!(
            HookNum::from_name("postrouting"),
            Some(HookNum::Postrouting)
        );
        assert_eq!(HookNum::from_name("egress"), None);
    }
}

//! Capture points: named places in a node's packet pipeline (DESIGN.md §4) and the nftables
//! hooks that implement them.
//!
//! | point | hooks | priority |
//! | --- | --- | --- |
//! | `ingress` | inet ingress of each chosen device (default: every device but `lo`) | -500 |
//! | `pre-firewall` | prerouting | raw - 10 (-310) |
//! | `post-firewall` | input and forward | filter + 10 (10) |
//! | `post-mitigation` | configured per node: there is no safe guess | configured |
//! | `egress` | postrouting | srcnat + 10 (110) |
//!
//! Operators add points of their own (hook + priority, devices for ingress) in the agent
//! configuration file, see [`crate::config`].

use edgecap_filter::request::INGRESS_POINT;
use edgecap_netfilter::{Hook, HookNum};

use crate::config::{Config, PointConfig};

/// The built-in names, in pipeline order.
pub const BUILTIN: [&str; 5] = [
    INGRESS_POINT,
    "pre-firewall",
    "post-firewall",
    "post-mitigation",
    "egress",
];

/// A resolved capture point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PointDef {
    pub name: String,
    pub hooks: Vec<Hook>,
}

/// Why a point cannot be used on this node.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PointError {
    #[error("unknown capture point {name:?} (this node has: {known})")]
    Unknown { name: String, known: String },
    #[error(
        "capture point post-mitigation is not configured on this node: its place depends on where \
         mitigation runs, so set it in the agent configuration ([points.post-mitigation] with hook \
         and priority)"
    )]
    MitigationNotConfigured,
    #[error("capture point {name:?} is listed twice")]
    Duplicate { name: String },
    #[error("capture point ingress: device {device:?} does not exist on this node")]
    NoSuchDevice { device: String },
    #[error("capture point ingress: this node has no network device other than lo")]
    NoDevices,
    #[error("no capture point given")]
    Empty,
    #[error("at most {max} capture points per capture")]
    TooMany { max: usize },
}

/// Most points per capture: each costs a pcapng interface and a chain per hook.
pub const MAX_POINTS: usize = 8;

/// Resolves point names against the built-ins and the node's configuration. `devices` lists
/// the node's network devices (for `ingress`).
pub fn resolve(
    names: &[String],
    config: &Config,
    devices: &[String],
) -> Result<Vec<PointDef>, PointError> {
    if names.is_empty() {
        return Err(PointError::Empty);
    }
    if names.len() > MAX_POINTS {
        return Err(PointError::TooMany { max: MAX_POINTS });
    }
    let mut out: Vec<PointDef> = Vec::new();
    for name in names {
        if out.iter().any(|p| &p.name == name) {
            return Err(PointError::Duplicate { name: name.clone() });
        }
        let hooks = match config.points.get(name.as_str()) {
            Some(pc) => configured(pc, devices)?,
            None => builtin(name, devices).ok_or_else(|| match name.as_str() {
                "post-mitigation" => PointError::MitigationNotConfigured,
                _ => PointError::Unknown {
                    name: name.clone(),
                    known: known(config),
                },
            })??,
        };
        out.push(PointDef {
            name: name.clone(),
            hooks,
        });
    }
    Ok(out)
}

/// Every point name usable on this node, for messages and `--help`.
pub fn known(config: &Config) -> String {
    let mut names: Vec<&str> = BUILTIN
        .iter()
        .copied()
        .filter(|n| *n != "post-mitigation" || config.points.contains_key(*n))
        .collect();
    for k in config.points.keys() {
        if !names.contains(&k.as_str()) {
            names.push(k);
        }
    }
    names.join(", ")
}

fn builtin(name: &str, devices: &[String]) -> Option<Result<Vec<Hook>, PointError>> {
    let h = |hook, priority| Hook {
        hook,
        priority,
        device: None,
    };
    Some(Ok(match name {
        INGRESS_POINT => return Some(ingress(&[], devices, -500)),
        "pre-firewall" => vec![h(HookNum::Prerouting, -310)],
        "post-firewall" => vec![h(HookNum::Input, 10), h(HookNum::Forward, 10)],
        "egress" => vec![h(HookNum::Postrouting, 110)],
        _ => return None,
    }))
}

fn configured(pc: &PointConfig, devices: &[String]) -> Result<Vec<Hook>, PointError> {
    if pc.hook == HookNum::Ingress {
        return ingress(&pc.devices, devices, pc.priority);
    }
    Ok(vec![Hook {
        hook: pc.hook,
        priority: pc.priority,
        device: None,
    }])
}

fn ingress(wanted: &[String], devices: &[String], priority: i32) -> Result<Vec<Hook>, PointError> {
    let chosen: Vec<String> = if wanted.is_empty() {
        devices
            .iter()
            .filter(|d| d.as_str() != "lo")
            .cloned()
            .collect()
    } else {
        for w in wanted {
            if !devices.contains(w) {
                return Err(PointError::NoSuchDevice { device: w.clone() });
            }
        }
        wanted.to_vec()
    };
    if chosen.is_empty() {
        return Err(PointError::NoDevices);
    }
    Ok(chosen
        .into_iter()
        .map(|d| Hook {
            hook: HookNum::Ingress,
            priority,
            device: Some(d),
        })
        .collect())
}

/// The network devices of the calling thread's network namespace, sorted.
///
/// `/sys/class/net` would show the devices of the namespace sysfs was mounted in: right under
/// `ip netns exec` (which remounts /sys), wrong on a thread that entered a namespace with
/// `setns` (the agent's `--netns`). `/proc/thread-self/net/dev` follows the thread.
pub fn local_devices() -> Vec<String> {
    let mut v = std::fs::read_to_string("/proc/thread-self/net/dev")
        .map(|text| parse_net_dev(&text))
        .unwrap_or_default();
    v.sort();
    v
}

/// Device names from `/proc/net/dev`: two header lines, then `  name: counters...` (names
/// never contain ':').
fn parse_net_dev(text: &str) -> Vec<String> {
    text.lines()
        .skip(2)
        .filter_map(|l| l.split_once(':'))
        .map(|(name, _)| name.trim().to_owned())
        .filter(|n| !n.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn builtins_map_to_documented_hooks() {
        let cfg = Config::default();
        let devs = names(&["eth0", "eth1", "lo"]);
        let p = resolve(
            &names(&["pre-firewall", "post-firewall", "egress", "ingress"]),
            &cfg,
            &devs,
        )
        .unwrap();
        assert_eq!(
            p[0].hooks,
            vec![Hook {
                hook: HookNum::Prerouting,
                priority: -310,
                device: None
            }]
        );
        assert_eq!(p[1].hooks.len(), 2);
        assert_eq!(p[2].hooks[0].priority, 110);
        let devs_used: Vec<_> = p[3]
            .hooks
            .iter()
            .map(|h| h.device.clone().unwrap())
            .collect();
        assert_eq!(devs_used, ["eth0", "eth1"]);
    }

    #[test]
    fn net_dev_lists_devices() {
        let text = "Inter-|   Receive                            |  Transmit\n \
                    face |bytes    packets errs drop fifo frame compressed multicast|bytes\n    \
                    lo:  123 4 0 0 0 0 0 0 123 4 0 0 0 0 0 0\n\
                    from-src: 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n";
        assert_eq!(parse_net_dev(text), ["lo", "from-src"]);
        // This thread's namespace has at least the loopback device.
        assert!(local_devices().iter().any(|d| d == "lo"));
    }

    #[test]
    fn post_mitigation_is_configured_not_guessed() {
        let err = resolve(&names(&["post-mitigation"]), &Config::default(), &[]).unwrap_err();
        assert_eq!(err, PointError::MitigationNotConfigured);
        let cfg: Config =
            Config::parse("[points.post-mitigation]\nhook = \"prerouting\"\npriority = -149\n")
                .unwrap();
        let p = resolve(&names(&["post-mitigation"]), &cfg, &[]).unwrap();
        assert_eq!(
            p[0].hooks,
            vec![Hook {
                hook: HookNum::Prerouting,
                priority: -149,
                device: None
            }]
        );
    }

    #[test]
    fn unknown_duplicate_and_missing_devices_are_refused() {
        let cfg = Config::default();
        let e = resolve(&names(&["after-lunch"]), &cfg, &[]).unwrap_err();
        assert!(
            e.to_string().contains("after-lunch") && e.to_string().contains("pre-firewall"),
            "{e}"
        );
        assert!(
            !e.to_string().contains("post-mitigation"),
            "not offered when not configured: {e}"
        );
        let e = resolve(&names(&["egress", "egress"]), &cfg, &[]).unwrap_err();
        assert!(matches!(e, PointError::Duplicate { .. }));
        let cfg =
            Config::parse("[points.edge-in]\nhook = \"ingress\"\ndevices = [\"eth9\"]\n").unwrap();
        let e = resolve(&names(&["edge-in"]), &cfg, &names(&["eth0"])).unwrap_err();
        assert_eq!(
            e,
            PointError::NoSuchDevice {
                device: "eth9".into()
            }
        );
        assert_eq!(
            resolve(&names(&["ingress"]), &Config::default(), &names(&["lo"])).unwrap_err(),
            PointError::NoDevices
        );
    }
}

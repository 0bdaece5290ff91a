//! The agent configuration file (TOML): what this node is and which capture points it has.
//! Read in two stages: raw serde structs that reject unknown fields, then validated types.
//!
//! ```toml
//! node = "edge-fra-1"               # default: the host name
//!
//! [labels]                          # how the fleet selects this node (edgecap agent)
//! site = "fra1"                     # colo_name matches the node name or this
//! region = "eu"
//!
//! [points.post-mitigation]          # where traffic has passed this node's DDoS mitigation
//! hook = "prerouting"
//! priority = -149                   # just after a mitigation chain at mangle (-150)
//!
//! [points.ingress]                  # restrict the built-in ingress point to some devices
//! hook = "ingress"
//! devices = ["eth0"]
//!
//! [points.after-nat]                # an operator's own point
//! hook = "postrouting"
//! priority = 200
//!
//! [observer]                        # always-on observation (defaults shown)
//! enabled = true
//! points = ["pre-firewall"]
//! sample_one_in = 64                # packets sampled into the look-back ring
//! ring_cap = "128MiB"               # the ring's memory, bookkeeping included
//! ring_reach = "24h"                # how far back it always answers
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use edgecap_netfilter::HookNum;
use serde::Deserialize;

/// Where the agent looks when no `--config` is given.
pub const DEFAULT_PATH: &str = "/etc/edgecap/agent.toml";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    node: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    points: BTreeMap<String, RawPoint>,
    observer: Option<RawObserver>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawObserver {
    enabled: Option<bool>,
    points: Option<Vec<String>>,
    sample_one_in: Option<u32>,
    ring_cap: Option<String>,
    ring_reach: Option<String>,
}

/// The observer's settings ([`crate::observe`] and the agent's ring), validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObserverConfig {
    pub enabled: bool,
    /// Point names, resolved when the agent starts.
    pub points: Vec<String>,
    pub sample_one_in: u32,
    pub ring: edgecap_observe::RingConfig,
}

/// The most packets one sample may stand for at the observer (before the ring thins).
pub const MAX_SAMPLE_ONE_IN: u32 = 1 << 16;

impl Default for ObserverConfig {
    fn default() -> Self {
        ObserverConfig {
            enabled: true,
            points: vec!["pre-firewall".into()],
            sample_one_in: crate::observe::DEFAULT_ONE_IN,
            ring: edgecap_observe::RingConfig::default(),
        }
    }
}

impl ObserverConfig {
    fn from_raw(raw: RawObserver) -> Result<ObserverConfig, ConfigError> {
        let bad = |key: &str, reason: String| ConfigError {
            key: format!("observer.{key}"),
            reason,
        };
        let mut c = ObserverConfig::default();
        if let Some(e) = raw.enabled {
            c.enabled = e;
        }
        if let Some(points) = raw.points {
            if points.is_empty() || points.len() > 8 {
                return Err(bad("points", "name 1 to 8 capture points".into()));
            }
            c.points = points;
        }
        if let Some(n) = raw.sample_one_in {
            if !(1..=MAX_SAMPLE_ONE_IN).contains(&n) {
                return Err(bad(
                    "sample_one_in",
                    format!("{n} is outside 1..={MAX_SAMPLE_ONE_IN}"),
                ));
            }
            c.sample_one_in = n;
        }
        if let Some(cap) = raw.ring_cap {
            let bytes = edgecap_units::parse_size(&cap).map_err(|e| bad("ring_cap", e))?;
            c.ring.cap_bytes = usize::try_from(bytes).unwrap_or(usize::MAX);
        }
        if let Some(reach) = raw.ring_reach {
            let d = edgecap_units::parse_duration(&reach).map_err(|e| bad("ring_reach", e))?;
            if d.as_secs() < 60 || d.as_secs() > 7 * 24 * 3600 {
                return Err(bad("ring_reach", "must be 1m to 7d".into()));
            }
            c.ring.reach_secs = d.as_secs();
        }
        c.ring.check().map_err(|e| {
            let text = e.to_string();
            let (key, reason) = text.split_once(": ").unwrap_or(("ring_cap", &text));
            bad(key, reason.to_owned())
        })?;
        Ok(c)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPoint {
    /// prerouting, input, forward, output, postrouting or ingress.
    hook: String,
    /// Chain priority; lower runs earlier. Required except for ingress (default -500).
    priority: Option<i64>,
    /// Devices of an ingress point (default: every device but lo).
    #[serde(default)]
    devices: Vec<String>,
    /// Free text for people reading the configuration.
    #[allow(dead_code)]
    description: Option<String>,
}

/// A validated configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    pub node: Option<String>,
    /// `site`, `region` and free-form labels the agent reports; flags add to them.
    pub labels: BTreeMap<String, String>,
    pub points: BTreeMap<String, PointConfig>,
    pub observer: ObserverConfig,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PointConfig {
    pub hook: HookNum,
    pub priority: i32,
    pub devices: Vec<String>,
}

/// A configuration problem, naming the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct ConfigError {
    pub key: String,
    pub reason: String,
}

impl Config {
    /// Reads `path`; `Ok(None)` when it does not exist.
    pub fn load(path: &Path) -> Result<Option<Config>, ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Config::parse(&text).map(Some).map_err(|e| ConfigError {
                key: format!("{}: {}", path.display(), e.key),
                reason: e.reason,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ConfigError {
                key: path.display().to_string(),
                reason: e.to_string(),
            }),
        }
    }

    /// The file a user named (which must exist), else [`DEFAULT_PATH`] if it exists, else the
    /// empty configuration.
    pub fn load_or_default(named: Option<&Path>) -> Result<Config, ConfigError> {
        let path = named.unwrap_or(Path::new(DEFAULT_PATH));
        match Config::load(path)? {
            Some(c) => Ok(c),
            None if named.is_some() => Err(ConfigError {
                key: path.display().to_string(),
                reason: "does not exist".into(),
            }),
            None => Ok(Config::default()),
        }
    }

    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError {
            key: "config".into(),
            reason: e.to_string().trim().replace('\n', " "),
        })?;
        if raw.node.as_deref().is_some_and(|n| n.trim().is_empty()) {
            return Err(ConfigError {
                key: "node".into(),
                reason: "is empty".into(),
            });
        }
        for (k, v) in &raw.labels {
            if k.is_empty() || k.contains('=') || v.chars().any(char::is_control) {
                return Err(ConfigError {
                    key: format!("labels.{k}"),
                    reason: "a label is key = \"value\" with a key free of '=' and a printable \
                             value"
                        .into(),
                });
            }
        }
        let mut points = BTreeMap::new();
        for (name, p) in raw.points {
            let key = |field: &str| format!("points.{name}.{field}");
            if !valid_name(&name) {
                return Err(ConfigError {
                    key: format!("points.{name}"),
                    reason: "a point name is 1-32 characters of a-z, 0-9 and -".into(),
                });
            }
            if matches!(name.as_str(), "pre-firewall" | "post-firewall" | "egress") {
                return Err(ConfigError {
                    key: format!("points.{name}"),
                    reason: "is built in; give your point another name".into(),
                });
            }
            let hook = HookNum::from_name(&p.hook).ok_or_else(|| ConfigError {
                key: key("hook"),
                reason: format!(
                    "unknown hook {:?} (use prerouting, input, forward, output, postrouting or ingress)",
                    p.hook
                ),
            })?;
            if name == "ingress" && hook != HookNum::Ingress {
                return Err(ConfigError {
                    key: key("hook"),
                    reason: "the ingress point must use hook ingress".into(),
                });
            }
            if hook != HookNum::Ingress && !p.devices.is_empty() {
                return Err(ConfigError {
                    key: key("devices"),
                    reason: "only an ingress hook takes devices".into(),
                });
            }
            let priority = match (p.priority, hook) {
                (Some(v), _) => i32::try_from(v).map_err(|_| ConfigError {
                    key: key("priority"),
                    reason: format!("{v} is outside the 32-bit range nftables accepts"),
                })?,
                (None, HookNum::Ingress) => -500,
                (None, _) => {
                    return Err(ConfigError {
                        key: key("priority"),
                        reason: "is required: say where in the hook's chain order to capture"
                            .into(),
                    });
                }
            };
            points.insert(
                name,
                PointConfig {
                    hook,
                    priority,
                    devices: p.devices,
                },
            );
        }
        let observer = match raw.observer {
            Some(o) => ObserverConfig::from_raw(o)?,
            None => ObserverConfig::default(),
        };
        Ok(Config {
            node: raw.node,
            labels: raw.labels,
            points,
            observer,
        })
    }
}

fn valid_name(n: &str) -> bool {
    (1..=32).contains(&n.len())
        && n.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_example() {
        let c = Config::parse(
            "node = \"edge-fra-1\"\n[labels]\nsite = \"fra1\"\n[points.post-mitigation]\nhook = \"prerouting\"\npriority = -149\n\
             description = \"after ddos\"\n[points.after-nat]\nhook = \"postrouting\"\npriority = 200\n",
        )
        .unwrap();
        assert_eq!(c.node.as_deref(), Some("edge-fra-1"));
        assert_eq!(c.labels["site"], "fra1");
        assert_eq!(
            c.points["post-mitigation"],
            PointConfig {
                hook: HookNum::Prerouting,
                priority: -149,
                devices: vec![]
            }
        );
        assert_eq!(c.points["after-nat"].priority, 200);
    }

    #[test]
    fn the_observer_section_has_defaults_and_named_errors() {
        let c = Config::parse("").unwrap();
        assert_eq!(c.observer, ObserverConfig::default());
        assert!(c.observer.enabled);
        assert_eq!(c.observer.sample_one_in, 64);
        assert_eq!(c.observer.ring.cap_bytes, 128 << 20);
        assert_eq!(c.observer.ring.reach_secs, 86_400);
        let c = Config::parse(
            "[observer]\nenabled = false\npoints = [\"egress\"]\nsample_one_in = 8\n\
             ring_cap = \"256MiB\"\nring_reach = \"2h\"\n",
        )
        .unwrap();
        assert!(!c.observer.enabled);
        assert_eq!(c.observer.points, ["egress"]);
        assert_eq!(c.observer.sample_one_in, 8);
        assert_eq!(c.observer.ring.cap_bytes, 256 << 20);
        assert_eq!(c.observer.ring.reach_secs, 7200);
        let err = |text: &str| Config::parse(text).unwrap_err();
        let e = err("[observer]\nsample_one_in = 0\n");
        assert_eq!(
            (e.key.as_str(), e.reason.as_str()),
            ("observer.sample_one_in", "0 is outside 1..=65536")
        );
        let e = err("[observer]\nring_cap = \"1KiB\"\n");
        assert_eq!(e.key, "observer.ring_cap");
        assert!(e.reason.contains("cannot hold 1441 periods"), "{e}");
        assert_eq!(
            err("[observer]\nring_reach = \"10s\"\n").key,
            "observer.ring_reach"
        );
        assert_eq!(err("[observer]\npoints = []\n").key, "observer.points");
        assert!(err("[observer]\nrate = 3\n").reason.contains("rate"));
    }

    #[test]
    fn errors_name_the_key() {
        let e = Config::parse("[points.x]\nhook = \"prerouteing\"\npriority = 1\n").unwrap_err();
        assert_eq!(e.key, "points.x.hook");
        let e = Config::parse("[points.x]\nhook = \"input\"\n").unwrap_err();
        assert_eq!(e.key, "points.x.priority");
        let e = Config::parse("[points.x]\nhook = \"input\"\npriority = 1\ncolour = \"red\"\n")
            .unwrap_err();
        assert!(e.reason.contains("colour"), "{e}");
        let e = Config::parse("[points.egress]\nhook = \"input\"\npriority = 1\n").unwrap_err();
        assert!(e.reason.contains("built in"), "{e}");
        let e = Config::parse("[points.Bad_Name]\nhook = \"input\"\npriority = 1\n").unwrap_err();
        assert_eq!(e.key, "points.Bad_Name");
        let e =
            Config::parse("[points.x]\nhook = \"input\"\npriority = 99999999999\n").unwrap_err();
        assert_eq!(e.key, "points.x.priority");
        let e = Config::parse("[points.x]\nhook = \"input\"\npriority = 1\ndevices = [\"eth0\"]\n")
            .unwrap_err();
        assert_eq!(e.key, "points.x.devices");
    }
}

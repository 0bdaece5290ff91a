//! Lab names, the small state files under `/run/edgecap-lab/`, and removal of leftovers.
//!
//! Every lab writes `/run/edgecap-lab/<lab name>.state` *before* creating any namespace. It
//! records the creator's pid and the process start time (so a reused pid is not mistaken for
//! the creator), the number of edges, whether the origin is silent, and whether the lab was
//! kept on purpose ([`crate::Lab::keep`]). [`cleanup_stale`] removes generated labs whose
//! creator is gone.

use std::path::PathBuf;

use crate::LabError;
use crate::cmd::{ip_batch, list_netns};

/// Directory of the state files.
pub const STATE_DIR: &str = "/run/edgecap-lab";

/// What a state file holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LabState {
    pub pid: u32,
    pub start_time: u64,
    pub edges: usize,
    pub silent_origin: bool,
    pub persistent: bool,
}

impl LabState {
    /// A state for a lab created now by this process.
    pub fn mine(edges: usize, silent_origin: bool) -> Self {
        let pid = std::process::id();
        LabState {
            pid,
            start_time: process_start_time(pid).unwrap_or(0),
            edges,
            silent_origin,
            persistent: false,
        }
    }

    fn render(&self) -> String {
        format!(
            "pid={}\nstart_time={}\nedges={}\nsilent_origin={}\npersistent={}\n",
            self.pid, self.start_time, self.edges, self.silent_origin, self.persistent
        )
    }

    fn parse(text: &str) -> Option<Self> {
        let get = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
                .map(str::trim)
        };
        Some(LabState {
            pid: get("pid")?.parse().ok()?,
            start_time: get("start_time")?.parse().ok()?,
            edges: get("edges")?.parse().ok()?,
            silent_origin: get("silent_origin")?.parse().ok()?,
            persistent: get("persistent")?.parse().ok()?,
        })
    }

    /// True while the creating process still runs.
    pub fn creator_alive(&self) -> bool {
        process_start_time(self.pid).is_some_and(|t| self.start_time == 0 || t == self.start_time)
    }
}

/// Path of the state file of lab `name`.
pub fn state_file(name: &str) -> PathBuf {
    PathBuf::from(STATE_DIR).join(format!("{name}.state"))
}

pub(crate) fn write_state(name: &str, state: &LabState) -> Result<(), LabError> {
    std::fs::create_dir_all(STATE_DIR)
        .map_err(|e| LabError::io(format!("creating {STATE_DIR}"), e))?;
    let path = state_file(name);
    std::fs::write(&path, state.render())
        .map_err(|e| LabError::io(format!("writing {}", path.display()), e))
}

pub(crate) fn read_state(name: &str) -> Option<LabState> {
    LabState::parse(&std::fs::read_to_string(state_file(name)).ok()?)
}

pub(crate) fn remove_state(name: &str) -> Result<(), LabError> {
    match std::fs::remove_file(state_file(name)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(LabError::io(
            format!("removing {}", state_file(name).display()),
            e,
        )),
        _ => Ok(()),
    }
}

/// Start time (clock ticks since boot, field 22 of `/proc/PID/stat`) of a running process.
fn process_start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; fields after it start at field 3.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(22 - 3)?.parse().ok()
}

/// A fresh generated lab name: `prefix` + 8 random lowercase hex digits.
pub(crate) fn generate_name(prefix: &str) -> Result<String, LabError> {
    use std::io::Read;
    let mut bytes = [0u8; 4];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| LabError::io("reading /dev/urandom", e))?;
    Ok(format!("{prefix}{:08x}", u32::from_be_bytes(bytes)))
}

/// The lab a namespace belongs to: `<lab>-src`, `<lab>-origin` or `<lab>-edge<N>`.
pub(crate) fn lab_of_netns(ns: &str) -> Option<&str> {
    let (lab, role) = ns.rsplit_once('-')?;
    let is_edge = role
        .strip_prefix("edge")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    (role == "src" || role == "origin" || is_edge).then_some(lab)
}

/// True when `lab` is a generated name under `prefix`: the prefix then exactly 8 hex digits.
fn is_generated(lab: &str, prefix: &str) -> bool {
    lab.strip_prefix(prefix).is_some_and(|hex| {
        hex.len() == 8
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// Deletes the namespaces of `lab` (all of them that exist) and its state file.
pub(crate) fn remove_lab(lab: &str) -> Result<(), LabError> {
    let lines: Vec<String> = list_netns()?
        .into_iter()
        .filter(|ns| lab_of_netns(ns) == Some(lab))
        .map(|ns| format!("netns del {ns}"))
        .collect();
    let deleted = ip_batch(None, &lines, true);
    let state = remove_state(lab);
    deleted.and(state)
}

/// Removes every generated lab named `prefix` + 8 hex digits whose creating process is gone
/// (or that has no state file), unless it was kept on purpose. Returns the removed lab names.
/// Labs of running processes, kept labs and fixed-name labs are left alone.
pub fn cleanup_stale(prefix: &str) -> Result<Vec<String>, LabError> {
    crate::spec::validate_prefix(prefix)?;
    let mut labs: Vec<String> = list_netns()?
        .iter()
        .filter_map(|ns| lab_of_netns(ns))
        .filter(|lab| is_generated(lab, prefix))
        .map(str::to_string)
        .collect();
    // State files whose namespaces are already gone.
    if let Ok(entries) = std::fs::read_dir(STATE_DIR) {
        labs.extend(
            entries
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter_map(|f| f.strip_suffix(".state").map(str::to_string))
                .filter(|lab| is_generated(lab, prefix)),
        );
    }
    labs.sort();
    labs.dedup();
    let mut removed = Vec::new();
    for lab in labs {
        let stale = match read_state(&lab) {
            Some(state) => !state.persistent && !state.creator_alive(),
            None => true,
        };
        if stale {
            remove_lab(&lab)?;
            removed.push(lab);
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_state_round_trip() {
        assert_eq!(lab_of_netns("ec0123abcd-edge12"), Some("ec0123abcd"));
        assert_eq!(lab_of_netns("demo-lab-origin"), Some("demo-lab"));
        assert_eq!(lab_of_netns("ec0123abcd-edge"), None);
        assert_eq!(lab_of_netns("something"), None);
        assert!(is_generated("ec0123abcd", "ec"));
        assert!(!is_generated("ecst0123abcd", "ec"));
        assert!(!is_generated("ecf0123abcd", "ec"));
        let name = generate_name("ec").unwrap();
        assert!(is_generated(&name, "ec"), "{name}");
        let state = LabState::mine(3, true);
        assert!(state.creator_alive());
        assert_eq!(LabState::parse(&state.render()), Some(state));
    }
}

//! Building, attaching to and removing a lab; accessors for its names, addresses and MACs.

use std::ffi::OsStr;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

use crate::cmd;
use crate::plan::{self, EDGE_HOST, END_HOST, Link, Mac};
use crate::spec::{validate_name, validate_prefix};
use crate::state::{self, LabState};
use crate::{LabError, LabSpec, build};

/// Serialises `ip netns add` within this process: the first one mounts /run/netns.
static NETNS_ADD: Mutex<()> = Mutex::new(());

/// A running lab: namespaces `<name>-src`, `<name>-edge<i>`, `<name>-origin`.
///
/// A lab made by [`Lab::new`] is removed when dropped (also while unwinding from a panic),
/// unless [`Lab::keep`] was called. A lab opened by [`Lab::attach`] is left running when
/// dropped; [`Lab::down`] or [`Lab::destroy`] removes it.
#[derive(Debug)]
pub struct Lab {
    name: String,
    edges: usize,
    silent_origin: bool,
    src_ns: String,
    edge_ns: Vec<String>,
    origin_ns: String,
    /// Namespaces this handle is responsible for removing.
    created: Vec<String>,
    /// Drop removes the lab.
    owned: bool,
}

impl Lab {
    fn handle(name: String, edges: usize, silent_origin: bool, owned: bool) -> Lab {
        Lab {
            src_ns: format!("{name}-src"),
            edge_ns: (0..edges).map(|i| format!("{name}-edge{i}")).collect(),
            origin_ns: format!("{name}-origin"),
            name,
            edges,
            silent_origin,
            created: Vec::new(),
            owned,
        }
    }

    /// Builds a lab. Needs CAP_SYS_ADMIN and CAP_NET_ADMIN, and `ip`, `sysctl` (and `nft` for
    /// a silent origin). On any error, whatever was created is removed again.
    pub fn new(spec: &LabSpec) -> Result<Lab, LabError> {
        if !(1..=plan::MAX_EDGES).contains(&spec.edges) {
            return Err(LabError::invalid(
                "edges",
                format!("{} (must be 1..={})", spec.edges, plan::MAX_EDGES),
            ));
        }
        validate_prefix(&spec.prefix)?;
        if let Some(name) = &spec.name {
            validate_name(name)?;
        }
        if !cmd::have_privileges() {
            return Err(LabError::NotRoot);
        }
        cmd::require_tool("ip")?;
        cmd::require_tool("sysctl")?;
        if spec.silent_origin {
            cmd::require_tool("nft")?;
        }
        let existing = cmd::list_netns()?;
        let taken = |n: &str| existing.iter().any(|ns| state::lab_of_netns(ns) == Some(n));
        let name = match &spec.name {
            Some(name) if taken(name) => return Err(LabError::AlreadyExists(name.clone())),
            Some(name) => name.clone(),
            None => {
                let mut fresh = None;
                for _ in 0..16 {
                    let candidate = state::generate_name(&spec.prefix)?;
                    if !taken(&candidate) && !state::state_file(&candidate).exists() {
                        fresh = Some(candidate);
                        break;
                    }
                }
                fresh.ok_or_else(|| {
                    LabError::invalid("prefix", "no free lab name after 16 random tries")
                })?
            }
        };
        state::write_state(&name, &LabState::mine(spec.edges, spec.silent_origin))?;
        let mut lab = Lab::handle(name, spec.edges, spec.silent_origin, true);
        // From here on, an error drops `lab`, which removes what was created.
        {
            let _guard = NETNS_ADD.lock().unwrap_or_else(|e| e.into_inner());
            for ns in lab.namespaces() {
                cmd::run(cmd::ip(["netns", "add", &ns]), None)?;
                lab.created.push(ns);
            }
        }
        build::configure(&lab)?;
        Ok(lab)
    }

    /// Opens an existing lab (typically one with a fixed name, left running by `lab up`).
    /// Dropping the returned handle leaves the lab running.
    pub fn attach(name: &str) -> Result<Lab, LabError> {
        validate_name(name)?;
        let existing = cmd::list_netns()?;
        let has = |ns: &str| existing.iter().any(|e| e == ns);
        let edges = (0..plan::MAX_EDGES)
            .take_while(|i| has(&format!("{name}-edge{i}")))
            .count();
        if edges == 0 || !has(&format!("{name}-src")) || !has(&format!("{name}-origin")) {
            return Err(LabError::NotFound(name.to_string()));
        }
        let silent = state::read_state(name).is_none_or(|s| s.silent_origin);
        let mut lab = Lab::handle(name.to_string(), edges, silent, false);
        lab.created = existing
            .into_iter()
            .filter(|ns| state::lab_of_netns(ns) == Some(name))
            .collect();
        Ok(lab)
    }

    /// Removes the lab `name`: all its namespaces and its state file.
    pub fn destroy(name: &str) -> Result<(), LabError> {
        validate_name(name)?;
        let exists = cmd::list_netns()?
            .iter()
            .any(|ns| state::lab_of_netns(ns) == Some(name));
        if !exists && !state::state_file(name).exists() {
            return Err(LabError::NotFound(name.to_string()));
        }
        state::remove_lab(name)
    }

    /// Removes the lab now and reports errors (dropping it removes it silently).
    pub fn down(mut self) -> Result<(), LabError> {
        self.owned = false;
        self.teardown()
    }

    /// Leaves the lab running after this handle is dropped and marks it as kept, so
    /// [`crate::cleanup_stale`] does not remove it. Remove it later with [`Lab::destroy`].
    pub fn keep(&mut self) -> Result<(), LabError> {
        self.owned = false;
        let mut st =
            state::read_state(&self.name).unwrap_or(LabState::mine(self.edges, self.silent_origin));
        st.persistent = true;
        state::write_state(&self.name, &st)
    }

    fn teardown(&mut self) -> Result<(), LabError> {
        let lines: Vec<String> = self
            .created
            .drain(..)
            .map(|ns| format!("netns del {ns}"))
            .collect();
        let deleted = cmd::ip_batch(None, &lines, true);
        deleted.and(state::remove_state(&self.name))
    }

    /// All namespace names of the lab: source, edges, origin.
    pub fn namespaces(&self) -> Vec<String> {
        let mut all = vec![self.src_ns.clone()];
        all.extend(self.edge_ns.iter().cloned());
        all.push(self.origin_ns.clone());
        all
    }

    /// The lab name (namespace names are `<name>-src`, `<name>-edge<i>`, `<name>-origin`).
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Number of edges.
    pub fn edges(&self) -> usize {
        self.edges
    }
    /// Whether the origin has the dropping table `lab_origin`.
    pub fn silent_origin(&self) -> bool {
        self.silent_origin
    }
    /// Traffic-source namespace.
    pub fn src_ns(&self) -> &str {
        &self.src_ns
    }
    /// Edge `i`'s namespace. Panics if `i >= edges()`.
    pub fn edge_ns(&self, i: usize) -> &str {
        &self.edge_ns[i]
    }
    /// Origin namespace.
    pub fn origin_ns(&self) -> &str {
        &self.origin_ns
    }
    /// The `/run/netns/...` handle of a namespace, for `setns`.
    pub fn netns_path(ns: &str) -> PathBuf {
        edgecap_netns::path(ns)
    }

    /// Source address on the link to edge `i`: 198.18.(2i).2 / 2001:db8:(2i)::2.
    pub fn src_addr(&self, i: usize, v6: bool) -> IpAddr {
        plan::link_addr(Link::SrcEdge, i, END_HOST, v6)
    }
    /// Edge `i`'s address toward the source: 198.18.(2i).1 / 2001:db8:(2i)::1.
    pub fn edge_addr_src_side(&self, i: usize, v6: bool) -> IpAddr {
        plan::link_addr(Link::SrcEdge, i, EDGE_HOST, v6)
    }
    /// Edge `i`'s address toward the origin: 198.18.(2i+1).1 / 2001:db8:(2i+1)::1.
    pub fn edge_addr_origin_side(&self, i: usize, v6: bool) -> IpAddr {
        plan::link_addr(Link::EdgeOrigin, i, EDGE_HOST, v6)
    }
    /// Origin address on the link from edge `i`: 198.18.(2i+1).2 / 2001:db8:(2i+1)::2.
    pub fn origin_addr(&self, i: usize, v6: bool) -> IpAddr {
        plan::link_addr(Link::EdgeOrigin, i, END_HOST, v6)
    }

    /// Source interface toward edge `i` (`to-edge<i>`).
    pub fn src_if(&self, i: usize) -> String {
        plan::src_ifname(i)
    }
    /// Edge interface toward the source (`from-src`).
    pub fn edge_if_src_side(&self) -> &'static str {
        plan::EDGE_IF_SRC_SIDE
    }
    /// Edge interface toward the origin (`to-origin`).
    pub fn edge_if_origin_side(&self) -> &'static str {
        plan::EDGE_IF_ORIGIN_SIDE
    }
    /// Origin interface toward edge `i` (`from-edge<i>`).
    pub fn origin_if(&self, i: usize) -> String {
        plan::origin_ifname(i)
    }

    /// MAC of the source's `to-edge<i>`: 02:ec:00:ii:00:02.
    pub fn src_mac(&self, i: usize) -> Mac {
        plan::link_mac(Link::SrcEdge, i, END_HOST)
    }
    /// MAC of edge `i`'s `from-src`: 02:ec:00:ii:00:01.
    pub fn edge_mac_src_side(&self, i: usize) -> Mac {
        plan::link_mac(Link::SrcEdge, i, EDGE_HOST)
    }
    /// MAC of edge `i`'s `to-origin`: 02:ec:01:ii:00:01.
    pub fn edge_mac_origin_side(&self, i: usize) -> Mac {
        plan::link_mac(Link::EdgeOrigin, i, EDGE_HOST)
    }
    /// MAC of the origin's `from-edge<i>`: 02:ec:01:ii:00:02.
    pub fn origin_mac(&self, i: usize) -> Mac {
        plan::link_mac(Link::EdgeOrigin, i, END_HOST)
    }

    /// A command running `program args...` inside namespace `ns`
    /// (`ip netns exec NS program args...`, an argv, never a shell string).
    pub fn exec<I, S>(&self, ns: &str, program: &str, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        cmd::netns_exec(ns, program, args)
    }

    /// Runs `program args...` inside `ns` with a time limit and returns its standard output;
    /// a non-zero exit is an error carrying its standard error.
    pub fn run_in<I, S>(&self, ns: &str, program: &str, args: I) -> Result<String, LabError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        cmd::run(cmd::netns_exec(ns, program, args), None)
    }

    /// Like [`Lab::run_in`], feeding `stdin` to the program (e.g. `nft -f -`).
    pub fn run_in_with_input<I, S>(
        &self,
        ns: &str,
        program: &str,
        args: I,
        stdin: &str,
    ) -> Result<String, LabError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        cmd::run(cmd::netns_exec(ns, program, args), Some(stdin))
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if self.owned {
            // Never panic in drop (it may run while unwinding); errors are ignored here and
            // reported by `down()` instead.
            let _ = self.teardown();
        }
    }
}

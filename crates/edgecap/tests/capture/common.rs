//! Shared harness: run the real `edgecap` binary inside a lab namespace, stop it the way a user
//! would, and read its file back with tshark (the root check and the readers are
//! edgecap-testkit's, re-exported here for the tests' `use crate::common::*`).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use edgecap_lab::{Lab, LabSpec};
use edgecap_testkit::readers::tshark_packets_where;
pub use edgecap_testkit::readers::{tshark_fields, tshark_packets};
pub use edgecap_testkit::root_or_skip;

pub const BIN: &str = env!("CARGO_BIN_EXE_edgecap");

/// IPv4 UDP packets from the source to the origin through edge 0, one per marker, sport 40000,
/// `total_len` bytes each (IP header included) when given.
pub fn udp_packets(
    lab: &Lab,
    markers: std::ops::RangeInclusive<u32>,
    dport: u16,
    total_len: Option<usize>,
) -> Vec<Vec<u8>> {
    markers
        .map(|i| {
            let p = edgecap_lab::packet::Packet::udp(
                lab.src_addr(0, false),
                lab.origin_addr(0, false),
                40000,
                dport,
            )
            .marker(i);
            let p = match total_len {
                Some(n) => p.total_len(n),
                None => p,
            };
            p.build().expect("build packet")
        })
        .collect()
}

pub fn lab() -> Lab {
    Lab::new(&LabSpec::default()).expect("building the lab")
}

/// A scratch directory removed at drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!(
            "edgecap-test-{tag}-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&p).expect("scratch dir");
        Self(p)
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `edgecap <args>` inside namespace `ns`, as an argv (never a shell string).
pub fn edgecap_in(ns: &str, args: &[&str]) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns, BIN]).args(args);
    c
}

/// The `inet` tables present in a namespace.
pub fn nft_tables(ns: &str) -> Vec<String> {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "nft", "list", "tables"])
        .output()
        .expect("nft list tables");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("table inet "))
        .map(str::to_owned)
        .collect()
}

/// The edgecap-owned capture tables present in a namespace (an agent's always-on observer
/// table, `edgecap_observer`, is not one).
pub fn edgecap_tables(ns: &str) -> Vec<String> {
    nft_tables(ns)
        .into_iter()
        .filter(|t| t.starts_with("edgecap_") && t != "edgecap_observer")
        .collect()
}

/// Polls until `f` holds or `limit` passes.
pub fn wait_for(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

/// A capture process running in a lab namespace.
pub struct Running {
    pub child: Child,
}

#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stderr: String,
    /// What it printed on stdout when stdout was not the capture (`-w FILE`).
    pub stdout: String,
}

impl Finished {
    /// The JSON summary the capture printed (`--json`): on stdout, or on stderr when stdout
    /// carried the capture (`-w -`).
    pub fn summary(&self) -> serde_json::Value {
        let line = self
            .stdout
            .lines()
            .chain(self.stderr.lines())
            .find(|l| l.starts_with('{'))
            .unwrap_or_else(|| panic!("no JSON summary:\n{}{}", self.stdout, self.stderr));
        serde_json::from_str(line).expect("summary is JSON")
    }
}

/// Starts `edgecap capture <args> --json -q` in `ns` and returns once its rule is installed.
pub fn start(ns: &str, args: &[&str]) -> Running {
    let tables_before = edgecap_tables(ns).len();
    let mut cmd = edgecap_in(ns, &["capture", "--json", "-q"]);
    cmd.args(args).stdin(Stdio::null()).stderr(Stdio::piped());
    // The capture itself (`-w -`), or the JSON summary.
    cmd.stdout(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn edgecap");
    let ready = wait_for(Duration::from_secs(10), || {
        if let Ok(Some(_)) = child.try_wait() {
            return true;
        }
        edgecap_tables(ns).len() > tables_before
    });
    if let Ok(Some(st)) = child.try_wait() {
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        panic!("edgecap exited before installing its rule ({st}):\n{err}");
    }
    assert!(ready, "edgecap did not install its rule within 10s");
    Running { child }
}

impl Running {
    /// Sends a signal to the capture (through `ip netns exec`, which execs, so the pid is ours).
    pub fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(st.success());
    }

    /// Waits for the process to end by itself within `limit`.
    pub fn wait(mut self, limit: Duration) -> Finished {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                let mut stderr = String::new();
                if let Some(mut e) = self.child.stderr.take() {
                    let _ = e.read_to_string(&mut stderr);
                }
                let mut stdout = String::new();
                if let Some(mut o) = self.child.stdout.take() {
                    let _ = o.read_to_string(&mut stdout);
                }
                return Finished {
                    status,
                    stderr,
                    stdout,
                };
            }
            if start.elapsed() > limit {
                let _ = self.child.kill();
                panic!("capture did not finish within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Ctrl-C, then wait.
    pub fn interrupt(self) -> Finished {
        self.signal("INT");
        self.wait(Duration::from_secs(10))
    }
}

/// The markers of the packets tshark shows on interface `name`, sorted.
pub fn markers_at(file: &Path, name: &str) -> Vec<u32> {
    let filter = format!("frame.interface_name == \"{name}\"");
    let mut m: Vec<u32> = tshark_packets_where(file, Some(&filter))
        .iter()
        .map(|r| edgecap_lab::packet::find_marker(&r.data).expect("every test packet has a marker"))
        .collect();
    m.sort_unstable();
    m
}

/// The markers of the packets in `file`, sorted.
pub fn markers(file: &Path) -> Vec<u32> {
    let mut m: Vec<u32> = tshark_packets(file)
        .iter()
        .map(|r| edgecap_lab::packet::find_marker(&r.data).expect("every test packet has a marker"))
        .collect();
    m.sort_unstable();
    m
}

/// One interface statistics block: `(interface id, ifrecv, filteraccept, osdrop, usrdeliv)`.
pub type Isb = (u32, Option<u64>, Option<u64>, Option<u64>, Option<u64>);

/// The interface statistics blocks of a pcapng file, read with pcap-parser (an independent
/// reader: tshark does not print ISB counters).
pub fn isb_counters(file: &Path) -> Vec<Isb> {
    use pcap_parser::pcapng::{Block, parse_block_le};
    let bytes = std::fs::read(file).unwrap();
    let mut rest = &bytes[..];
    let mut out = Vec::new();
    while !rest.is_empty() {
        let (after, block) = parse_block_le(rest).expect("pcapng block");
        if let Block::InterfaceStatistics(isb) = block {
            let get = |v: Option<Result<u64, _>>| v.map(|r: Result<u64, _>| r.unwrap());
            out.push((
                isb.if_id,
                get(isb.isb_ifrecv()),
                get(isb.isb_filteraccept()),
                get(isb.isb_osdrop()),
                get(isb.isb_usrdeliv()),
            ));
        }
        rest = after;
    }
    out
}

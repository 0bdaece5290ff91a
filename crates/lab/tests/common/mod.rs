//! Helpers shared by the lab's integration tests.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use edgecap_lab::{Lab, LabError, LabSpec};

/// Builds a lab, or returns None (skip) when not privileged outside CI. Under `CI=true` a
/// missing privilege is a test failure, never a silent skip.
/// Leftovers of crashed earlier runs are removed first (once per test binary).
pub fn lab(spec: &LabSpec, test: &str) -> Option<Lab> {
    static CLEANUP: std::sync::Once = std::sync::Once::new();
    CLEANUP.call_once(|| {
        if let Ok(removed) = edgecap_lab::cleanup_stale(&spec.prefix)
            && !removed.is_empty()
        {
            eprintln!("removed stale labs: {removed:?}");
        }
    });
    match Lab::new(spec) {
        Ok(lab) => Some(lab),
        Err(LabError::NotRoot) if std::env::var("CI").as_deref() != Ok("true") => {
            eprintln!("SKIP {test}: {}", LabError::NotRoot);
            None
        }
        Err(e) => panic!("{test}: cannot build the lab: {e}"),
    }
}

/// Polls `f` every 10 ms until it returns Some, for at most `timeout`.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub fn netns_exists(ns: &str) -> bool {
    Path::new("/run/netns").join(ns).exists()
}

/// Loads an nft ruleset into `ns`.
pub fn nft_load(lab: &Lab, ns: &str, script: &str) {
    lab.run_in_with_input(ns, "nft", ["-f", "-"], script)
        .unwrap_or_else(|e| panic!("nft -f in {ns}: {e}\n{script}"));
}

/// Packets counted by named counter `name` of table `inet <table>` in `ns`.
pub fn nft_counter(lab: &Lab, ns: &str, table: &str, name: &str) -> u64 {
    let out = lab
        .run_in(ns, "nft", ["list", "counter", "inet", table, name])
        .unwrap();
    let after = out
        .split("packets ")
        .nth(1)
        .unwrap_or_else(|| panic!("no packets in {out}"));
    after.split_whitespace().next().unwrap().parse().unwrap()
}

/// Waits until the counter reaches `want` (5 s at most), then 100 ms more, and returns the
/// final value, so that both "too few" and "too many" show.
pub fn settled_counter(lab: &Lab, ns: &str, table: &str, name: &str, want: u64) -> u64 {
    wait_for(Duration::from_secs(5), || {
        (nft_counter(lab, ns, table, name) >= want).then_some(())
    });
    std::thread::sleep(Duration::from_millis(100));
    nft_counter(lab, ns, table, name)
}

/// A tcpdump writing to a pcap file, started inside a namespace.
pub struct Tcpdump {
    child: Child,
    pub file: PathBuf,
}

impl Tcpdump {
    /// Starts `tcpdump -i IF -w FILE -c COUNT FILTER` in `ns` and waits (10 s at most) until
    /// it is listening.
    pub fn start(lab: &Lab, ns: &str, ifname: &str, count: usize, filter: &str) -> Tcpdump {
        let file = std::env::temp_dir().join(format!("{ns}-{ifname}.pcap"));
        let mut child = lab
            .exec(
                ns,
                "tcpdump",
                [
                    "-i",
                    ifname,
                    "-n",
                    "-U",
                    "--immediate-mode",
                    "-Z",
                    "root",
                    "-c",
                ],
            )
            .arg(count.to_string())
            .arg("-w")
            .arg(&file)
            .arg(filter)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tcpdump");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("listening on") {
                    let _ = tx.send(());
                }
            }
        });
        let mut dump = Tcpdump { child, file };
        if rx.recv_timeout(Duration::from_secs(10)).is_err() {
            dump.stop();
            panic!("tcpdump in {ns} did not start listening within 10 s");
        }
        dump
    }

    /// Waits (10 s at most) for tcpdump to exit after its `-c` packets; kills it otherwise.
    /// Returns the captured packets' link-layer frames.
    pub fn finish(mut self) -> Vec<Vec<u8>> {
        let exited = wait_for(Duration::from_secs(10), || {
            self.child.try_wait().ok().flatten()
        });
        if exited.is_none() {
            self.stop();
        }
        let data = std::fs::read(&self.file).unwrap_or_default();
        let _ = std::fs::remove_file(&self.file);
        read_pcap(&data)
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Tcpdump {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.stop();
        }
    }
}

/// Frames of a classic pcap file (little- or big-endian, micro- or nanosecond).
pub fn read_pcap(data: &[u8]) -> Vec<Vec<u8>> {
    if data.len() < 24 {
        return Vec::new();
    }
    let le = matches!(
        &data[..4],
        [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1]
    );
    let u32_at = |at: usize| {
        let b: [u8; 4] = data[at..at + 4].try_into().unwrap();
        if le {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        }
    };
    let mut frames = Vec::new();
    let mut at = 24;
    while at + 16 <= data.len() {
        let caplen = u32_at(at + 8) as usize;
        let start = at + 16;
        if start + caplen > data.len() {
            break;
        }
        frames.push(data[start..start + caplen].to_vec());
        at = start + caplen;
    }
    frames
}

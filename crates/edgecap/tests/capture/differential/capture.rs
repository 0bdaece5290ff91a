//! The edgecap side: one `edgecap capture --filter EXPR` process per expression in the lab's
//! edge namespace, each with its own table and NFLOG group, stopped with SIGINT like a user
//! stops it, its file read back with tcpdump.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use edgecap_lab::packet::find_marker;

use super::corpus::Corpus;
use super::oracle::tcpdump_packets;
use crate::common::{Scratch, edgecap_in, edgecap_tables, wait_for};

/// Ends a capture left running by a failing test even if nobody signals it.
const SAFETY_TIME_LIMIT: &str = "120s";

/// A running `edgecap capture --filter` and its output file.
pub struct Capture {
    child: Option<Child>,
    out: PathBuf,
}

impl Drop for Capture {
    /// A capture still running here belongs to a test that failed: stop it (our own child,
    /// by its pid) rather than leave it to its time limit.
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Starts one capture per expression in the edge namespace and waits until all their tables
/// are installed.
pub fn start_all(ns: &str, texts: &[&str], scratch: &Scratch, batch: usize) -> Vec<Capture> {
    let before = edgecap_tables(ns).len();
    let mut caps: Vec<Capture> = texts
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let out = scratch.path(&format!("b{batch}-{i}.pcapng"));
            let args = [
                "capture",
                "--json",
                "-q",
                "--time",
                SAFETY_TIME_LIMIT,
                "--filter",
                text,
                "-w",
            ];
            let child = edgecap_in(ns, &args)
                .arg(&out)
                .stdin(Stdio::null())
                // The JSON summary (`-w FILE`: stdout carries nothing else).
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn edgecap");
            Capture {
                child: Some(child),
                out,
            }
        })
        .collect();
    let ready = wait_for(Duration::from_secs(20), || {
        edgecap_tables(ns).len() >= before + caps.len()
    });
    for (c, text) in caps.iter_mut().zip(texts) {
        let Some(child) = c.child.as_mut() else {
            continue;
        };
        if let Ok(Some(st)) = child.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            panic!("edgecap exited before installing {text:?} ({st}):\n{err}");
        }
    }
    assert!(
        ready,
        "the captures did not all install their rules within 20s"
    );
    caps
}

/// Stops a capture as a user does and returns the markers in its file. Packets without a
/// marker (the kernel's own traffic in the lab, such as MLD reports) are not the corpus's and
/// are left out; a packet with a marker must be that corpus packet, byte for byte.
pub fn finish(mut c: Capture, text: &str, corpus: &Corpus) -> BTreeSet<u32> {
    let mut child = c.child.take().expect("a running capture");
    let st = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(st.success());
    let started = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "capture of {text:?} did not stop"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().expect("capture output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "capture of {text:?} failed: {stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary = stdout
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no summary for {text:?}: {stderr}"));
    let summary: serde_json::Value = serde_json::from_str(summary).unwrap();
    assert_eq!(summary["lost"], 0, "{text:?} lost packets: {stderr}");
    let packets = tcpdump_packets(&c.out, None)
        .unwrap_or_else(|e| panic!("tcpdump cannot read the capture of {text:?}: {e}"));
    let mut markers = BTreeSet::new();
    for p in packets {
        let Some(m) = find_marker(&p) else { continue };
        assert_eq!(
            corpus.packets.get(m as usize - 1),
            Some(&p),
            "the capture of {text:?} holds a packet with marker #{m} that is not that corpus \
             packet ({}): something in the lab answered or changed it",
            corpus.describe(m)
        );
        markers.insert(m);
    }
    markers
}

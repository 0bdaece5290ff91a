//! The manifest: a small JSON object written beside each node's file,
//! `<prefix>/<capture_id>/<node>.json`, so a user with only the bucket knows what the file
//! holds, what was lost, and whether the upload completed. Field names are the API's style.
//!
//! It is written last, after the file's upload completed or failed; a file without a manifest
//! is one whose agent never finished.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Current manifest layout version.
pub const MANIFEST_VERSION: u32 = 1;

/// How a node's part ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The whole file is in the bucket.
    Success,
    /// Nothing usable is in the bucket; `error` says why.
    Failed,
}

/// Counters of one capture point (one pcapng interface).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PointCounts {
    /// The point's name, e.g. `pre-firewall`; the interface is `<node>/<point>`.
    pub name: String,
    /// Packets written to the file.
    pub packets: u64,
    /// Packets the rule matched (before sampling and limits).
    pub matched: u64,
    /// Packets the rule logged to NFLOG.
    pub logged: u64,
    /// Packets logged but never received; `None` when a limit stopped reading early.
    pub lost: Option<u64>,
}

/// What was uploaded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadCounts {
    /// Bytes in the object (0 when the upload failed and was aborted).
    pub bytes: u64,
    /// Multipart parts.
    pub parts: u64,
    /// Size of every part but the last.
    pub chunk_size: u64,
}

/// One node's manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u32,
    pub capture_id: String,
    pub node: String,
    /// The file's key relative to the destination's prefix.
    pub object: String,
    /// `pcapng` or `pcap`.
    pub format: String,
    pub outcome: Outcome,
    /// Why the part failed; `None` on success.
    pub error: Option<String>,
    /// The filter as the node applied it.
    pub filter: String,
    pub points: Vec<PointCounts>,
    /// Packets and packet bytes in the file.
    pub packets: u64,
    pub bytes: u64,
    /// Packets lost between kernel and writer (all points).
    pub lost: u64,
    /// RFC 3339 UTC times of the capture's start and end.
    pub started: String,
    pub ended: String,
    pub duration_ms: u64,
    /// Why the capture stopped, in words (e.g. "packet limit reached").
    pub stop_reason: String,
    pub upload: UploadCounts,
    /// The program that wrote it, e.g. `edgecap 0.1.0`.
    pub writer: String,
}

impl Manifest {
    /// The JSON body, pretty-printed (it is read by people).
    pub fn to_json(&self) -> Vec<u8> {
        // Serializing plain strings and integers cannot fail.
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    /// Parses a manifest; unknown fields are ignored so newer writers stay readable.
    pub fn from_json(body: &[u8]) -> Result<Manifest, serde_json::Error> {
        serde_json::from_slice(body)
    }
}

/// `t` as RFC 3339 UTC with microseconds, e.g. `2026-11-25T10:00:00.123456Z`.
pub fn rfc3339(t: SystemTime) -> String {
    let t = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => UNIX_EPOCH + std::time::Duration::from_micros(d.as_micros() as u64),
        Err(_) => UNIX_EPOCH,
    };
    humantime::format_rfc3339_micros(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_round_trips_and_reads_like_the_docs() {
        let m = Manifest {
            version: MANIFEST_VERSION,
            capture_id: "0123456789abcdef0123456789abcdef".into(),
            node: "edge0".into(),
            object: "0123456789abcdef0123456789abcdef/edge0.pcapng".into(),
            format: "pcapng".into(),
            outcome: Outcome::Success,
            error: None,
            filter: "udp dport 53".into(),
            points: vec![PointCounts {
                name: "pre-firewall".into(),
                packets: 10,
                matched: 12,
                logged: 12,
                lost: Some(2),
            }],
            packets: 10,
            bytes: 920,
            lost: 2,
            started: rfc3339(UNIX_EPOCH + std::time::Duration::from_millis(1_500)),
            ended: rfc3339(UNIX_EPOCH + std::time::Duration::from_secs(3)),
            duration_ms: 1500,
            stop_reason: "packet limit reached".into(),
            upload: UploadCounts {
                bytes: 1400,
                parts: 1,
                chunk_size: 5 << 20,
            },
            writer: "edgecap 0.1.0".into(),
        };
        let json = m.to_json();
        let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(v["outcome"], "success");
        assert_eq!(v["started"], "1970-01-01T00:00:01.500000Z");
        assert_eq!(v["points"][0]["lost"], 2);
        assert_eq!(Manifest::from_json(&json).unwrap(), m);
    }
}

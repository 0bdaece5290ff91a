//! The manifest a node writes beside its file (`<capture_id>/<node>.json`): what the file
//! holds (filter, points, counts, loss, timing) and whether it is there. Written after the
//! file's upload ended, whichever way it ended, so a user with only the bucket knows.

use std::time::{SystemTime, UNIX_EPOCH};

use edgecap_capture::Summary;
use edgecap_model::Assignment;
use edgecap_store::manifest::{
    MANIFEST_VERSION, Manifest, Outcome, PointCounts, UploadCounts, rfc3339,
};

use crate::output::Delivered;

/// The manifest of one part. `summary` is None when the engine failed before it could say;
/// `delivered` is the file's fate (`Err`: why it is not at its key).
pub fn manifest(
    a: &Assignment,
    node: &str,
    key: &str,
    summary: Option<&Summary>,
    delivered: Result<&Delivered, &dyn std::fmt::Display>,
    started: SystemTime,
    ended: SystemTime,
) -> Manifest {
    let (outcome, error, upload) = match delivered {
        Ok(d) => (
            Outcome::Success,
            None,
            UploadCounts {
                bytes: d.bytes,
                parts: d.parts,
                chunk_size: d.chunk_size,
            },
        ),
        Err(why) => (
            Outcome::Failed,
            Some(why.to_string()),
            UploadCounts {
                bytes: 0,
                parts: 0,
                chunk_size: 0,
            },
        ),
    };
    let ms = |t: SystemTime| {
        t.duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    };
    Manifest {
        version: MANIFEST_VERSION,
        capture_id: a.capture_id.to_ascii_lowercase(),
        node: node.to_owned(),
        object: key.to_owned(),
        format: a.format.clone(),
        outcome,
        error,
        filter: summary.map(|s| s.filter.clone()).unwrap_or_default(),
        points: summary
            .map(|s| {
                s.points
                    .iter()
                    .map(|p| PointCounts {
                        name: p.point.clone(),
                        packets: p.packets,
                        matched: p.matched,
                        logged: p.logged,
                        lost: p.lost,
                    })
                    .collect()
            })
            .unwrap_or_default(),
        packets: summary.map_or(0, |s| s.packets),
        bytes: summary.map_or(0, |s| s.bytes),
        lost: summary.map_or(0, |s| s.lost),
        started: rfc3339(started),
        ended: rfc3339(ended),
        duration_ms: summary.map_or_else(
            || ms(ended).saturating_sub(ms(started)),
            |s| s.duration.as_millis() as u64,
        ),
        stop_reason: summary
            .map(|s| s.stop_reason.describe().to_owned())
            .unwrap_or_else(|| "the capture did not run".to_owned()),
        upload,
        writer: format!("edgecap {}", env!("CARGO_PKG_VERSION")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn assignment() -> Assignment {
        serde_json::from_value(serde_json::json!({
            "capture_id": "0123456789ABCDEF0123456789abcdef", "filter_v1": {}, "filter": null,
            "points": ["pre-firewall"], "time_limit": 1.0, "packet_limit": null,
            "byte_limit": null, "snaplen": null, "sample_rate": null, "format": "pcapng",
            "destination_conf": "s3://b?region=r"
        }))
        .unwrap()
    }

    #[test]
    fn a_failed_part_says_so_and_claims_no_bytes() {
        let t0 = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let t1 = t0 + Duration::from_millis(1500);
        let key = "0123456789abcdef0123456789abcdef/edge0.pcapng";
        let m = manifest(&assignment(), "edge0", key, None, Err(&"no"), t0, t1);
        assert_eq!(m.outcome, Outcome::Failed);
        assert_eq!(m.error.as_deref(), Some("no"));
        assert_eq!(m.upload.bytes, 0);
        assert_eq!(m.duration_ms, 1500);
        assert_eq!(m.capture_id, "0123456789abcdef0123456789abcdef");
        let d = Delivered {
            bytes: 10,
            parts: 1,
            chunk_size: 5 << 20,
        };
        let m = manifest(&assignment(), "edge0", key, None, Ok(&d), t0, t1);
        assert_eq!(
            (m.outcome, m.upload.bytes, m.upload.parts),
            (Outcome::Success, 10, 1)
        );
        assert_eq!(Manifest::from_json(&m.to_json()).unwrap(), m);
    }
}

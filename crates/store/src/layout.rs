//! Where a capture's objects go under the destination's prefix:
//!
//! ```text
//! <prefix>/<capture_id>/<node>.pcapng     one node's file (or .pcap)
//! <prefix>/<capture_id>/<node>.json       that node's manifest (crate::manifest)
//! <prefix>/<capture_id>/merged.pcapng     the merged timeline, when asked for
//! <prefix>/ownership-challenge-<id>.txt   the ownership challenge
//! ```
//!
//! Keys are relative to the prefix ([`crate::Store::path`] adds it). Capture ids are the API's
//! 32 hex digits; node names are checked so one name is exactly one path segment.

use edgecap_pcap::Format;

use crate::error::StoreError;

/// The merged file's name stem; no node may take it.
pub const MERGED: &str = "merged";

/// Checks a capture id: 32 hex digits.
pub fn check_capture_id(id: &str) -> Result<(), StoreError> {
    if id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(StoreError::invalid(
            "capture_id",
            format!("{id:?} is not a capture id (32 hex digits)"),
        ))
    }
}

/// Checks a node name: 1-63 of `[A-Za-z0-9._-]`, not starting with `.`, not `merged`.
pub fn check_node(node: &str) -> Result<(), StoreError> {
    let ok = (1..=63).contains(&node.len())
        && !node.starts_with('.')
        && node
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if !ok {
        return Err(StoreError::invalid(
            "node",
            format!(
                "{node:?} cannot name an object: use 1-63 letters, digits, '.', '_' or '-', not \
                 starting with '.'"
            ),
        ));
    }
    if node == MERGED {
        return Err(StoreError::invalid(
            "node",
            "\"merged\" is reserved for the merged file",
        ));
    }
    Ok(())
}

/// `<capture_id>/<node>.<pcapng|pcap>`.
pub fn node_file(capture_id: &str, node: &str, format: Format) -> Result<String, StoreError> {
    check_capture_id(capture_id)?;
    check_node(node)?;
    Ok(format!(
        "{}/{node}.{}",
        capture_id.to_ascii_lowercase(),
        format.extension()
    ))
}

/// `<capture_id>/<node>.json`.
pub fn node_manifest(capture_id: &str, node: &str) -> Result<String, StoreError> {
    check_capture_id(capture_id)?;
    check_node(node)?;
    Ok(format!("{}/{node}.json", capture_id.to_ascii_lowercase()))
}

/// `<capture_id>/merged.<pcapng|pcap>`.
pub fn merged_file(capture_id: &str, format: Format) -> Result<String, StoreError> {
    check_capture_id(capture_id)?;
    Ok(format!(
        "{}/{MERGED}.{}",
        capture_id.to_ascii_lowercase(),
        format.extension()
    ))
}

/// `ownership-challenge-<ownership_id>.txt`, Cloudflare's name.
pub fn ownership_challenge(ownership_id: &str) -> Result<String, StoreError> {
    if ownership_id.len() == 32 && ownership_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(format!(
            "ownership-challenge-{}.txt",
            ownership_id.to_ascii_lowercase()
        ))
    } else {
        Err(StoreError::invalid(
            "ownership_id",
            format!("{ownership_id:?} is not an ownership id (32 hex digits)"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789ABCDEF";

    #[test]
    fn keys_follow_the_documented_layout() {
        assert_eq!(
            node_file(ID, "edge-fra-1", Format::Pcapng).unwrap(),
            "0123456789abcdef0123456789abcdef/edge-fra-1.pcapng"
        );
        assert_eq!(
            node_file(ID, "n1", Format::Pcap).unwrap(),
            "0123456789abcdef0123456789abcdef/n1.pcap"
        );
        assert_eq!(
            node_manifest(ID, "n1").unwrap(),
            "0123456789abcdef0123456789abcdef/n1.json"
        );
        assert_eq!(
            merged_file(ID, Format::Pcapng).unwrap(),
            "0123456789abcdef0123456789abcdef/merged.pcapng"
        );
        assert_eq!(
            ownership_challenge(&ID.to_ascii_lowercase()).unwrap(),
            "ownership-challenge-0123456789abcdef0123456789abcdef.txt"
        );
    }

    #[test]
    fn names_that_would_escape_or_collide_are_refused() {
        for bad in ["", "a/b", "..", ".hidden", "a b", "merged", &"x".repeat(64)] {
            let e = node_file(ID, bad, Format::Pcapng).unwrap_err();
            assert_eq!(e.field(), Some("node"), "{bad:?}: {e}");
        }
        let e = node_file("abc", "n1", Format::Pcapng).unwrap_err();
        assert_eq!(e.field(), Some("capture_id"));
        assert!(ownership_challenge("../x").is_err());
    }
}

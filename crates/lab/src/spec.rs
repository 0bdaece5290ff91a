//! [`LabSpec`]: what lab to build, and the checks of its names.

use crate::LabError;

/// What lab to build. `LabSpec::default()` is one edge, prefix `ec`, a generated name and a
/// silent origin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabSpec {
    /// Number of edge-node namespaces, 1 ..= [`crate::plan::MAX_EDGES`].
    pub edges: usize,
    /// Prefix of generated names (1-8 characters of `a-z0-9`): `<prefix><8 hex>-src`, ...
    pub prefix: String,
    /// A fixed lab name instead of a generated one (for people: `edgecap lab up --name demo`).
    pub name: Option<String>,
    /// Install table `lab_origin` in the origin: it drops all input and output except on
    /// loopback, so the origin never answers probes (no RST, no ICMP errors, no ND/MLD).
    pub silent_origin: bool,
}

impl Default for LabSpec {
    fn default() -> Self {
        LabSpec {
            edges: 1,
            prefix: "ec".to_string(),
            name: None,
            silent_origin: true,
        }
    }
}

impl LabSpec {
    /// A default spec with `n` edges.
    pub fn with_edges(n: usize) -> Self {
        LabSpec {
            edges: n,
            ..LabSpec::default()
        }
    }

    /// A default spec with a fixed lab name.
    pub fn named(name: &str) -> Self {
        LabSpec {
            name: Some(name.to_string()),
            ..LabSpec::default()
        }
    }
}

pub(crate) fn validate_prefix(prefix: &str) -> Result<(), LabError> {
    let ok = (1..=8).contains(&prefix.len())
        && prefix
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    ok.then_some(())
        .ok_or_else(|| LabError::invalid("prefix", format!("`{prefix}`: use 1-8 of a-z0-9")))
}

pub(crate) fn validate_name(name: &str) -> Result<(), LabError> {
    let ok = (1..=24).contains(&name.len())
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    ok.then_some(()).ok_or_else(|| {
        LabError::invalid(
            "name",
            format!("`{name}`: use 1-24 of a-z0-9 and '-', starting with a letter or digit"),
        )
    })
}

//! Who this node is and how the agent reaches its server, checked before the first dial.
//! Flags and environment say how the process runs (server, token, namespace); the agent
//! configuration file says what the node is (name, labels, capture points).

use std::collections::BTreeMap;
use std::path::PathBuf;

use edgecap_capture::Config;
use tokio_tungstenite::tungstenite::http::Uri;

use crate::output::UploadSettings;
use crate::worker::NodeContext;

/// Everything the agent needs to run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Base URL of the server, `https://host[:port]` (or `http://` to loopback, or anywhere
    /// with `insecure_plaintext`); several, comma-separated, for replicas: the agent dials
    /// them in turn, moving to the next when a dial fails or a connection is lost.
    pub server: String,
    /// An enrolment token (`edgecap admin agent-token create`), presented with the node's
    /// credential until its name is bound to it; empty once the node is enrolled.
    pub token: String,
    /// Where the node keeps its own credential (`identity.rs`).
    pub state_dir: std::path::PathBuf,
    /// This node's unique name.
    pub name: String,
    /// `site`, `region` and free-form labels (the file's, then the flags').
    pub labels: BTreeMap<String, String>,
    /// The agent configuration file's contents (points; name and labels are merged above).
    pub config: Config,
    /// Network namespace captures run in (`/run/netns/NAME`); the control connection stays in
    /// the agent's own namespace.
    pub netns: Option<String>,
    /// Reported in `hello`.
    pub version: String,
    /// How uploads to buckets ride out a slow or failing store.
    pub upload: UploadSettings,
    /// Trust for an `https` server: only the CA certificates of this PEM file (`--ca`);
    /// `None`: the system's trust store.
    pub ca: Option<PathBuf>,
    /// Dial a non-loopback server over plain `http://` anyway (`--insecure-plaintext`),
    /// warning at every connect.
    pub insecure_plaintext: bool,
    /// Captures this node runs at once (`--max-captures`); an assignment beyond them fails
    /// naming the cap, before any rule is installed.
    pub max_captures: usize,
}

/// Where the server is, from `--server`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `https://`: dial TLS.
    pub tls: bool,
    /// The host as written (IPv6 in brackets).
    pub host: String,
    pub port: u16,
}

impl Endpoint {
    /// The host without IPv6 brackets, for resolving and for the certificate check.
    pub fn bare_host(&self) -> &str {
        self.host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(&self.host)
    }
}

/// A setting that cannot work, naming it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{setting}: {reason}")]
pub struct SettingsError {
    /// The flag or configuration key, e.g. `--server`.
    pub setting: String,
    pub reason: String,
}

fn bad(setting: &str, reason: impl Into<String>) -> SettingsError {
    SettingsError {
        setting: setting.to_owned(),
        reason: reason.into(),
    }
}

impl Settings {
    /// Checks every setting the way the server will, and that the capture namespace exists.
    pub fn check(&self) -> Result<(), SettingsError> {
        let servers = self.servers();
        if servers.is_empty() {
            return Err(bad("--server", "no server given"));
        }
        for i in 0..servers.len() {
            let one = self.with_server(i);
            let endpoint = one.endpoint()?;
            if endpoint.tls {
                edgecap_tls::client_config(self.ca.as_deref())
                    .map_err(|e| bad(e.flag, e.reason))?;
                edgecap_tls::server_name(endpoint.bare_host())
                    .map_err(|e| bad(e.flag, e.reason))?;
            } else {
                one.plain_link(&endpoint)?;
            }
        }
        if self.token.contains(char::is_whitespace) {
            return Err(bad(
                "--token",
                "contains white space (an enrolment token looks like eca_...)",
            ));
        }
        if self.token.is_empty() && !crate::identity::exists(&self.state_dir) {
            return Err(bad(
                "--token",
                format!(
                    "no enrolment token, and no credential in {} yet: a node needs an \
                     enrolment token (`edgecap admin agent-token create`) at its first connect",
                    self.state_dir.display()
                ),
            ));
        }
        edgecap_model::check_hello(&self.name, &self.labels, &[], &self.version).map_err(|e| {
            match e.split_once(": ") {
                Some(("hello.name", r)) => bad("--name", r),
                Some(("hello.labels", r)) => bad("--label", r),
                _ => bad("settings", e),
            }
        })?;
        if let Some(ns) = &self.netns {
            let path = edgecap_netns::path(ns);
            if ns.is_empty() || ns.contains('/') || !path.exists() {
                return Err(bad(
                    "--netns",
                    format!(
                        "no network namespace {ns:?} ({} does not exist)",
                        path.display()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The capture points this node offers: every built-in and configured point that
    /// resolves in the capture namespace now (`ingress` needs a device other than `lo`).
    pub fn offered_points(&self) -> Vec<String> {
        let probe = || {
            let devices = edgecap_capture::points::local_devices();
            edgecap_capture::points::known(&self.config)
                .split(", ")
                .filter(|name| {
                    let names = [(*name).to_owned()];
                    match edgecap_capture::points::resolve(&names, &self.config, &devices) {
                        Ok(_) => true,
                        Err(e) => {
                            tracing::warn!(point = %name, error = %e, "capture point not offered");
                            false
                        }
                    }
                })
                .map(str::to_owned)
                .collect::<Vec<String>>()
        };
        match &self.netns {
            None => probe(),
            Some(ns) => edgecap_netns::run(ns, probe).unwrap_or_else(|e| {
                tracing::error!(netns = %ns, error = %e, "cannot list the namespace's devices");
                Vec::new()
            }),
        }
    }

    /// What a capture thread needs.
    pub fn node(&self) -> NodeContext {
        NodeContext {
            name: self.name.clone(),
            config: self.config.clone(),
            netns: self.netns.clone(),
            upload: self.upload.clone(),
            max_captures: self.max_captures,
        }
    }

    /// The servers `server` lists (replicas, or one address), in the order they are dialled.
    pub fn servers(&self) -> Vec<String> {
        self.server
            .split(',')
            .map(|s| s.trim().trim_end_matches('/'))
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// These settings with only the `i`th server (counting round: `i` past the last is the
    /// first again), which is what a dial uses.
    pub fn with_server(&self, i: usize) -> Settings {
        let servers = self.servers();
        let mut one = self.clone();
        if !servers.is_empty() {
            one.server = servers[i % servers.len()].clone();
        }
        one
    }

    /// `--server` as scheme, host and port (80 or 443 when it names none).
    pub fn endpoint(&self) -> Result<Endpoint, SettingsError> {
        let tls = if self.server.starts_with("https://") {
            true
        } else if self.server.starts_with("http://") {
            false
        } else {
            return Err(bad(
                "--server",
                format!(
                    "{:?} must start with https:// (or http:// to a server on this host)",
                    self.server
                ),
            ));
        };
        let no_host = || bad("--server", format!("{:?} names no host", self.server));
        if self.server.contains(char::is_whitespace) {
            return Err(no_host());
        }
        let uri: Uri = self
            .server
            .parse()
            .map_err(|e| bad("--server", format!("{:?}: {e}", self.server)))?;
        let host = uri.host().filter(|h| !h.is_empty()).ok_or_else(no_host)?;
        Ok(Endpoint {
            tls,
            host: host.to_owned(),
            port: uri.port_u16().unwrap_or(if tls { 443 } else { 80 }),
        })
    }

    /// The plain-link rule (`edgecap_tls::plain_link`, the server asks it too) for an
    /// `http://` server: loopback, or allowed by `--insecure-plaintext` (warned about at
    /// every connect), or refused before any token is sent.
    pub fn plain_link(&self, endpoint: &Endpoint) -> Result<edgecap_tls::PlainLink, SettingsError> {
        let peer = edgecap_tls::Peer::Host(&endpoint.host);
        match edgecap_tls::plain_link(peer, self.insecure_plaintext) {
            edgecap_tls::PlainLink::Refused => {
                Err(bad("--server", edgecap_tls::plain::refused_reason(peer)))
            }
            ok => Ok(ok),
        }
    }

    /// `ws[s]://host:port/agent/v1/connect`.
    pub fn connect_url(&self) -> String {
        let base = match self.server.strip_prefix("https://") {
            Some(rest) => format!("wss://{rest}"),
            None => self.server.replacen("http://", "ws://", 1),
        };
        format!("{}/agent/v1/connect", base.trim_end_matches('/'))
    }
}

/// Parses `key=value` label flags; errors name the flag.
pub fn parse_labels(flags: &[String]) -> Result<BTreeMap<String, String>, SettingsError> {
    let mut out = BTreeMap::new();
    for f in flags.iter().flat_map(|f| f.split(',')) {
        let Some((k, v)) = f.split_once('=') else {
            return Err(bad(
                "--label",
                format!("{f:?} is not key=value (e.g. site=fra1)"),
            ));
        };
        out.insert(k.trim().to_owned(), v.trim().to_owned());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings {
            server: "http://127.0.0.1:8080".into(),
            token: "eca_x".into(),
            state_dir: std::env::temp_dir().join("edgecap-settings-test-no-such-dir"),
            name: "edge0".into(),
            labels: BTreeMap::from([("site".into(), "fra1".into())]),
            config: Config::default(),
            netns: None,
            version: "0.1.0".into(),
            upload: UploadSettings::default(),
            ca: None,
            insecure_plaintext: false,
            max_captures: 16,
        }
    }

    /// Replicas: every listed server is checked, and dials go round them in order.
    #[test]
    fn several_servers_are_each_checked_and_dialled_in_turn() {
        let mut s = settings();
        s.server = "http://127.0.0.1:8080/, http://127.0.0.1:8081".into();
        assert!(s.check().is_ok());
        assert_eq!(
            s.servers(),
            ["http://127.0.0.1:8080", "http://127.0.0.1:8081"]
        );
        assert_eq!(s.with_server(1).server, "http://127.0.0.1:8081");
        assert_eq!(s.with_server(2).server, "http://127.0.0.1:8080");
        assert_eq!(
            s.with_server(1).connect_url(),
            "ws://127.0.0.1:8081/agent/v1/connect"
        );
        s.server = "http://127.0.0.1:8080,127.0.0.1:8081".into();
        assert_eq!(s.check().unwrap_err().setting, "--server");
        s.server = " , ".into();
        assert_eq!(s.check().unwrap_err().setting, "--server");
    }

    #[test]
    fn settings_are_checked_by_name() {
        assert!(settings().check().is_ok());
        let err = |f: &dyn Fn(&mut Settings)| {
            let mut s = settings();
            f(&mut s);
            s.check().unwrap_err().setting
        };
        assert_eq!(err(&|s| s.server = "127.0.0.1:8080".into()), "--server");
        assert_eq!(err(&|s| s.server = "http://".into()), "--server");
        assert_eq!(err(&|s| s.server = "https://".into()), "--server");
        assert_eq!(err(&|s| s.server = "http://a b".into()), "--server");
        assert_eq!(
            err(&|s| {
                s.server = "https://127.0.0.1:8443".into();
                s.ca = Some("/nonexistent/ca.pem".into());
            }),
            "--ca"
        );
        assert_eq!(err(&|s| s.token = " ".into()), "--token");
        assert_eq!(err(&|s| s.token = String::new()), "--token");
        assert_eq!(err(&|s| s.name = "a b".into()), "--name");
        assert_eq!(
            err(&|s| {
                s.labels.insert("a b".into(), "x".into());
            }),
            "--label"
        );
        assert_eq!(
            err(&|s| s.netns = Some("no-such-ns-for-edgecap".into())),
            "--netns"
        );
        assert_eq!(
            settings().connect_url(),
            "ws://127.0.0.1:8080/agent/v1/connect"
        );
        let mut s = settings();
        s.server = "https://edgecap.example".into();
        assert_eq!(s.connect_url(), "wss://edgecap.example/agent/v1/connect");
        assert_eq!(
            s.endpoint().unwrap(),
            Endpoint {
                tls: true,
                host: "edgecap.example".into(),
                port: 443
            }
        );
        s.server = "http://[::1]:9000".into();
        assert_eq!(s.endpoint().unwrap().bare_host(), "::1");
        assert_eq!(s.endpoint().unwrap().port, 9000);
    }

    #[test]
    fn plain_http_only_to_loopback_unless_insecure() {
        let mut s = settings();
        for loopback in ["http://127.0.0.1:1", "http://localhost:1", "http://[::1]:1"] {
            s.server = loopback.into();
            assert!(s.check().is_ok(), "{loopback}");
        }
        s.server = "http://198.18.0.1:8080".into();
        let e = s.check().unwrap_err();
        assert_eq!(e.setting, "--server");
        assert!(
            e.reason.contains("non-loopback") && e.reason.contains("--insecure-plaintext"),
            "{e}"
        );
        s.insecure_plaintext = true;
        assert!(s.check().is_ok());
        assert_eq!(
            s.plain_link(&s.endpoint().unwrap()).unwrap(),
            edgecap_tls::PlainLink::Insecure
        );
    }

    #[test]
    fn labels_from_flags() {
        let l = parse_labels(&["site=fra1,region=eu".into(), "rack = r7".into()]).unwrap();
        assert_eq!(l["site"], "fra1");
        assert_eq!(l["region"], "eu");
        assert_eq!(l["rack"], "r7");
        assert_eq!(
            parse_labels(&["fra1".into()]).unwrap_err().setting,
            "--label"
        );
    }

    #[test]
    fn offered_points_follow_the_configuration() {
        let p = settings().offered_points();
        for builtin in ["pre-firewall", "post-firewall", "egress"] {
            assert!(p.iter().any(|x| x == builtin), "{p:?}");
        }
        assert!(!p.iter().any(|x| x == "post-mitigation"), "{p:?}");
        let mut s = settings();
        s.config = Config::parse(
            "[points.post-mitigation]\nhook = \"prerouting\"\npriority = -149\n\
             [points.after-nat]\nhook = \"postrouting\"\npriority = 200\n",
        )
        .unwrap();
        let p = s.offered_points();
        assert!(p.iter().any(|x| x == "post-mitigation"), "{p:?}");
        assert!(p.iter().any(|x| x == "after-nat"), "{p:?}");
    }
}

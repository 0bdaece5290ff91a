//! Talking to an edgecap server: where it is and who we are (flags, environment, or the client
//! config file), a small blocking HTTP client that unwraps the API envelope, and the people's
//! commands `capture` (fleet mode), `ls`, `status` and `stop`.

mod commands;
mod events;
mod render;
mod traffic;
mod triggers;

use std::path::PathBuf;
use std::time::Duration;

use edgecap_model::Envelope;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

pub use commands::{capture, download, look_back, ls, status, stop};
#[cfg(test)]
pub(crate) use commands::{request_body, simple_body};
pub use events::{EventsArgs, events};
pub use traffic::{TopArgs, TrafficArgs, top, traffic};
pub use triggers::{TriggersArgs, triggers};

use crate::exit::Failure;

/// `--server/--token/--account` as typed, before the environment and the config file.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ConnectArgs {
    /// Base URL of the edgecap server, e.g. http://127.0.0.1:8080 [env: EDGECAP_SERVER].
    #[arg(long)]
    pub server: Option<String>,
    /// API token [env: EDGECAP_TOKEN].
    #[arg(long)]
    pub token: Option<String>,
    /// Account id (32 hex digits) [env: EDGECAP_ACCOUNT] [default: the token's account].
    #[arg(long)]
    pub account: Option<String>,
    /// Client configuration file (TOML with server, token, account, destination, ca keys).
    /// Default: $XDG_CONFIG_HOME/edgecap/client.toml or ~/.config/edgecap/client.toml.
    #[arg(long)]
    pub client_config: Option<PathBuf>,
    /// CA certificate file (PEM) that signed an https server's certificate; only its
    /// certificates are trusted [default: the system's trust store] [env: EDGECAP_CA].
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// Send the API token to a non-loopback server over plain http:// anyway.
    #[arg(long)]
    pub insecure_plaintext: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientFile {
    server: Option<String>,
    token: Option<String>,
    account: Option<String>,
    /// Default `--destination` of fleet captures.
    destination: Option<String>,
    /// Default `--ca`.
    ca: Option<PathBuf>,
}

/// A resolved connection: flags win over environment, environment over the file; the
/// account is `--account`, else `EDGECAP_ACCOUNT`, else the file's when the token is the
/// file's too, else the one the token acts for (asked of the server).
#[derive(Debug, Clone)]
pub struct Conn {
    pub server: String,
    token: String,
    pub account: String,
    /// Where fleet captures write unless `--destination` says otherwise.
    pub destination: Option<String>,
    http: reqwest::blocking::Client,
}

impl ConnectArgs {
    /// True when the user pointed at a server in any of the three ways.
    pub fn wants_server(&self) -> bool {
        self.server.is_some() || std::env::var_os("EDGECAP_SERVER").is_some()
    }

    /// True when the client configuration file (as `--client-config` names it, or the default
    /// one that `edgecap up` writes) names a server.
    pub fn config_names_server(&self) -> Result<bool, Failure> {
        Ok(self.load_file()?.server.is_some())
    }

    pub fn connect(&self) -> Result<Conn, Failure> {
        let file = self.load_file()?;
        let pick = |flag: &Option<String>, env: &str, file: &Option<String>| {
            flag.clone()
                .or_else(|| std::env::var(env).ok())
                .or_else(|| file.clone())
        };
        let server = pick(&self.server, "EDGECAP_SERVER", &file.server).ok_or_else(|| {
            Failure::usage("--server: no server given (flag, EDGECAP_SERVER or client config)")
        })?;
        let token = pick(&self.token, "EDGECAP_TOKEN", &file.token).ok_or_else(|| {
            Failure::usage("--token: no API token given (flag, EDGECAP_TOKEN or client config)")
        })?;
        // The file's account goes with the file's token only: a token from the flag or the
        // environment may belong to another account, whose captures are the ones wanted.
        let token_from_file = self.token.is_none() && std::env::var_os("EDGECAP_TOKEN").is_none();
        let file_account = file.account.filter(|_| token_from_file);
        let account = pick(&self.account, "EDGECAP_ACCOUNT", &file_account);
        if let Some(a) = &account
            && !edgecap_model::ids::is_id(a)
        {
            return Err(Failure::usage(format!(
                "--account: {a:?} is not a 32-hex-digit account id"
            )));
        }
        let ca = self
            .ca
            .clone()
            .or_else(|| std::env::var_os("EDGECAP_CA").map(PathBuf::from))
            .or(file.ca);
        install_tls_provider();
        let mut http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(30));
        if server.starts_with("https://") {
            let tls = edgecap_tls::client_config(ca.as_deref())
                .map_err(|e| Failure::usage(e.to_string()))?;
            http = http.tls_backend_preconfigured((*tls).clone());
        } else if let Some(rest) = server.strip_prefix("http://") {
            // The API token (and any credentials in a request) go in the clear: only to
            // this host, unless the user says otherwise (the agents' rule).
            let host = rest.split('/').next().unwrap_or_default();
            let host = match host.rsplit_once(':') {
                Some((h, port)) if !port.contains(']') => h,
                _ => host,
            };
            let peer = edgecap_tls::Peer::Host(host);
            match edgecap_tls::plain_link(peer, self.insecure_plaintext) {
                edgecap_tls::PlainLink::Refused => {
                    return Err(Failure::usage(format!(
                        "--server: {}",
                        edgecap_tls::plain::refused_reason(peer)
                    )));
                }
                edgecap_tls::PlainLink::Insecure => {
                    eprintln!("warning: {}", edgecap_tls::plain::insecure_warning(peer));
                }
                edgecap_tls::PlainLink::Loopback => {}
            }
        } else {
            return Err(Failure::usage(format!(
                "--server: {server:?} must start with http:// or https://"
            )));
        }
        let http = http
            .build()
            .map_err(|e| Failure::runtime(format!("HTTP client: {e}")))?;
        let mut conn = Conn {
            server: server.trim_end_matches('/').to_owned(),
            token,
            account: account.unwrap_or_default(),
            destination: file.destination,
            http,
        };
        if conn.account.is_empty() {
            conn.account = conn.token_account()?;
        }
        Ok(conn)
    }

    fn load_file(&self) -> Result<ClientFile, Failure> {
        let (path, required) = match &self.client_config {
            Some(p) => (p.clone(), true),
            None => match default_client_config() {
                Some(p) => (p, false),
                None => return Ok(ClientFile::default()),
            },
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text)
                .map_err(|e| Failure::usage(format!("--client-config: {}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
                Ok(ClientFile::default())
            }
            Err(e) => Err(Failure::usage(format!(
                "--client-config: {}: {e}",
                path.display()
            ))),
        }
    }
}

/// reqwest refuses to build a client when it was compiled without a default rustls provider
/// (as the store crate compiles it) and none is installed; ring is the workspace's provider.
pub(crate) fn install_tls_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Err: the process chose a provider already, which serves as well.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// The token in a client config file, if it has one.
pub fn config_token(path: &std::path::Path) -> Option<String> {
    read_client_file(path)?.token
}

/// The server in a client config file, if it has one.
pub fn config_server(path: &std::path::Path) -> Option<String> {
    read_client_file(path)?.server
}

fn read_client_file(path: &std::path::Path) -> Option<ClientFile> {
    toml::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

pub fn default_client_config() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("edgecap").join("client.toml"))
}

impl Conn {
    fn url(&self, path: &str) -> String {
        format!("{}/client/v4/accounts/{}/{path}", self.server, self.account)
    }

    /// The one account the token acts for (`GET /client/v4/accounts`).
    fn token_account(&self) -> Result<String, Failure> {
        #[derive(Deserialize)]
        struct Account {
            id: String,
        }
        let url = format!("{}/client/v4/accounts", self.server);
        let list: Vec<Account> = self
            .send(reqwest::Method::GET, url, None)?
            .unwrap_or_default();
        match &list[..] {
            [one] => Ok(one.id.clone()),
            _ => Err(Failure::usage(format!(
                "--account: the token acts for {} accounts; say which",
                list.len()
            ))),
        }
    }

    /// Sends a request and unwraps the envelope; API errors become one readable message.
    pub fn call<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Option<T>, Failure> {
        self.send(method, self.url(path), body)
    }

    fn send<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        url: String,
        body: Option<&serde_json::Value>,
    ) -> Result<Option<T>, Failure> {
        let mut req = self.http.request(method, url).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req
            .send()
            .map_err(|e| Failure::runtime(format!("cannot reach {}: {e}", self.server)))?;
        let status = resp.status();
        let text = resp
            .text()
            .map_err(|e| Failure::runtime(format!("reading the answer: {e}")))?;
        self.unwrap_envelope(status, &text)
    }

    /// `GET path` for a file (a look-back capture's download), asking for `accept` when given;
    /// an API error becomes one readable message, as for [`Conn::call`].
    pub fn get_file(&self, path: &str, accept: Option<&str>) -> Result<Vec<u8>, Failure> {
        let mut req = self.http.get(self.url(path)).bearer_auth(&self.token);
        if let Some(a) = accept {
            req = req.header(reqwest::header::ACCEPT, a);
        }
        let resp = req
            .send()
            .map_err(|e| Failure::runtime(format!("cannot reach {}: {e}", self.server)))?;
        let status = resp.status();
        if status.is_success() {
            return resp
                .bytes()
                .map(|b| b.to_vec())
                .map_err(|e| Failure::runtime(format!("reading the file: {e}")));
        }
        let text = resp
            .text()
            .map_err(|e| Failure::runtime(format!("reading the answer: {e}")))?;
        let _: Option<Value> = self.unwrap_envelope(status, &text)?;
        Err(Failure::runtime(format!(
            "unexpected answer from {} ({status})",
            self.server
        )))
    }

    fn unwrap_envelope<T: DeserializeOwned>(
        &self,
        status: reqwest::StatusCode,
        text: &str,
    ) -> Result<Option<T>, Failure> {
        let env: Envelope<T> = serde_json::from_str(text).map_err(|e| {
            Failure::runtime(format!(
                "unexpected answer from {} ({status}): {e}: {text:.200}",
                self.server
            ))
        })?;
        if env.success {
            return Ok(env.result);
        }
        let msgs: Vec<String> = env.errors.iter().map(|e| e.message.clone()).collect();
        let message = format!("server refused ({status}): {}", msgs.join("; "));
        // 4xx: the request was wrong (nothing was created); 5xx and others: a failure.
        Err(if status.is_client_error() {
            Failure::usage(message)
        } else {
            Failure::runtime(message)
        })
    }
}

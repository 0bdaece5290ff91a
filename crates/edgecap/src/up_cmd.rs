//! `edgecap up`: the embedded default, in one process. A server on SQLite in a data directory,
//! an agent for this machine, and a local-directory destination under the data directory. The
//! first run creates an account, an API token (printed once, and written to the client config
//! so `edgecap capture|ls|status|stop` need no flags). Its agent keeps its node credential in
//! `<data-dir>/agent/` and enrols, on the first run, with a one-use enrolment token.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use edgecap_server::AppState;
use edgecap_server::db::{accounts, tokens};

use crate::exit::Failure;
use crate::out::outln;
use crate::server_cmd::{DbArgs, ServeArgs};

#[derive(Debug, clap::Args)]
pub struct UpArgs {
    #[command(flatten)]
    pub db: DbArgs,
    #[command(flatten)]
    pub serve: ServeArgs,
    /// This node's name [default: the host name].
    #[arg(long)]
    pub name: Option<String>,
    /// Client configuration to write the server, account, token and destination to
    /// [default: $XDG_CONFIG_HOME/edgecap/client.toml or ~/.config/edgecap/client.toml].
    #[arg(long)]
    pub client_config: Option<PathBuf>,
    /// Run only the server (no agent for this machine).
    #[arg(long)]
    pub no_agent: bool,
    /// With --tls-cert: the CA file (PEM) this machine's agent and the client config trust
    /// for the server [default: the system's trust store]. The certificate must name the
    /// --listen address.
    #[arg(long, requires = "tls_cert")]
    pub ca: Option<PathBuf>,
    #[command(flatten)]
    pub log: crate::observe::LogArgs,
}

pub fn run(a: &UpArgs) -> Result<(), Failure> {
    let (addr, mut config) = a.serve.resolve()?;
    let dir = std::path::absolute(a.db.data_dir()?)
        .map_err(|e| Failure::usage(format!("--data-dir: {e}")))?;
    let captures = dir.join("captures");
    // Its own captures directory is a file root of the server and of its agent.
    let roots = config
        .endpoints
        .file_roots()
        .clone()
        .with(&captures)
        .map_err(|e| Failure::usage(format!("--data-dir: {e}")))?;
    config.endpoints = config.endpoints.with_file_roots(roots);
    let db = DbArgs {
        database: a.db.database.clone(),
        data_dir: Some(dir.clone()),
    };
    let name = a.name.clone().unwrap_or_else(crate::agent_cmd::hostname);
    crate::server_cmd::runtime()?.block_on(async {
        // The port first: when it is taken, nothing has been written to the data directory
        // (database, secrets key, agent token) or the client config yet.
        let listener = crate::server_cmd::bind(addr).await?;
        std::fs::create_dir_all(&captures).map_err(|e| {
            Failure::usage(format!(
                "--data-dir: cannot create {}: {e}",
                captures.display()
            ))
        })?;
        let state = crate::server_cmd::open_state(&a.serve, &db, config).await?;
        let url = format!(
            "{}://{}",
            a.serve.scheme(),
            crate::server_cmd::local_addr(&listener)?
        );
        let destination = format!("file://{}", captures.display());
        let client_path = match &a.client_config {
            Some(p) => p.clone(),
            None => crate::client::default_client_config().ok_or_else(|| {
                Failure::usage("--client-config: no HOME or XDG_CONFIG_HOME; give a path")
            })?,
        };
        let access = api_access(&state, &client_path).await?;
        let ca = match &a.ca {
            Some(p) => {
                Some(std::path::absolute(p).map_err(|e| Failure::usage(format!("--ca: {e}")))?)
            }
            None => None,
        };
        let wrote = write_client_config(&client_path, &url, &access, &destination, ca.as_deref())?;
        let (stop_server, server_stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(edgecap_server::run(listener, state.clone(), async {
            let _ = server_stopped.await;
        }));
        let (stop_agent, agent_stopped) = tokio::sync::oneshot::channel::<()>();
        let agent = if a.no_agent {
            None
        } else {
            let state_dir = dir.join("agent");
            let settings = edgecap_agent::Settings {
                server: url.clone(),
                token: enrolment_token(&state, &name, &state_dir).await?,
                state_dir,
                name: name.clone(),
                labels: [("site".to_owned(), "local".to_owned())].into(),
                config: edgecap_capture::Config::load_or_default(None)
                    .map_err(|e| Failure::usage(format!("agent config: {e}")))?,
                netns: None,
                version: env!("CARGO_PKG_VERSION").to_owned(),
                ca: ca.clone(),
                // The agent dials this process on the listen address: loopback unless
                // --listen says otherwise, and then TLS or the server's own choice.
                insecure_plaintext: a.serve.insecure_plaintext,
                max_captures: edgecap_model::protocol::DEFAULT_MAX_CAPTURES_PER_NODE,
                // The agent allows what the server allows (`--allow-endpoint`).
                upload: edgecap_agent::output::UploadSettings {
                    store: edgecap_store::StoreOptions {
                        endpoints: state.config.endpoints.clone(),
                        ..Default::default()
                    },
                    ..Default::default()
                },
            };
            settings
                .check()
                .map_err(|e| Failure::usage(e.to_string()))?;
            Some(tokio::spawn(edgecap_agent::run(settings, async {
                let _ = agent_stopped.await;
            })))
        };
        Banner {
            url: &url,
            access: &access,
            not_written: wrote.as_deref(),
            client_path: &client_path,
            // Commands need the path only when it is not the one they look at by default.
            client_flag: a
                .client_config
                .as_ref()
                .map(|p| format!(" --client-config {}", p.display()))
                .unwrap_or_default(),
            node: &name,
            destination: &destination,
            no_agent: a.no_agent,
        }
        .print();
        crate::server_cmd::shutdown_signal().await;
        eprintln!("edgecap up: stopping (captures are stopped and their files completed)");
        // The agent first, so its captures report to a server that is still there.
        let _ = stop_agent.send(());
        if let Some(agent) = agent {
            match agent.await {
                Ok(Err(e)) => eprintln!("edgecap up: agent: {e}"),
                Err(e) => eprintln!("edgecap up: agent task: {e}"),
                Ok(Ok(())) => {}
            }
        }
        let _ = stop_server.send(());
        match server.await {
            Ok(r) => r.map_err(|e| Failure::runtime(e.to_string())),
            Err(e) => Err(Failure::runtime(format!("server task: {e}"))),
        }
    })
}

/// The account and API token people use.
struct Access {
    account: String,
    token: String,
    /// True when the token was created by this run (so it is printed).
    new_token: bool,
    /// The account's tenancy, as one line of the banner.
    tenancy: String,
}

/// The first account (created on the first run), and a token for it: the one in the client
/// config if it is still valid here, else a new one.
async fn api_access(state: &AppState, client_path: &Path) -> Result<Access, Failure> {
    let failed = |e: edgecap_server::Error| Failure::runtime(e.to_string());
    let account = match accounts::list(&state.db)
        .await
        .map_err(failed)?
        .into_iter()
        .next()
    {
        Some(a) => a,
        // Single tenant: the account `up` makes captures anything on every node.
        None => {
            let open = edgecap_server::tenancy::Tenancy {
                unrestricted: true,
                ..Default::default()
            };
            accounts::create_with_tenancy(&state.db, "local", &Default::default(), &open)
                .await
                .map_err(failed)?
        }
    };
    let t = accounts::tenancy(&state.db, &account.id)
        .await
        .map_err(failed)?;
    let tenancy = if t.unrestricted {
        "unrestricted (single tenant: this account captures any traffic on every node)".into()
    } else {
        format!(
            "restricted to {} (docs/operations.md, \"Tenancy\")",
            if t.prefixes.is_empty() {
                "no prefixes: captures are refused".to_owned()
            } else {
                t.prefixes.join(", ")
            }
        )
    };
    if let Some(token) = crate::client::config_token(client_path)
        && let Ok(Some(owner)) = tokens::api_account(&state.db, &token).await
        && owner.id == account.id
    {
        return Ok(Access {
            account: account.id,
            token,
            new_token: false,
            tenancy,
        });
    }
    let (_, token) = tokens::create(
        &state.db,
        tokens::Kind::Api,
        Some(&account.id),
        "edgecap up",
    )
    .await
    .map_err(failed)?;
    Ok(Access {
        account: account.id,
        token,
        new_token: true,
        tenancy,
    })
}

/// The local agent's enrolment token: none once its name is enrolled (its credential is in
/// `<data-dir>/agent/`), else a new one that enrols one node and expires in an hour.
async fn enrolment_token(
    state: &AppState,
    name: &str,
    state_dir: &Path,
) -> Result<String, Failure> {
    let enrolled = edgecap_server::db::identities::get(&state.db, name)
        .await
        .map_err(|e| Failure::runtime(e.to_string()))?;
    if enrolled.is_some() && edgecap_agent::identity::exists(state_dir) {
        return Ok(String::new());
    }
    let limits = tokens::Limits {
        expires_on: Some(edgecap_server::clock::after(
            std::time::Duration::from_secs(3600),
        )),
        max_uses: Some(1),
        ..Default::default()
    };
    let (_, secret) =
        tokens::create_limited(&state.db, tokens::Kind::Agent, None, "edgecap up", &limits)
            .await
            .map_err(|e| Failure::runtime(e.to_string()))?;
    Ok(secret)
}

/// Writes the client config unless it belongs to another server. Returns why it was not
/// written, if it was not.
fn write_client_config(
    path: &Path,
    url: &str,
    access: &Access,
    destination: &str,
    ca: Option<&Path>,
) -> Result<Option<String>, Failure> {
    if let Some(existing) = crate::client::config_server(path)
        && existing.trim_end_matches('/') != url
    {
        return Ok(Some(format!(
            "left {} alone: it points at {existing}",
            path.display()
        )));
    }
    let mut text = format!(
        "# Written by `edgecap up`: how edgecap capture|ls|status|stop reach this server.\n\
         server = {url:?}\naccount = {:?}\ntoken = {:?}\ndestination = {destination:?}\n",
        access.account, access.token
    );
    if let Some(ca) = ca {
        text.push_str(&format!("ca = {:?}\n", ca.display().to_string()));
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| {
            Failure::usage(format!(
                "--client-config: cannot create {}: {e}",
                parent.display()
            ))
        })?;
    }
    write_private(path, &text)?;
    Ok(None)
}

/// Writes a file only its owner can read (it holds a secret).
fn write_private(path: &Path, text: &str) -> Result<(), Failure> {
    let cannot = |e: std::io::Error| Failure::runtime(format!("writing {}: {e}", path.display()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(cannot)?;
    f.write_all(text.as_bytes()).map_err(cannot)
}

/// What `up` tells people once it runs.
struct Banner<'a> {
    url: &'a str,
    access: &'a Access,
    /// Why the client config was not written, if it was not.
    not_written: Option<&'a str>,
    client_path: &'a Path,
    client_flag: String,
    node: &'a str,
    destination: &'a str,
    no_agent: bool,
}

impl Banner<'_> {
    fn print(&self) {
        let (url, cfg) = (self.url, &self.client_flag);
        outln!("edgecap is up");
        outln!("  dashboard    {url}/   (log in with the API token below)");
        outln!("  API          {url}   (OpenAPI document: {url}/openapi.json)");
        outln!("  account      {}", self.access.account);
        outln!("  tenancy      {}", self.access.tenancy);
        if self.access.new_token {
            outln!(
                "  API token    {}   (shown once: only its hash is stored)",
                self.access.token
            );
        } else {
            outln!("  API token    the one in {}", self.client_path.display());
        }
        match self.not_written {
            None => outln!(
                "  client       {} (used by capture, ls, status, stop)",
                self.client_path.display()
            ),
            Some(why) => outln!("  client       {why}; pass --server {url} --token ..."),
        }
        outln!("  destination  {}", self.destination);
        if self.no_agent {
            outln!("  node         none (--no-agent)");
        } else {
            outln!("  node         {} (this machine, site=local)", self.node);
            if !crate::server_cmd::is_root() {
                outln!(
                    "               not root: its captures will fail (nftables and NFLOG need \
                     CAP_NET_ADMIN)"
                );
            }
            outln!("try:");
            // Without -w, `capture` is a fleet capture through the server the client config
            // names; server, token, account and destination all come from it.
            outln!(
                "  edgecap capture{cfg} --colo {} --proto icmp --time 10s",
                self.node
            );
            outln!("  edgecap ls{cfg}");
        }
        crate::server_cmd::flush_stdout();
    }
}

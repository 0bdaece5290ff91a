//! `edgecap admin`: accounts, tokens and node identities, straight in the server's database (there is no
//! token to authenticate with before the first one exists). A new token's secret is printed
//! once, on stdout, and only its SHA-256 is stored.

use edgecap_model::AccountLimits;
use edgecap_server::Config;
use edgecap_server::auth::Scope;
use edgecap_server::db::identities::{self, Forgot};
use edgecap_server::db::{Db, accounts, tokens};
use edgecap_server::quota;
use edgecap_server::tenancy::{self, List, Tenancy};
use serde_json::json;

use crate::exit::Failure;
use crate::out::outln;
use crate::server_cmd::DbArgs;

#[derive(Debug, clap::Args)]
pub struct AdminArgs {
    #[command(flatten)]
    pub db: DbArgs,
    #[arg(long, global = true, help = crate::out::JSON_HELP)]
    pub json: bool,
    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum AdminCommand {
    /// Accounts: who owns captures, and their maxima.
    Account {
        #[command(subcommand)]
        command: AccountCommand,
    },
    /// API tokens: each acts for one account.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Enrolment (agent) tokens: what `edgecap agent --token` presents at a node's first
    /// connect.
    AgentToken {
        #[command(subcommand)]
        command: AgentTokenCommand,
    },
    /// Node identities: which credential each node name is bound to; revoke and forget.
    Node {
        #[command(subcommand)]
        command: NodeCommand,
    },
    /// The key that seals bucket credentials at rest.
    SecretsKey {
        #[command(subcommand)]
        command: SecretsKeyCommand,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum SecretsKeyCommand {
    /// Re-seal every stored credential under a new key, which replaces the key file. All or
    /// nothing: on any failure the old key and every credential stay as they were. Stop every
    /// server on the database first (a running server keeps the key it loaded).
    Rotate {
        /// The key file [default: <data-dir>/secrets.key, as `edgecap server`].
        #[arg(long)]
        secrets_key: Option<std::path::PathBuf>,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum AccountCommand {
    /// Create an account; prints its id.
    Create {
        /// A name for people.
        #[arg(long)]
        name: String,
        /// Longest time_limit in seconds (Cloudflare's default: 300).
        #[arg(long, default_value_t = 300)]
        max_time_limit: u64,
        /// Largest packet_limit (Cloudflare's default: 10000).
        #[arg(long, default_value_t = 10_000)]
        max_packet_limit: u64,
        /// Largest byte_limit (Cloudflare's default: 1000000000).
        #[arg(long, default_value_t = 1_000_000_000)]
        max_byte_limit: u64,
        /// A prefix the account owns (IPv4 or IPv6 CIDR; repeat for more): it captures only
        /// packets whose source or destination is under one. Without any (and without
        /// --unrestricted) the account is refused captures until an operator adds some.
        #[arg(long = "prefix", value_name = "CIDR")]
        prefixes: Vec<String>,
        /// A node the account may capture on: a name or a key=value label selector (repeat
        /// for more) [default: every node].
        #[arg(long = "node", value_name = "NAME|KEY=VALUE")]
        nodes: Vec<String>,
        /// Let the account capture anything on every node: for a single-tenant fleet (new
        /// accounts are restricted unless this is given).
        #[arg(long)]
        unrestricted: bool,
    },
    /// List accounts.
    List,
    /// Show an account: its limits and its tenancy (as GET /client/v4/accounts/{id}).
    Show {
        /// Account id (32 hex digits).
        account: String,
    },
    /// The account's quotas (running captures, captures per hour, rules per node, bytes per
    /// day): show them with their use, or override the server's defaults.
    Quota {
        #[command(subcommand)]
        command: QuotaCommand,
    },
    /// The prefixes a restricted account owns (what its captures may see).
    Prefixes {
        #[command(subcommand)]
        command: PrefixCommand,
    },
    /// The nodes a restricted account may capture on (names or key=value selectors; none:
    /// every node).
    Nodes {
        #[command(subcommand)]
        command: NodeSetCommand,
    },
    /// Restrict an account to its prefixes and node set (without prefixes it may then not
    /// capture).
    Restrict {
        /// Account id (32 hex digits).
        account: String,
    },
    /// Let an account capture anything on every node (single tenant).
    Unrestrict {
        /// Account id (32 hex digits).
        account: String,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum PrefixCommand {
    /// Add prefixes (IPv4 or IPv6 CIDRs; a bare address is a /32 or /128).
    Add {
        /// Account id (32 hex digits).
        account: String,
        #[arg(required = true, value_name = "CIDR")]
        cidrs: Vec<String>,
    },
    /// Remove prefixes, as `list` shows them.
    Remove {
        /// Account id (32 hex digits).
        account: String,
        #[arg(required = true, value_name = "CIDR")]
        cidrs: Vec<String>,
    },
    /// List the account's prefixes.
    List {
        /// Account id (32 hex digits).
        account: String,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum NodeSetCommand {
    /// Add node names or key=value label selectors to the node set.
    Add {
        /// Account id (32 hex digits).
        account: String,
        #[arg(required = true, value_name = "NAME|KEY=VALUE")]
        selectors: Vec<String>,
    },
    /// Remove selectors from the node set.
    Remove {
        /// Account id (32 hex digits).
        account: String,
        #[arg(required = true, value_name = "NAME|KEY=VALUE")]
        selectors: Vec<String>,
    },
    /// List the node set (empty: every node).
    List {
        /// Account id (32 hex digits).
        account: String,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum QuotaCommand {
    /// Override some of the account's quotas; each takes a number or `default` (the server's
    /// default again). Captures already running are not stopped.
    Set {
        /// Account id (32 hex digits).
        account: String,
        /// Captures pending or running at once.
        #[arg(long, value_name = "N|default")]
        running: Option<String>,
        /// Captures created in the last hour (rolling).
        #[arg(long, value_name = "N|default")]
        per_hour: Option<String>,
        /// Kernel rules the account's running captures hold on one node (a capture holds
        /// its filter's rules times the hooks of its points).
        #[arg(long, value_name = "N|default")]
        rules_per_node: Option<String>,
        /// Bytes written to destinations in the last 24 hours (rolling), e.g. 10GB; running
        /// captures count their byte budget.
        #[arg(long, value_name = "SIZE|default")]
        bytes_per_day: Option<String>,
        /// Look-back (`type: simple`) requests per minute (rolling); Cloudflare's limit, 1,
        /// is the default.
        #[arg(long, value_name = "N|default")]
        simple_per_minute: Option<String>,
    },
    /// Each quota's limit, where it comes from (account or default) and the current use.
    Show {
        /// Account id (32 hex digits).
        account: String,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum TokenCommand {
    /// Create an API token for an account; prints the secret once.
    Create {
        /// Account id (32 hex digits).
        #[arg(long)]
        account: String,
        /// A name for people (who or what uses it).
        #[arg(long, default_value = "api")]
        name: String,
        /// What it may do, comma-separated: read (list, get, download), write (create, stop,
        /// ownership), tokens (the account's API tokens), nodes (revoke nodes), operator (the
        /// operator API: every account's tenancy) [default: read,write,tokens].
        #[arg(long)]
        scopes: Option<String>,
        /// Stop working after this long (e.g. 30d, 12h) [default: never].
        #[arg(long)]
        expires: Option<String>,
    },
    /// List tokens (never their secrets).
    List,
    /// Revoke an API token: it stops working at once.
    Revoke {
        /// The token's id (from `list`).
        id: String,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum AgentTokenCommand {
    /// Create an enrolment token; prints the secret once.
    Create {
        /// A name for people (which nodes use it).
        #[arg(long, default_value = "agents")]
        name: String,
        /// Stop enrolling after this long (e.g. 24h) [default: never].
        #[arg(long)]
        expires: Option<String>,
        /// Enrol at most this many nodes [default: no limit].
        #[arg(long)]
        uses: Option<u64>,
    },
    /// List enrolment tokens (never their secrets), with their uses and expiry.
    List,
    /// Revoke an enrolment token: it enrols no more nodes (enrolled nodes keep their own
    /// credentials).
    Revoke {
        /// The token's id (from `list`).
        id: String,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum NodeCommand {
    /// List enrolled nodes: when, with which enrolment token, and whether revoked.
    List,
    /// Revoke a node's credential: a running server disconnects it within a second, fails
    /// its running parts ("node revoked") and refuses it from then on.
    Revoke {
        /// The node's name.
        name: String,
    },
    /// Forget a revoked node, freeing its name for a new enrolment.
    Forget {
        /// The node's name.
        name: String,
    },
}

/// Largest `--max-time-limit`: a week.
const MAX_TIME: u64 = 7 * 86_400;

pub fn run(a: &AdminArgs) -> Result<(), Failure> {
    crate::server_cmd::runtime()?.block_on(async {
        let state = a.db.open(Config::default()).await?;
        let db = &state.db;
        let failed = |e: edgecap_server::Error| Failure::runtime(e.to_string());
        match &a.command {
            AdminCommand::Account { command } => match command {
                AccountCommand::Create {
                    name,
                    max_time_limit,
                    max_packet_limit,
                    max_byte_limit,
                    prefixes,
                    nodes,
                    unrestricted,
                } => {
                    let name = check_name(name)?;
                    let tenancy = Tenancy {
                        unrestricted: *unrestricted,
                        prefixes: tenancy::parse_prefixes(prefixes, "--prefix").map_err(usage)?,
                        nodes: tenancy::parse_nodes(nodes, "--node").map_err(usage)?,
                    };
                    let within = |flag: &str, v: u64, max: u64| {
                        if (1..=max).contains(&v) {
                            Ok(v)
                        } else {
                            Err(Failure::usage(format!("{flag}: {v} is outside 1-{max}")))
                        }
                    };
                    let limits = AccountLimits {
                        max_time_limit: within("--max-time-limit", *max_time_limit, MAX_TIME)?
                            as f64,
                        max_packet_limit: within(
                            "--max-packet-limit",
                            *max_packet_limit,
                            u64::from(u32::MAX),
                        )?,
                        max_byte_limit: within(
                            "--max-byte-limit",
                            *max_byte_limit,
                            1_000_000_000_000,
                        )?,
                    };
                    let acc = accounts::create_with_tenancy(db, &name, &limits, &tenancy)
                        .await
                        .map_err(failed)?;
                    if a.json {
                        outln!("{}", json!(acc));
                    } else {
                        outln!("{}", acc.id);
                        eprintln!("created account {:?} ({})", acc.name, acc.id);
                    }
                    if !tenancy.unrestricted && tenancy.prefixes.is_empty() {
                        eprintln!(
                            "account {} is restricted and owns no prefixes: its captures are \
                             refused until `edgecap admin account prefixes add {} <CIDR>...` \
                             (or `edgecap admin account unrestrict {}` on a single-tenant fleet)",
                            acc.id, acc.id, acc.id
                        );
                    }
                }
                AccountCommand::Show { account } => {
                    let id = account_arg(db, account, "ACCOUNT").await?;
                    let acc = accounts::get(db, &id).await.map_err(failed)?;
                    let t = accounts::tenancy(db, &id).await.map_err(failed)?;
                    let q = quota::view(db, &id).await.map_err(failed)?;
                    print_account(&acc, &t, q, a.json);
                }
                AccountCommand::Prefixes { command } => {
                    let (account, edit) = match command {
                        PrefixCommand::Add { account, cidrs } => (account, Some((true, cidrs))),
                        PrefixCommand::Remove { account, cidrs } => (account, Some((false, cidrs))),
                        PrefixCommand::List { account } => (account, None),
                    };
                    edit_tenancy(db, account, a.json, |t| match edit {
                        Some((add, items)) => t.edit(List::Prefixes, add, items, "CIDR"),
                        None => Ok(t.clone()),
                    })
                    .await?;
                }
                AccountCommand::Nodes { command } => {
                    let (account, edit) = match command {
                        NodeSetCommand::Add { account, selectors } => {
                            (account, Some((true, selectors)))
                        }
                        NodeSetCommand::Remove { account, selectors } => {
                            (account, Some((false, selectors)))
                        }
                        NodeSetCommand::List { account } => (account, None),
                    };
                    edit_tenancy(db, account, a.json, |t| match edit {
                        Some((add, items)) => t.edit(List::Nodes, add, items, "NAME|KEY=VALUE"),
                        None => Ok(t.clone()),
                    })
                    .await?;
                }
                AccountCommand::Restrict { account } | AccountCommand::Unrestrict { account } => {
                    let open = matches!(
                        &a.command,
                        AdminCommand::Account {
                            command: AccountCommand::Unrestrict { .. }
                        }
                    );
                    edit_tenancy(db, account, a.json, |t| {
                        Ok(Tenancy {
                            unrestricted: open,
                            ..t.clone()
                        })
                    })
                    .await?;
                }
                AccountCommand::Quota { command } => {
                    quota_command(db, command, a.json).await?;
                }
                AccountCommand::List => {
                    let list = accounts::list(db).await.map_err(failed)?;
                    if a.json {
                        outln!("{}", json!(list));
                    } else {
                        for acc in list {
                            outln!(
                                "{}  {:<20}  time<={}s packets<={} bytes<={}",
                                acc.id,
                                acc.name,
                                acc.max_time_limit,
                                acc.max_packet_limit,
                                acc.max_byte_limit
                            );
                        }
                    }
                }
            },
            AdminCommand::Token { command } => match command {
                TokenCommand::Create {
                    account,
                    name,
                    scopes,
                    expires,
                } => {
                    let name = check_name(name)?;
                    let scopes = scopes
                        .as_deref()
                        .map(|s| Scope::parse_list([s]))
                        .transpose()
                        .map_err(|e| Failure::usage(format!("--scopes: {e}")))?;
                    let limits = tokens::Limits {
                        scopes,
                        expires_on: expiry(expires.as_deref())?,
                        max_uses: None,
                    };
                    let account = account.trim().to_ascii_lowercase();
                    if !edgecap_model::ids::is_id(&account) {
                        return Err(Failure::usage(format!(
                            "--account: {account:?} is not an account id (32 hex digits)"
                        )));
                    }
                    if let Err(edgecap_server::Error::NoAccount(_)) =
                        accounts::get(db, &account).await
                    {
                        return Err(Failure::usage(format!(
                            "--account: no account {account} (see `edgecap admin account list`)"
                        )));
                    }
                    let made = tokens::create_limited(
                        db,
                        tokens::Kind::Api,
                        Some(&account),
                        &name,
                        &limits,
                    )
                    .await;
                    print_secret(made.map_err(failed)?, a.json);
                }
                TokenCommand::List => {
                    let list = tokens::list(db).await.map_err(failed)?;
                    print_tokens(list, a.json);
                }
                TokenCommand::Revoke { id } => {
                    revoke_token(db, tokens::Kind::Api, id, a.json).await?;
                }
            },
            AdminCommand::SecretsKey { command } => match command {
                SecretsKeyCommand::Rotate { secrets_key } => {
                    let path = crate::server_cmd::secrets_key_at(secrets_key.as_deref(), &a.db)?;
                    let done = edgecap_server::credentials::rotate(db, &path)
                        .await
                        .map_err(|e| Failure::runtime(format!("secrets-key rotate: {e}")))?;
                    if a.json {
                        outln!("{}", json!({"rotated": true, "key": path, "message": done}));
                    } else {
                        eprintln!("{done}");
                    }
                }
            },
            AdminCommand::AgentToken { command } => match command {
                AgentTokenCommand::Create {
                    name,
                    expires,
                    uses,
                } => {
                    let name = check_name(name)?;
                    if *uses == Some(0) {
                        return Err(Failure::usage("--uses: must be at least 1"));
                    }
                    let limits = tokens::Limits {
                        scopes: None,
                        expires_on: expiry(expires.as_deref())?,
                        max_uses: *uses,
                    };
                    let made =
                        tokens::create_limited(db, tokens::Kind::Agent, None, &name, &limits).await;
                    print_secret(made.map_err(failed)?, a.json);
                }
                AgentTokenCommand::List => {
                    let list = tokens::list(db).await.map_err(failed)?;
                    let agents = list
                        .into_iter()
                        .filter(|t| t.kind == tokens::Kind::Agent)
                        .collect();
                    print_tokens(agents, a.json);
                }
                AgentTokenCommand::Revoke { id } => {
                    revoke_token(db, tokens::Kind::Agent, id, a.json).await?;
                }
            },
            AdminCommand::Node { command } => node_command(db, command, a.json).await?,
        }
        state.db.close().await;
        Ok(())
    })
}

fn usage(e: tenancy::Invalid) -> Failure {
    Failure::usage(e.to_string())
}

/// An account id argument that names an existing account.
async fn account_arg(db: &Db, account: &str, arg: &str) -> Result<String, Failure> {
    let id = account.trim().to_ascii_lowercase();
    if !edgecap_model::ids::is_id(&id) {
        return Err(Failure::usage(format!(
            "{arg}: {id:?} is not an account id (32 hex digits)"
        )));
    }
    match accounts::get(db, &id).await {
        Ok(_) => Ok(id),
        Err(edgecap_server::Error::NoAccount(_)) => Err(Failure::usage(format!(
            "{arg}: no account {id} (see `edgecap admin account list`)"
        ))),
        Err(e) => Err(Failure::runtime(e.to_string())),
    }
}

/// Reads the account's tenancy, applies `change` (the rules are `edgecap_server::tenancy`'s;
/// an error changes nothing), stores it if it changed, and prints it.
async fn edit_tenancy(
    db: &Db,
    account: &str,
    as_json: bool,
    change: impl FnOnce(&Tenancy) -> Result<Tenancy, tenancy::Invalid>,
) -> Result<(), Failure> {
    let failed = |e: edgecap_server::Error| Failure::runtime(e.to_string());
    let id = account_arg(db, account, "ACCOUNT").await?;
    let before = accounts::tenancy(db, &id).await.map_err(failed)?;
    let after = change(&before).map_err(usage)?;
    if after != before {
        accounts::set_tenancy(db, &id, &after)
            .await
            .map_err(failed)?;
    }
    if as_json {
        outln!("{}", tenancy::tenancy_view(&id, &after));
    } else {
        print_tenancy(&after);
    }
    Ok(())
}

fn print_tenancy(t: &Tenancy) {
    if t.unrestricted {
        outln!("tenancy   unrestricted: captures anything on every node");
    } else {
        outln!("tenancy   restricted to its prefixes and node set");
    }
    outln!(
        "prefixes  {}",
        match (t.prefixes.is_empty(), t.unrestricted) {
            (false, _) => t.prefixes.join(", "),
            (true, false) => "none: captures are refused until an operator adds some".into(),
            (true, true) => "none".into(),
        }
    );
    outln!(
        "nodes     {}",
        if t.nodes.is_empty() {
            "every node".into()
        } else {
            t.nodes.join(", ")
        }
    );
}

fn print_account(acc: &accounts::Account, t: &Tenancy, quotas: serde_json::Value, as_json: bool) {
    if as_json {
        outln!("{}", tenancy::account_view(acc, t, quotas));
        return;
    }
    outln!("id        {}", acc.id);
    outln!("name      {}", acc.name);
    outln!("created   {}", acc.created);
    outln!(
        "limits    time<={}s packets<={} bytes<={}",
        acc.max_time_limit,
        acc.max_packet_limit,
        acc.max_byte_limit
    );
    print_tenancy(t);
    outln!("quotas");
    print_quotas(&quotas);
}

/// `--expires 30d` as the time it ends.
fn expiry(flag: Option<&str>) -> Result<Option<String>, Failure> {
    flag.map(|v| {
        crate::units::parse_duration(v)
            .map(edgecap_server::clock::after)
            .map_err(|e| Failure::usage(format!("--expires: {e}")))
    })
    .transpose()
}

fn print_tokens(list: Vec<tokens::Token>, as_json: bool) {
    if as_json {
        outln!("{}", json!(list));
        return;
    }
    for t in list {
        let what = match t.kind {
            tokens::Kind::Api => Scope::join(&t.scopes),
            tokens::Kind::Agent => match t.max_uses {
                Some(max) => format!("uses {}/{max}", t.uses.unwrap_or(0)),
                None => format!("uses {}", t.uses.unwrap_or(0)),
            },
        };
        outln!(
            "{}  {:<5}  {:<32}  {:<20}  {}  {:<20}  expires {}",
            t.id,
            if t.kind == tokens::Kind::Api {
                "api"
            } else {
                "agent"
            },
            t.account_id.as_deref().unwrap_or("-"),
            t.name,
            t.created,
            what,
            t.expires_on.as_deref().unwrap_or("never")
        );
    }
}

async fn revoke_token(db: &Db, kind: tokens::Kind, id: &str, as_json: bool) -> Result<(), Failure> {
    let id = id.trim().to_ascii_lowercase();
    if !edgecap_model::ids::is_id(&id) {
        return Err(Failure::usage(format!(
            "ID: {id:?} is not a token id (32 hex digits; see `list`)"
        )));
    }
    let done = tokens::revoke(db, kind, &id)
        .await
        .map_err(|e| Failure::runtime(e.to_string()))?;
    if !done {
        return Err(Failure::usage(format!(
            "ID: no such token {id} (see `list`)"
        )));
    }
    if as_json {
        outln!("{}", json!({"id": id, "revoked": true}));
    } else {
        eprintln!("revoked token {id}");
    }
    Ok(())
}

async fn node_command(db: &Db, command: &NodeCommand, as_json: bool) -> Result<(), Failure> {
    let failed = |e: edgecap_server::Error| Failure::runtime(e.to_string());
    let check = |name: &str| {
        edgecap_model::check_hello(name, &Default::default(), &[], "")
            .map(|()| name.to_owned())
            .map_err(|e| Failure::usage(format!("NAME: {}", e.trim_start_matches("hello.name: "))))
    };
    match command {
        NodeCommand::List => {
            let list = identities::list(db).await.map_err(failed)?;
            // The health connected nodes' agents last reported (`docs/operations.md`).
            let health: std::collections::HashMap<String, edgecap_model::NodeHealth> =
                edgecap_server::db::nodes::list(db)
                    .await
                    .map_err(failed)?
                    .into_iter()
                    .filter_map(|n| Some((n.name, n.health?)))
                    .collect();
            if as_json {
                let rows: Vec<serde_json::Value> = list
                    .iter()
                    .map(|n| {
                        let mut v = json!(n);
                        v["health"] = json!(health.get(&n.name));
                        v
                    })
                    .collect();
                outln!("{}", json!(rows));
            } else {
                for n in list {
                    let h = match health.get(&n.name) {
                        None => "health -".to_owned(),
                        Some(h) if h.ready => "ready".to_owned(),
                        Some(h) => format!("not ready ({})", h.problems.join("; ")),
                    };
                    outln!(
                        "{:<24}  enrolled {}  token {}  {}  {h}",
                        n.name,
                        n.enrolled,
                        n.enrolled_with.as_deref().unwrap_or("-"),
                        n.revoked
                            .map(|at| format!("revoked {at}"))
                            .unwrap_or_else(|| "active".into())
                    );
                }
            }
        }
        NodeCommand::Revoke { name } => {
            let name = check(name)?;
            let Some(at) = identities::revoke(db, &name).await.map_err(failed)? else {
                return Err(Failure::usage(format!(
                    "NAME: no enrolled node {name:?} (see `edgecap admin node list`)"
                )));
            };
            if as_json {
                outln!("{}", json!({"name": name, "revoked": at}));
            } else {
                eprintln!(
                    "revoked node {name} ({at}): running servers disconnect it within a second \
                     and fail its running parts; `edgecap admin node forget {name}` frees the name"
                );
            }
        }
        NodeCommand::Forget { name } => {
            let name = check(name)?;
            match identities::forget(db, &name).await.map_err(failed)? {
                Forgot::Done => {
                    if as_json {
                        outln!("{}", json!({"name": name, "forgotten": true}));
                    } else {
                        eprintln!("forgot node {name}: the name can be enrolled again");
                    }
                }
                Forgot::NotRevoked => {
                    return Err(Failure::usage(format!(
                        "NAME: node {name} is not revoked; revoke it first \
                         (`edgecap admin node revoke {name}`)"
                    )));
                }
                Forgot::NoSuchNode => {
                    return Err(Failure::usage(format!("NAME: no enrolled node {name:?}")));
                }
            }
        }
    }
    Ok(())
}

/// The secret on stdout (alone, for scripts), the warning on stderr.
fn print_secret((token, secret): (tokens::Token, String), as_json: bool) {
    if as_json {
        outln!("{}", json!({"token": token, "secret": secret}));
    } else {
        outln!("{secret}");
    }
    eprintln!(
        "created token {} ({:?}); the secret above is shown only now: only its hash is stored",
        token.id, token.name
    );
}

/// A quota flag's value: `default` (Some(None)), a number or a size; None when not given.
fn quota_value(flag: &str, v: Option<&str>, size: bool) -> Result<Option<Option<u64>>, Failure> {
    let Some(v) = v.map(str::trim) else {
        return Ok(None);
    };
    if v == "default" {
        return Ok(Some(None));
    }
    let n = if size {
        edgecap_units::parse_size(v)
    } else {
        v.parse::<u64>()
            .map_err(|_| format!("{v:?} is not a whole number or `default`"))
    };
    let n = n.map_err(|e| Failure::usage(format!("{flag}: {e}")))?;
    if n > i64::MAX as u64 {
        return Err(Failure::usage(format!("{flag}: {v} is too large")));
    }
    Ok(Some(Some(n)))
}

async fn quota_command(db: &Db, command: &QuotaCommand, as_json: bool) -> Result<(), Failure> {
    let failed = |e: edgecap_server::Error| match e {
        edgecap_server::Error::NoAccount(id) => Failure::usage(format!("account: no account {id}")),
        e => Failure::runtime(e.to_string()),
    };
    let account = match command {
        QuotaCommand::Set { account, .. } | QuotaCommand::Show { account } => {
            account.trim().to_ascii_lowercase()
        }
    };
    if !edgecap_model::ids::is_id(&account) {
        return Err(Failure::usage(format!(
            "account: {account:?} is not an account id (32 hex digits)"
        )));
    }
    if let QuotaCommand::Set {
        running,
        per_hour,
        rules_per_node,
        bytes_per_day,
        simple_per_minute,
        ..
    } = command
    {
        let changes = quota::Changes {
            running: quota_value("--running", running.as_deref(), false)?,
            per_hour: quota_value("--per-hour", per_hour.as_deref(), false)?,
            rules_per_node: quota_value("--rules-per-node", rules_per_node.as_deref(), false)?,
            bytes_per_day: quota_value("--bytes-per-day", bytes_per_day.as_deref(), true)?,
            simple_per_minute: quota_value(
                "--simple-per-minute",
                simple_per_minute.as_deref(),
                false,
            )?,
        };
        if changes.is_empty() {
            return Err(Failure::usage(
                "quota set: give at least one of --running, --per-hour, --rules-per-node, \
                 --bytes-per-day, --simple-per-minute",
            ));
        }
        quota::set(db, &account, changes).await.map_err(failed)?;
    }
    edgecap_server::db::accounts::get(db, &account)
        .await
        .map_err(failed)?;
    let view = quota::view(db, &account).await.map_err(failed)?;
    if as_json {
        outln!("{view}");
        return Ok(());
    }
    print_quotas(&view);
    Ok(())
}

/// Each quota of `quota::view` as `used of limit (source)`.
fn print_quotas(view: &serde_json::Value) {
    for (name, key) in [
        ("running captures", "running_captures"),
        ("captures per hour", "captures_per_hour"),
        ("rules per node", "rules_per_node"),
        ("bytes per day", "bytes_per_day"),
        ("simple per minute", "simple_requests_per_minute"),
    ] {
        let q = &view[key];
        outln!(
            "  {name:<18}  {} of {}  ({})",
            q["used"],
            q["limit"],
            q["source"].as_str().unwrap_or("")
        );
    }
}

fn check_name(name: &str) -> Result<String, Failure> {
    let n = name.trim();
    if n.is_empty() || n.len() > 64 || n.chars().any(char::is_control) {
        return Err(Failure::usage(format!(
            "--name: {name:?} must be 1-64 printable characters"
        )));
    }
    Ok(n.to_owned())
}

#[cfg(test)]
mod tests {
    use super::quota_value;

    #[test]
    fn quota_values_are_numbers_sizes_or_default() {
        assert_eq!(quota_value("--running", None, false).unwrap(), None);
        assert_eq!(
            quota_value("--running", Some("default"), false).unwrap(),
            Some(None)
        );
        assert_eq!(
            quota_value("--running", Some("7"), false).unwrap(),
            Some(Some(7))
        );
        assert_eq!(
            quota_value("--bytes-per-day", Some("2GB"), true).unwrap(),
            Some(Some(2_000_000_000))
        );
        for (flag, v, size) in [
            ("--running", "x", false),
            ("--per-hour", "-1", false),
            ("--bytes-per-day", "lots", true),
        ] {
            let e = quota_value(flag, Some(v), size).unwrap_err().message;
            assert!(e.starts_with(flag), "{e}");
        }
    }
}

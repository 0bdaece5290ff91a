//! `edgecap admin`: accounts and tokens, straight in the server's database (there is no
//! token to authenticate with before the first one exists). A new token's secret is printed
//! once, on stdout, and only its SHA-256 is stored.

use edgecap_model::AccountLimits;
use edgecap_server::Config;
use edgecap_server::db::{accounts, tokens};
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
    /// Agent tokens: what `edgecap agent --token` presents.
    AgentToken {
        #[command(subcommand)]
        command: AgentTokenCommand,
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
    },
    /// List accounts.
    List,
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
    },
    /// List tokens (never their secrets).
    List,
}

#[derive(Debug, clap::Subcommand)]
pub enum AgentTokenCommand {
    /// Create an agent token; prints the secret once.
    Create {
        /// A name for people (which nodes use it).
        #[arg(long, default_value = "agents")]
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
                } => {
                    let name = check_name(name)?;
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
                    let acc = accounts::create(db, &name, &limits).await.map_err(failed)?;
                    if a.json {
                        outln!("{}", json!(acc));
                    } else {
                        outln!("{}", acc.id);
                        eprintln!("created account {:?} ({})", acc.name, acc.id);
                    }
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
                TokenCommand::Create { account, name } => {
                    let name = check_name(name)?;
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
                    let made = tokens::create(db, tokens::Kind::Api, Some(&account), &name).await;
                    print_secret(made.map_err(failed)?, a.json);
                }
                TokenCommand::List => {
                    let list = tokens::list(db).await.map_err(failed)?;
                    if a.json {
                        outln!("{}", json!(list));
                    } else {
                        for t in list {
                            outln!(
                                "{}  {:<5}  {:<32}  {:<20}  {}",
                                t.id,
                                if t.kind == tokens::Kind::Api {
                                    "api"
                                } else {
                                    "agent"
                                },
                                t.account_id.as_deref().unwrap_or("-"),
                                t.name,
                                t.created
                            );
                        }
                    }
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
                AgentTokenCommand::Create { name } => {
                    let name = check_name(name)?;
                    let made = tokens::create(db, tokens::Kind::Agent, None, &name).await;
                    print_secret(made.map_err(failed)?, a.json);
                }
            },
        }
        state.db.close().await;
        Ok(())
    })
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

fn check_name(name: &str) -> Result<String, Failure> {
    let n = name.trim();
    if n.is_empty() || n.len() > 64 || n.chars().any(char::is_control) {
        return Err(Failure::usage(format!(
            "--name: {name:?} must be 1-64 printable characters"
        )));
    }
    Ok(n.to_owned())
}

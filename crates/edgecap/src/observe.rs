//! How a long-running process (`server`, `agent`, `up`) is watched: `--log-format` (text or
//! JSON lines on stderr) and `--metrics-listen` (Prometheus metrics and health on their own
//! address). The one owner of these flags; each command flattens what it offers.

use std::net::SocketAddr;

use crate::exit::Failure;

/// The shape of diagnostics on stderr.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line (timestamp, level, target, fields), for log collectors.
    Json,
}

/// `--log-format`, the same flag on `edgecap server`, `agent` and `up`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct LogArgs {
    /// Diagnostics on stderr as text or as one JSON object per line (secrets are redacted
    /// alike in both).
    #[arg(long, value_enum, default_value_t, env = "EDGECAP_LOG_FORMAT")]
    pub log_format: LogFormat,
}

/// `--metrics-listen` on `edgecap server` and `edgecap agent`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct MetricsArgs {
    /// Serve /metrics (Prometheus), /healthz and /readyz on this address, plain HTTP and
    /// unauthenticated: keep it on loopback or a monitoring network (e.g. 127.0.0.1:9187).
    /// The agent serves none without it; the server then moves /metrics off its API
    /// listener.
    #[arg(long, value_name = "ADDR:PORT", env = "EDGECAP_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,
}

impl MetricsArgs {
    /// The address, checked; errors name the flag.
    pub fn addr(&self) -> Result<Option<SocketAddr>, Failure> {
        self.metrics_listen
            .as_deref()
            .map(|v| edgecap_metrics::parse_listen("--metrics-listen", v).map_err(Failure::usage))
            .transpose()
    }

    /// Binds the address, if one was given (before anything is written: a taken port
    /// leaves nothing behind).
    pub async fn bind(&self) -> Result<Option<tokio::net::TcpListener>, Failure> {
        let Some(addr) = self.addr()? else {
            return Ok(None);
        };
        edgecap_metrics::bind("--metrics-listen", addr)
            .await
            .map(Some)
            .map_err(Failure::runtime)
    }
}

/// Serves `probe` on `listener`, if there is one, in a task (aborted when the returned handle
/// drops).
pub fn serve<P: edgecap_metrics::Probe>(
    listener: Option<tokio::net::TcpListener>,
    probe: P,
) -> Option<Serving> {
    listener.map(|listener| {
        let router = edgecap_metrics::router(std::sync::Arc::new(probe));
        tracing::info!(addr = ?listener.local_addr().ok(), "metrics listening");
        Serving(tokio::spawn(edgecap_metrics::serve(
            listener,
            router,
            std::future::pending(),
        )))
    })
}

/// A running metrics listener; dropping it stops it.
#[derive(Debug)]
pub struct Serving(tokio::task::JoinHandle<()>);

impl Drop for Serving {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Sets up diagnostics on stderr at `level` in `format`.
pub fn init_logging(level: &str, format: LogFormat) {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(level))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        log: LogArgs,
        #[command(flatten)]
        metrics: MetricsArgs,
    }

    #[test]
    fn flags_parse_and_name_themselves_when_bad() {
        let cli = Cli::try_parse_from(["x", "--log-format", "json"]).unwrap();
        assert_eq!(cli.log.log_format, LogFormat::Json);
        assert_eq!(cli.metrics.addr().unwrap(), None);
        assert!(Cli::try_parse_from(["x", "--log-format", "xml"]).is_err());
        let cli = Cli::try_parse_from(["x", "--metrics-listen", "127.0.0.1:9187"]).unwrap();
        assert_eq!(
            cli.metrics.addr().unwrap(),
            Some("127.0.0.1:9187".parse().unwrap())
        );
        let cli = Cli::try_parse_from(["x", "--metrics-listen", "9187"]).unwrap();
        let e = cli.metrics.addr().unwrap_err();
        assert_eq!(e.code, 2);
        assert!(e.message.starts_with("--metrics-listen: "), "{e:?}");
    }
}

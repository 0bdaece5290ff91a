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
    use tracing_subscriber::util::SubscriberInitExt;
    subscriber(level, format, std::io::stderr).init();
}

/// The subscriber of [`init_logging`], writing to `writer`: the level filter and the lines
/// in `format`, sqlx's slow-statement warnings shortened ([`ShortSlow`]).
fn subscriber<W>(
    level: &str,
    format: LogFormat,
    writer: W,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(level))
        .with_writer(writer);
    let full = tracing_subscriber::fmt::format::Format::default();
    match format {
        LogFormat::Text => Box::new(builder.event_format(ShortSlow(full, format)).finish()),
        LogFormat::Json => Box::new(
            builder
                .json()
                .event_format(ShortSlow(full.json(), format))
                .finish(),
        ),
    }
}

/// Characters of a slow statement's SQL that its warning keeps.
const STATEMENT_PREFIX: usize = 160;

/// sqlx's warning for a statement slower than its threshold (`sqlx::query` at WARN).
fn is_slow_statement(m: &tracing::Metadata<'_>) -> bool {
    m.target() == "sqlx::query" && *m.level() <= tracing::Level::WARN
}

/// The first [`STATEMENT_PREFIX`] characters of a statement, whitespace runs made one space,
/// and how many characters were left out.
fn statement_prefix(sql: &str) -> (String, usize) {
    let mut words = sql.split_whitespace();
    let mut out = String::new();
    let mut total = 0usize;
    for w in words.by_ref() {
        total += w.chars().count() + usize::from(total > 0);
        if out.chars().count() < STATEMENT_PREFIX {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(w);
        }
    }
    let cut: String = out.chars().take(STATEMENT_PREFIX).collect();
    let left = total - cut.chars().count();
    (cut, left)
}

/// Writes sqlx's slow-statement warnings with a bounded prefix of their SQL, every other
/// event as `F` does: sqlx's own line carries the whole statement, which for a chart of
/// 1,000 nodes names 1,000 parameters (kilobytes a line). The line keeps sqlx's target and
/// message, the time taken and the rows.
struct ShortSlow<F>(F, LogFormat);

#[derive(Default)]
struct SlowFields {
    statement: String,
    elapsed: String,
    rows_returned: u64,
    rows_affected: u64,
}

impl tracing::field::Visit for SlowFields {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        match field.name() {
            "db.statement" => self.statement = value.to_owned(),
            "summary" if self.statement.is_empty() => self.statement = value.to_owned(),
            _ => {}
        }
    }
    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        match field.name() {
            "rows_returned" => self.rows_returned = value,
            "rows_affected" => self.rows_affected = value,
            _ => {}
        }
    }
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "elapsed" => self.elapsed = format!("{value:?}"),
            "db.statement" | "summary" => self.record_str(field, &format!("{value:?}")),
            _ => {}
        }
    }
}

impl<S, N, F> tracing_subscriber::fmt::FormatEvent<S, N> for ShortSlow<F>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'w> tracing_subscriber::fmt::FormatFields<'w> + 'static,
    F: tracing_subscriber::fmt::FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut w: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        use tracing_subscriber::fmt::time::FormatTime;
        if !is_slow_statement(event.metadata()) {
            return self.0.format_event(ctx, w, event);
        }
        let mut f = SlowFields::default();
        event.record(&mut f);
        let (statement, left_out) = statement_prefix(&f.statement);
        let mut ts = String::new();
        tracing_subscriber::fmt::time::SystemTime
            .format_time(&mut tracing_subscriber::fmt::format::Writer::new(&mut ts))?;
        let level = event.metadata().level();
        let message = "slow statement: execution time exceeded alert threshold";
        match self.1 {
            LogFormat::Text => writeln!(
                w,
                "{ts} {level:>5} sqlx::query: {message} statement={statement:?} \
                 left_out={left_out} elapsed={} rows_returned={} rows_affected={}",
                f.elapsed, f.rows_returned, f.rows_affected
            ),
            LogFormat::Json => writeln!(
                w,
                "{}",
                serde_json::json!({
                    "timestamp": ts,
                    "level": level.as_str(),
                    "fields": {
                        "message": message,
                        "statement": statement,
                        "left_out": left_out,
                        "elapsed": f.elapsed,
                        "rows_returned": f.rows_returned,
                        "rows_affected": f.rows_affected,
                    },
                    "target": "sqlx::query",
                })
            ),
        }
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

    /// A slow statement's warning keeps a bounded prefix of its SQL (sqlx's own line, with
    /// every parameter of a 1,000-node query, is not written), in both formats.
    #[test]
    fn slow_statements_log_a_bounded_prefix() {
        #[derive(Clone, Default)]
        struct Buf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let names: Vec<String> = (1..=1000).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT node, t FROM rollup_minutes\n   WHERE node IN ({}) AND t >= $1001",
            names.join(", ")
        );
        for format in [LogFormat::Text, LogFormat::Json] {
            let buf = Buf::default();
            let out = buf.clone();
            let sub = subscriber("warn", format, move || out.clone());
            tracing::subscriber::with_default(sub, || {
                tracing::warn!(
                    target: "sqlx::query",
                    summary = "select node, t …",
                    db.statement = sql.as_str(),
                    rows_returned = 9000u64,
                    "slow statement: execution time exceeded alert threshold"
                );
                tracing::warn!(target: "edgecap_server", "another warning");
            });
            let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
            assert_eq!(text.lines().count(), 2, "{text}");
            assert!(text.contains("another warning"), "{text}");
            assert!(text.contains("slow statement"), "{text}");
            assert!(
                text.contains("SELECT node, t FROM rollup_minutes WHERE node IN ($1, $2"),
                "{text}"
            );
            assert!(text.contains("9000"), "{text}");
            assert!(!text.contains("$999"), "{text}");
            let words = sql.split_whitespace().collect::<Vec<_>>().join(" ");
            let left_out = words.len() - STATEMENT_PREFIX;
            assert!(text.contains(&format!("{left_out}")), "{text}");
            assert!(text.len() < 1000, "{} bytes: {text}", text.len());
        }
    }

    #[test]
    fn statement_prefixes_are_bounded_and_count_what_they_leave_out() {
        assert_eq!(
            statement_prefix("SELECT  1\n FROM x"),
            ("SELECT 1 FROM x".into(), 0)
        );
        let long = "a ".repeat(500);
        let (p, left) = statement_prefix(&long);
        assert_eq!(p.chars().count(), STATEMENT_PREFIX);
        assert_eq!(left, 999 - STATEMENT_PREFIX);
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

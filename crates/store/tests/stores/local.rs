//! file:// destinations through the same sink: the file appears whole, or not at all.

use edgecap_pcap::Format;
use edgecap_store::{Store, StoreError, UploadOptions, UploadSink, layout};
use edgecap_testkit::pcapfile::{assert_capture, packets_for, write_capture};
use edgecap_testkit::servers::TempDir;

use super::s3::{ID, fast};

fn files(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_local_directory_gets_the_whole_file_or_nothing() {
    let dir = TempDir::new("local");
    let url = format!("file://{}", dir.0.display());
    let store = Store::from_url(&url, &fast(), "destination_conf").unwrap();
    let key = layout::node_file(ID, "edge4", Format::Pcapng).unwrap();

    let sink = UploadSink::start(&store, &key, &UploadOptions::default()).unwrap();
    let count = packets_for(11 << 20);
    let (sink, len) = write_capture(sink, "edge4", count);
    assert_eq!(sink.finish().unwrap().uploaded, len);
    assert_eq!(files(&dir.0), vec![key.clone()]);
    assert_capture(&dir.0.join(&key), "edge4", count);

    // An upload abandoned half-way leaves no file, staged parts included.
    let other = layout::node_file(ID, "edge5", Format::Pcapng).unwrap();
    let sink = UploadSink::start(&store, &other, &UploadOptions::default()).unwrap();
    let (sink, _) = write_capture(sink, "edge5", packets_for(7 << 20));
    let report = sink.abort();
    assert!(!report.completed && report.aborted, "{report:?}");
    assert_eq!(files(&dir.0), vec![key]);
}

#[test]
fn a_missing_directory_is_bad_input_naming_the_field() {
    let e = Store::from_url(
        "file:///nonexistent/edgecap-dir",
        &fast(),
        "destination_conf",
    )
    .unwrap_err();
    assert!(matches!(e, StoreError::Invalid { .. }));
    assert_eq!(e.field(), Some("destination_conf"));
    assert!(e.to_string().contains("is not a directory"), "{e}");
}

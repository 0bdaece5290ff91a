//! Azure Blob through Azurite: block uploads of a real capture file read back with tshark,
//! challenges, and refusals at start.

use edgecap_pcap::Format;
use edgecap_store::{
    Credentials, Destination, Secret, Store, StoreError, UploadOptions, UploadSink, layout,
};

use base64::Engine as _;
use edgecap_testkit::azurite::azurite_container;
use edgecap_testkit::pcapfile::{assert_capture, packets_for, write_capture};
use edgecap_testkit::servers::{AZURITE_ACCOUNT, AZURITE_KEY, Server, TempDir};

use super::s3::{ID, block_on, fast, fetch, keys};

fn azure_store(az: &Server, container: &str, dir: &str, key: &str) -> Store {
    let url = format!(
        "azure://{container}/{dir}?account={AZURITE_ACCOUNT}&endpoint={}/{AZURITE_ACCOUNT}",
        az.endpoint()
    );
    let dest = Destination::parse(&url, "destination_conf")
        .unwrap()
        .with_credentials(
            Credentials::AzureAccessKey {
                key: Secret::new(key),
            },
            "destination_conf",
        )
        .unwrap();
    Store::open(&dest, &fast(), "destination_conf").unwrap()
}

#[test]
fn a_capture_streams_to_azure_in_blocks_and_tshark_reads_it() {
    let az = Server::azurite();
    azurite_container(az.port, "pcaps");
    let store = azure_store(&az, "pcaps", "fleet", AZURITE_KEY);
    let key = layout::node_file(ID, "edge3", Format::Pcapng).unwrap();
    let sink = UploadSink::start(&store, &key, &UploadOptions::default()).unwrap();
    let count = packets_for(12 << 20);
    let (sink, len) = write_capture(sink, "edge3", count);
    let report = sink.finish().unwrap();
    assert!(report.completed, "{report}");
    assert_eq!(report.uploaded, len);
    assert_eq!(report.parts, 3);
    assert!(report.peak_buffered <= report.memory_bound);
    // The preflight's staged block was never committed: only the capture is there.
    assert_eq!(keys(&store), vec![format!("fleet/{key}")]);
    let dir = TempDir::new("azure");
    let (file, n) = fetch(&store, &key, &dir);
    assert_eq!(n, len);
    assert_capture(&file, "edge3", count);

    let challenge = layout::ownership_challenge(ID).unwrap();
    block_on(store.put_small(&challenge, "az-token")).unwrap();
    assert_eq!(
        &block_on(store.get_small(&challenge, 64)).unwrap()[..],
        b"az-token"
    );
}

#[test]
fn a_missing_container_or_a_wrong_key_fails_at_start() {
    let az = Server::azurite();
    azurite_container(az.port, "present");
    let key = layout::node_file(ID, "edge3", Format::Pcapng).unwrap();
    let missing = azure_store(&az, "absent", "", AZURITE_KEY);
    let e = UploadSink::start(&missing, &key, &UploadOptions::default()).unwrap_err();
    assert!(matches!(e, StoreError::Unwritable { .. }), "{e}");
    assert!(e.to_string().contains("does not exist"), "{e}");

    // A well-formed key that is not the account's.
    let wrong = base64::engine::general_purpose::STANDARD.encode([7u8; 64]);
    let refused = azure_store(&az, "present", "", &wrong);
    let e = UploadSink::start(&refused, &key, &UploadOptions::default()).unwrap_err();
    assert!(
        e.to_string()
            .contains("access denied (HTTP 403): the credentials were refused"),
        "{e}"
    );
    // Nothing was written by either attempt.
    let good = azure_store(&az, "present", "", AZURITE_KEY);
    assert!(keys(&good).is_empty());
}

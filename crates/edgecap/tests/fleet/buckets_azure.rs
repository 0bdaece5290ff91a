//! The same basics to Azure Blob Storage (an Azurite the test starts): ownership through the
//! API with an account key given as the bucket's credentials, a capture across two nodes,
//! each node's blob opened with tshark holding exactly its packets, and its manifest.

use std::time::Duration;

use serde_json::json;

use crate::bucket::Bucket;
use crate::buckets_s3::{check_manifest, ended};
use crate::capture_common::{Scratch, markers, root_or_skip};
use crate::harness::{Fleet, ServerOpts};

#[test]
fn a_capture_across_two_nodes_lands_in_an_azure_container() {
    if !root_or_skip() {
        return;
    }
    let bucket = Bucket::azure();
    let fleet = Fleet::new(2, ServerOpts::default());
    let own = fleet.own(&bucket);
    let id = fleet.create(json!({"destination_conf": bucket.conf(), "time_limit": 4}));
    fleet.wait_rules(&id, &[0, 1]);
    let counts = [4u32, 6];
    for (i, &n) in counts.iter().enumerate() {
        fleet.send(i, 500 * (i as u32 + 1), n);
    }
    let c = ended(&fleet, &id, Duration::from_secs(30));
    assert_eq!(c["status"], "success", "{c:#}\n{}", fleet.logs());
    let got = Scratch::new("fleet-azure-got");
    let mut expected = vec![format!("edge/{}", own["filename"].as_str().unwrap())];
    for (i, &n) in counts.iter().enumerate() {
        let key = format!("{id}/edge{i}.pcapng");
        let r = &c["node_results"][i];
        assert_eq!(r["file"], key.as_str(), "{r}");
        let file = bucket.fetch(&key, &got.0);
        let first = 500 * (i as u32 + 1);
        assert_eq!(markers(&file), (first..first + n).collect::<Vec<_>>());
        let len = std::fs::metadata(&file).unwrap().len() as usize;
        check_manifest(&bucket, &id, i, r, len);
        expected.push(format!("edge/{key}"));
        expected.push(format!("edge/{id}/edge{i}.json"));
        assert_eq!(fleet.agent_local_files(i), Vec::<std::path::PathBuf>::new());
    }
    expected.sort();
    assert_eq!(bucket.keys(), expected);
}

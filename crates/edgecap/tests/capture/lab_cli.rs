//! `edgecap lab up|down` as a person uses it: the namespaces appear, traffic crosses an edge
//! and is captured there, and `down` removes everything.

use std::process::Command;

use crate::common::*;

fn netns_list() -> String {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn lab_up_builds_a_usable_fleet_and_down_removes_it() {
    if !root_or_skip() {
        return;
    }
    let name = format!("eclc{:06x}", rand::random::<u32>() & 0xff_ffff);
    let up = Command::new(BIN)
        .args(["lab", "up", "--name", &name, "--edges", "2"])
        .output()
        .unwrap();
    // Remove the lab even if an assertion below fails.
    struct Down(String);
    impl Drop for Down {
        fn drop(&mut self) {
            let _ = Command::new(BIN)
                .args(["lab", "down", "--name", &self.0])
                .status();
        }
    }
    let guard = Down(name.clone());
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let listed = netns_list();
    for ns in ["src", "edge0", "edge1", "origin"] {
        assert!(
            listed.contains(&format!("{name}-{ns}")),
            "{name}-{ns} missing: {listed}"
        );
    }
    let text = String::from_utf8_lossy(&up.stdout);
    assert!(text.contains("198.18.2.1"), "edge1 address shown: {text}");

    let lab = edgecap_lab::Lab::attach(&name).unwrap();
    let scratch = Scratch::new("labcli");
    let out = scratch.path("e1.pcapng");
    let run = start(
        &format!("{name}-edge1"),
        &[
            "--proto",
            "udp",
            "--packets",
            "3",
            "-w",
            out.to_str().unwrap(),
        ],
    );
    let packets: Vec<Vec<u8>> = (1..=3)
        .map(|i| {
            edgecap_lab::packet::Packet::udp(
                lab.src_addr(1, false),
                lab.origin_addr(1, false),
                1000,
                2000,
            )
            .marker(i)
            .build()
            .unwrap()
        })
        .collect();
    lab.send(1, &packets).unwrap();
    let done = run.wait(std::time::Duration::from_secs(10));
    assert!(done.status.success(), "{}", done.stderr);
    assert_eq!(markers(&out), vec![1, 2, 3]);

    drop(guard);
    let listed = netns_list();
    assert!(
        !listed.contains(&name),
        "lab down left namespaces: {listed}"
    );
}

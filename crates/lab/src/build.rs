//! The setup commands of a lab, after its namespaces exist: sysctls, veth pairs, addresses,
//! permanent neighbours, routes and the silent-origin table.

use std::thread;
use std::time::{Duration, Instant};

use crate::cmd::{self, ip_batch};
use crate::plan::{
    self, EDGE_HOST, END_HOST, Link, cidr, ifindex, link_addr, link_mac, link_prefix,
};
use crate::{Lab, LabError};

/// Set in every namespace before its interfaces exist (`default.*` is copied at creation):
/// no duplicate address detection, no router solicitations or advertisements, and no reverse
/// path filter, so crafted traffic flows from the first packet and spoofed sources pass.
const COMMON_SYSCTLS: &[&str] = &[
    "net.ipv6.conf.all.accept_dad=0",
    "net.ipv6.conf.default.accept_dad=0",
    "net.ipv6.conf.default.dad_transmits=0",
    "net.ipv6.conf.default.router_solicitations=0",
    "net.ipv6.conf.all.accept_ra=0",
    "net.ipv6.conf.default.accept_ra=0",
    "net.ipv4.conf.all.rp_filter=0",
    "net.ipv4.conf.default.rp_filter=0",
];

/// Edges forward in both families and never send redirects.
const EDGE_SYSCTLS: &[&str] = &[
    "net.ipv4.ip_forward=1",
    "net.ipv6.conf.all.forwarding=1",
    "net.ipv4.conf.all.send_redirects=0",
    "net.ipv4.conf.default.send_redirects=0",
];

/// The origin's silencing table: nothing in, nothing out, except on loopback. AF_PACKET
/// senders (reverse traffic) bypass these hooks, so `Lab::send_from(Direction::Reverse..)`
/// still works.
const SILENT_ORIGIN: &str = "table inet lab_origin {
    chain input { type filter hook input priority filter; policy drop; iif lo accept; }
    chain output { type filter hook output priority filter; policy drop; oif lo accept; }
}
";

/// Configures a lab whose namespaces were just created.
pub(crate) fn configure(lab: &Lab) -> Result<(), LabError> {
    for ns in lab.namespaces() {
        let mut args = vec!["-q", "-w"];
        args.extend_from_slice(COMMON_SYSCTLS);
        if (0..lab.edges()).any(|i| lab.edge_ns(i) == ns) {
            args.extend_from_slice(EDGE_SYSCTLS);
        }
        cmd::run(cmd::netns_exec(&ns, "sysctl", args), None)?;
    }
    ip_batch(None, &veth_lines(lab), false)?;
    ip_batch(Some(lab.src_ns()), &src_lines(lab), false)?;
    for i in 0..lab.edges() {
        ip_batch(Some(lab.edge_ns(i)), &edge_lines(i), false)?;
        lab.run_in_with_input(
            lab.edge_ns(i),
            "nft",
            ["-f", "-"],
            &crate::pipeline::ruleset(),
        )?;
    }
    ip_batch(Some(lab.origin_ns()), &origin_lines(lab), false)?;
    if lab.silent_origin() {
        lab.run_in_with_input(lab.origin_ns(), "nft", ["-f", "-"], SILENT_ORIGIN)?;
    }
    for ns in lab.namespaces() {
        wait_operational(&ns)?;
    }
    Ok(())
}

/// How long a new lab may take until every veth is operationally up.
const UP_TIMEOUT: Duration = Duration::from_secs(10);

/// Waits until every veth in `ns` is operationally UP. A veth gets its qdisc only when the
/// kernel's link watcher has seen the carrier come on; until then frames are dropped, so a
/// lab is returned only once that happened and the first crafted packet gets through.
fn wait_operational(ns: &str) -> Result<(), LabError> {
    let deadline = Instant::now() + UP_TIMEOUT;
    loop {
        let out = cmd::run(cmd::ip(["-n", ns, "-br", "link"]), None)?;
        let down: Vec<&str> = out
            .lines()
            .filter_map(|l| {
                let mut cols = l.split_whitespace();
                let (name, state) = (cols.next()?, cols.next()?);
                (name != "lo" && state != "UP").then_some(name)
            })
            .collect();
        if down.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(LabError::Command {
                command: format!("ip -n {ns} -br link"),
                status: "timeout".into(),
                stderr: format!(
                    "interfaces not up after {UP_TIMEOUT:?}: {}",
                    down.join(", ")
                ),
            });
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// Both veth pairs of every edge, each end created directly in its namespace, with the fixed
/// interface indexes of [`plan::ifindex`] (the two ends of a pair never share an index, which
/// makes the kernel process their carrier-on events at once instead of up to 1 s later).
fn veth_lines(lab: &Lab) -> Vec<String> {
    let mut lines = Vec::new();
    for i in 0..lab.edges() {
        let mac = |link, host| plan::mac_string(&link_mac(link, i, host));
        lines.push(format!(
            "link add {} netns {} index {} address {} type veth peer name {} netns {} index {} address {}",
            plan::src_ifname(i),
            lab.src_ns(),
            ifindex(Link::SrcEdge, i, END_HOST),
            mac(Link::SrcEdge, END_HOST),
            plan::EDGE_IF_SRC_SIDE,
            lab.edge_ns(i),
            ifindex(Link::SrcEdge, i, EDGE_HOST),
            mac(Link::SrcEdge, EDGE_HOST),
        ));
        lines.push(format!(
            "link add {} netns {} index {} address {} type veth peer name {} netns {} index {} address {}",
            plan::EDGE_IF_ORIGIN_SIDE,
            lab.edge_ns(i),
            ifindex(Link::EdgeOrigin, i, EDGE_HOST),
            mac(Link::EdgeOrigin, EDGE_HOST),
            plan::origin_ifname(i),
            lab.origin_ns(),
            ifindex(Link::EdgeOrigin, i, END_HOST),
            mac(Link::EdgeOrigin, END_HOST),
        ));
    }
    lines
}

/// Address, link up and permanent neighbour entry of one end of a link, both families.
fn link_end(lines: &mut Vec<String>, dev: &str, link: Link, edge: usize, me: u8, peer: u8) {
    for v6 in [false, true] {
        let addr = link_addr(link, edge, me, v6);
        let len = link_prefix(link, edge, v6).1;
        let nodad = if v6 { " nodad" } else { "" };
        lines.push(format!("addr add {addr}/{len} dev {dev}{nodad}"));
    }
    lines.push(format!("link set {dev} up"));
    let peer_mac = plan::mac_string(&link_mac(link, edge, peer));
    for v6 in [false, true] {
        let peer_addr = link_addr(link, edge, peer, v6);
        lines.push(format!(
            "neigh replace {peer_addr} lladdr {peer_mac} dev {dev} nud permanent"
        ));
    }
}

/// A route to the far link of edge `i` via the edge, both families.
fn routes_via_edge(lines: &mut Vec<String>, dev: &str, near: Link, far: Link, edge: usize) {
    for v6 in [false, true] {
        let to = cidr(link_prefix(far, edge, v6));
        let via = link_addr(near, edge, EDGE_HOST, v6);
        lines.push(format!("route add {to} via {via} dev {dev}"));
    }
}

fn src_lines(lab: &Lab) -> Vec<String> {
    let mut lines = vec!["link set lo up".to_string()];
    for i in 0..lab.edges() {
        let dev = plan::src_ifname(i);
        link_end(&mut lines, &dev, Link::SrcEdge, i, END_HOST, EDGE_HOST);
        routes_via_edge(&mut lines, &dev, Link::SrcEdge, Link::EdgeOrigin, i);
    }
    lines
}

fn edge_lines(i: usize) -> Vec<String> {
    let mut lines = vec!["link set lo up".to_string()];
    let (to_src, to_origin) = (plan::EDGE_IF_SRC_SIDE, plan::EDGE_IF_ORIGIN_SIDE);
    link_end(&mut lines, to_src, Link::SrcEdge, i, EDGE_HOST, END_HOST);
    link_end(
        &mut lines,
        to_origin,
        Link::EdgeOrigin,
        i,
        EDGE_HOST,
        END_HOST,
    );
    lines
}

fn origin_lines(lab: &Lab) -> Vec<String> {
    let mut lines = vec!["link set lo up".to_string()];
    for i in 0..lab.edges() {
        let dev = plan::origin_ifname(i);
        link_end(&mut lines, &dev, Link::EdgeOrigin, i, END_HOST, EDGE_HOST);
        routes_via_edge(&mut lines, &dev, Link::EdgeOrigin, Link::SrcEdge, i);
    }
    lines
}

//! The nftables side of the benchmark, all inside the lab's edge namespace through `nft`
//! (argv lists, never a shell): the "offered" counter every reader is judged against, the
//! logging rule tcpdump needs (tcpdump/libpcap never install one), and readiness checks.

use edgecap_lab::Lab;

use crate::exit::Failure;

/// Port the generator sends to (discard); every rule below matches only it.
pub const DPORT: u16 = 9;

/// Counts every benchmark packet before any capture rule sees it. Priority -400 runs before
/// edgecap's pre-firewall chain (-310) and the tcpdump chain (-310), so "offered" is measured
/// by the same rule, at the same point, whichever reader is under test.
const OFFERED_TABLE: &str = "bench_offered";
const TCPDUMP_TABLE: &str = "bench_tcpdump";
/// Counts benchmark packets the edge forwarded (at postrouting, after every other chain).
const FORWARDED_TABLE: &str = "bench_forwarded";

fn nft_script(lab: &Lab, ns: &str, script: &str) -> Result<(), Failure> {
    lab.run_in_with_input(ns, "nft", ["-f", "-"], script)
        .map(|_| ())
        .map_err(|e| Failure::runtime(format!("nft in {ns}: {e}")))
}

/// Installs the counter-only table measuring what was offered to the edge.
pub fn install_offered(lab: &Lab, ns: &str) -> Result<(), Failure> {
    let script = format!(
        "table inet {OFFERED_TABLE} {{\n\
         \tcounter offered {{ }}\n\
         \tchain pre {{ type filter hook prerouting priority -400; policy accept; \
         udp dport {DPORT} counter name \"offered\"; }}\n}}\n"
    );
    nft_script(lab, ns, &script)
}

/// Installs the counter-only table measuring what the edge forwarded.
pub fn install_forwarded(lab: &Lab, ns: &str) -> Result<(), Failure> {
    let script = format!(
        "table inet {FORWARDED_TABLE} {{\n\
         \tcounter forwarded {{ }}\n\
         \tchain post {{ type filter hook postrouting priority 400; policy accept; \
         udp dport {DPORT} counter name \"forwarded\"; }}\n}}\n"
    );
    nft_script(lab, ns, &script)
}

/// Reads the forwarded counter and zeroes it.
pub fn take_forwarded(lab: &Lab, ns: &str) -> Result<u64, Failure> {
    take(lab, ns, FORWARDED_TABLE, "forwarded")
}

/// Reads the offered counter and zeroes it in one atomic step, so a measurement's value
/// never includes packets of the one before.
pub fn take_offered(lab: &Lab, ns: &str) -> Result<u64, Failure> {
    take(lab, ns, OFFERED_TABLE, "offered")
}

fn take(lab: &Lab, ns: &str, table: &str, counter: &str) -> Result<u64, Failure> {
    let out = lab
        .run_in(
            ns,
            "nft",
            ["-j", "reset", "counter", "inet", table, counter],
        )
        .map_err(|e| Failure::runtime(format!("reading the {counter} counter: {e}")))?;
    counter_packets(&out).ok_or_else(|| {
        Failure::runtime(format!(
            "no packet count in `nft -j reset counter` output: {out}"
        ))
    })
}

/// Extracts `packets` from `nft -j list|reset counter` output.
fn counter_packets(json: &str) -> Option<u64> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    v.get("nftables")?
        .as_array()?
        .iter()
        .find_map(|item| item.get("counter")?.get("packets")?.as_u64())
}

/// The rule edgecap would install, for tcpdump: same hook, priority and snaplen. The
/// queue-threshold stays at the kernel default because libpcap never configures the NFLOG
/// instance (no nlbufsiz, qthreshold or timeout), so this is the best tcpdump can get.
pub fn install_tcpdump_rule(lab: &Lab, ns: &str, group: u16) -> Result<(), Failure> {
    let script = format!(
        "table inet {TCPDUMP_TABLE} {{\n\
         \tchain pre {{ type filter hook prerouting priority -310; policy accept; \
         udp dport {DPORT} counter log group {group} snaplen 65531; }}\n}}\n"
    );
    nft_script(lab, ns, &script)
}

/// Removes the tcpdump rule. It must go before the next measurement: a leftover rule on the
/// same group would make the next reader receive every packet twice.
pub fn remove_tcpdump_rule(lab: &Lab, ns: &str) -> Result<(), Failure> {
    // Declaring the table first makes the delete succeed whether or not it exists.
    let script = format!("table inet {TCPDUMP_TABLE}\ndelete table inet {TCPDUMP_TABLE}\n");
    nft_script(lab, ns, &script)
}

/// The `bench observe --firewall` table.
const FIREWALL_TABLE: &str = "bench_firewall";

/// A stateless edge firewall on the forward hook (`bench observe --firewall`): sources no
/// edge should see from outside dropped, ICMP and a few services (the benchmark's port among
/// them) accepted, everything else dropped. It runs after the observer's pre-firewall chain.
pub fn install_firewall(lab: &Lab, ns: &str) -> Result<(), Failure> {
    let script = format!(
        "table inet {FIREWALL_TABLE} {{\n\
         \tchain forward {{ type filter hook forward priority 0; policy drop;\n\
         \t\tip saddr {{ 0.0.0.0/8, 10.0.0.0/8, 100.64.0.0/10, 127.0.0.0/8, 169.254.0.0/16, \
         172.16.0.0/12, 192.168.0.0/16, 224.0.0.0/4, 240.0.0.0/4 }} drop\n\
         \t\tip6 saddr {{ ::1/128, fc00::/7, fe80::/10, ff00::/8 }} drop\n\
         \t\tmeta l4proto {{ icmp, ipv6-icmp }} accept\n\
         \t\ttcp dport {{ 22, 80, 443 }} accept\n\
         \t\tudp dport {{ {DPORT}, 53, 123, 443 }} accept\n\
         \t}}\n}}\n"
    );
    nft_script(lab, ns, &script)
}

/// The `bench observe --bounds` table: what a chain at the observer's hooks costs before
/// anything the observer's rule does.
const BOUND_TABLE: &str = "bench_observer_bound";

/// One base chain per hook of the observer's points (`(hook name, priority, ingress device)`),
/// empty or with one bare `counter` rule. The chains accept every packet, like the observer's.
pub fn install_bound(
    lab: &Lab,
    ns: &str,
    hooks: &[(&str, i32, Option<&str>)],
    with_counter: bool,
) -> Result<(), Failure> {
    let mut script = format!("table inet {BOUND_TABLE} {{\n");
    for (i, (hook, priority, device)) in hooks.iter().enumerate() {
        let device = device.map_or(String::new(), |d| format!(" device \"{d}\""));
        let rule = if with_counter { " counter;" } else { "" };
        script.push_str(&format!(
            "\tchain c{i} {{ type filter hook {hook}{device} priority {priority}; \
             policy accept;{rule} }}\n"
        ));
    }
    script.push_str("}\n");
    nft_script(lab, ns, &script)
}

/// Removes the bound table, if there.
pub fn remove_bound(lab: &Lab, ns: &str) -> Result<(), Failure> {
    let script = format!("table inet {BOUND_TABLE}\ndelete table inet {BOUND_TABLE}\n");
    nft_script(lab, ns, &script)
}

/// True once an edgecap capture table (`edgecap_<id>`) exists in `ns`: edgecap installs it
/// only after binding the group, so from then on it is reading.
pub fn edgecap_table_present(lab: &Lab, ns: &str) -> Result<bool, Failure> {
    let out = lab
        .run_in(ns, "nft", ["list", "tables"])
        .map_err(|e| Failure::runtime(format!("listing nft tables: {e}")))?;
    Ok(out.lines().any(|l| l.contains(" edgecap_")))
}

#[cfg(test)]
mod tests {
    use super::counter_packets;

    #[test]
    fn reads_packets_from_nft_json() {
        let out = r#"{"nftables": [{"metainfo": {"version": "1.0.6", "json_schema_version": 1}},
            {"counter": {"family": "inet", "name": "offered", "table": "bench_offered",
            "handle": 2, "packets": 123456, "bytes": 9}}]}"#;
        assert_eq!(counter_packets(out), Some(123_456));
    }

    #[test]
    fn no_counter_is_none() {
        assert_eq!(counter_packets(r#"{"nftables": [{"metainfo": {}}]}"#), None);
        assert_eq!(counter_packets("not json"), None);
    }
}

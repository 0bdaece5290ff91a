//! `bench dispatch --simple`: look-back (`type: simple`) captures on the same simulated
//! fleet. Every simulated node's ring answers a query with `--samples-per-node` synthetic
//! samples: valid UDP packets to port 53 (what the rounds' filter asks for), at most 160
//! bytes each with their original length, spread over the query's window. Per round: one
//! `POST /pcaps` with `type: simple`; the server asks every node, merges their answers and
//! stores the file before it answers, so **create -> success** is the request's time, and the
//! answer must already say `success` with every node answered. Then the file is downloaded
//! (pcapng) and its packets counted: they must be `min(packet_limit, agents x samples)`.
//!
//! Each round creates through an account of its own, made before the server starts: a
//! look-back capture is limited per account per minute (Cloudflare's one a minute), and that
//! limit is not what is measured here.

use std::sync::Arc;
use std::time::{Duration, Instant};

use edgecap_lab::packet::Packet;
use edgecap_model::lookback::{RingQuery, WireSample, hex};
use edgecap_server::sim::{Script, Sent};
use serde_json::json;

use crate::api::Api;
use crate::exit::Failure;

/// Bytes of a packet a ring keeps (the observer's snaplen).
const SNAPLEN: usize = 160;

/// Original lengths of the synthetic samples, in turn: small, medium and full-size packets.
const LENGTHS: [usize; 4] = [80, 200, 600, 1400];

/// The sampling rate the synthetic samples say they stand for (the observer's default).
const ONE_IN: u64 = 64;

/// The script of simulated agent `i`: its ring answers with `per_node` samples; what it
/// sends is counted in `sent`.
pub fn script(i: usize, per_node: usize, sent: Arc<Sent>) -> Result<Script, Failure> {
    // Addresses in 198.18.0.0/15: a source per node, one destination.
    let src = [198, 18 + ((i >> 16) & 1) as u8, (i >> 8) as u8, i as u8];
    let mut packets = Vec::with_capacity(per_node);
    for j in 0..per_node {
        let len = LENGTHS[j % LENGTHS.len()];
        let p = Packet::udp(src, [198, 19, 0, 53], 40_000 + (j % 20_000) as u16, 53)
            .total_len(len)
            .build()
            .map_err(|e| Failure::runtime(format!("crafting a sample: {e}")))?;
        packets.push((hex(&p[..p.len().min(SNAPLEN)]), len as u32));
    }
    let ring = move |q: &RingQuery| -> Vec<WireSample> {
        let span = q.to_ns.saturating_sub(q.from_ns).max(1);
        let n = packets.len() as u64;
        packets
            .iter()
            .enumerate()
            .map(|(j, (data, orig_len))| WireSample {
                // Spread over the window; nodes apart by a few nanoseconds.
                ts_ns: q.from_ns + span * (j as u64 + 1) / (n + 1) + i as u64,
                orig_len: *orig_len,
                point: "pre-firewall".into(),
                ifindex: 2,
                one_in: ONE_IN,
                data: data.clone(),
            })
            .collect()
    };
    Ok(Script {
        ring: Some(Arc::new(ring)),
        rollups: None,
        sent,
    })
}

/// What the look-back rounds of one fleet size measured.
#[derive(Debug, Default)]
pub struct SimpleMeasured {
    /// Per round: request sent -> the answer (`success`, every node answered).
    pub created: Vec<Duration>,
    /// Per round: nodes that answered.
    pub answered: Vec<u64>,
    /// Samples, answer messages and their bytes the agents sent over all rounds.
    pub samples: u64,
    pub answer_messages: u64,
    pub answer_bytes: u64,
    /// Per round: packets and bytes of the downloaded file (pcapng).
    pub file_packets: Vec<u64>,
    pub file_bytes: Vec<u64>,
}

/// One look-back capture over the fleet through `api` (an account of its own); checks the
/// answer and the file against what the agents were scripted to send.
pub async fn round(
    api: &Api,
    n: usize,
    per_node: usize,
    packet_limit: u64,
    sent: &Sent,
    m: &mut SimpleMeasured,
) -> Result<(), Failure> {
    let body = json!({
        "type": "simple", "system": "magic-transit", "time_limit": 60,
        "packet_limit": packet_limit, "nodes": ["site=bench"],
        "filter_v1": {"protocol": 17, "destination_port": 53},
    });
    let before = (
        Sent::get(&sent.samples),
        Sent::get(&sent.answer_messages),
        Sent::get(&sent.answer_bytes),
    );
    let t0 = Instant::now();
    let c = api.call(reqwest::Method::POST, "pcaps", Some(body)).await?;
    let took = t0.elapsed();
    let id = c["id"].as_str().unwrap_or_default().to_owned();
    if c["status"] != "success" {
        return Err(Failure::runtime(format!(
            "look-back capture {id} is {} on creation: {}",
            c["status"], c["error_message"]
        )));
    }
    let parts = c["node_results"].as_array().cloned().unwrap_or_default();
    let answered = parts.iter().filter(|p| p["status"] == "success").count();
    if answered != n {
        let missing: Vec<String> = parts
            .iter()
            .filter(|p| p["status"] != "success")
            .take(5)
            .map(|p| format!("{}: {}", p["node"], p["error_message"]))
            .collect();
        return Err(Failure::runtime(format!(
            "look-back capture {id}: {answered} of {n} nodes answered ({})",
            missing.join("; ")
        )));
    }
    let file = api
        .download(&format!("pcaps/{id}/download"), "application/x-pcapng")
        .await?;
    let packets = count(&file)?;
    let expected = packet_limit.min((n * per_node) as u64);
    if packets != expected {
        return Err(Failure::runtime(format!(
            "look-back capture {id}: the file holds {packets} packets, expected {expected} \
             (min of packet_limit {packet_limit} and {n} nodes x {per_node} samples)"
        )));
    }
    m.created.push(took);
    m.answered.push(answered as u64);
    m.samples += Sent::get(&sent.samples) - before.0;
    m.answer_messages += Sent::get(&sent.answer_messages) - before.1;
    m.answer_bytes += Sent::get(&sent.answer_bytes) - before.2;
    m.file_packets.push(packets);
    m.file_bytes.push(file.len() as u64);
    Ok(())
}

/// Packets in a capture file held in memory, by edgecap's reader.
fn count(file: &[u8]) -> Result<u64, Failure> {
    let bad = |e: edgecap_pcap::read::ReadError| {
        Failure::runtime(format!("the look-back file does not read: {e}"))
    };
    let mut r = edgecap_pcap::read::Reader::new(std::io::Cursor::new(file)).map_err(bad)?;
    let mut n = 0;
    while r.next_packet().map_err(bad)?.is_some() {
        n += 1;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_valid_packets_of_at_most_160_bytes_inside_the_window() {
        let s = script(7, 6, Arc::default()).unwrap();
        let q = RingQuery {
            query_id: "0".repeat(32),
            filter_v1: serde_json::Value::Null,
            filter: None,
            prefixes: None,
            points: vec![],
            from_ns: 1_000_000_000_000,
            to_ns: 1_060_000_000_000,
            limit: 100,
        };
        let samples = (s.ring.unwrap())(&q);
        assert_eq!(samples.len(), 6);
        for w in &samples {
            assert!((q.from_ns..q.to_ns).contains(&w.ts_ns));
            let data = edgecap_model::lookback::unhex(&w.data).unwrap();
            assert!(data.len() <= SNAPLEN && data.len() <= w.orig_len as usize);
            let h = edgecap_observe::rollup::headers(&data).expect("an IP packet");
            assert_eq!((h.proto, h.ports.map(|p| p.1)), (17, Some(53)));
        }
        assert_eq!(samples[3].orig_len, 1400);
    }
}

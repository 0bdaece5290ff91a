//! Trigger test traffic, shared by the trigger tests (`triggers.rs`: a real agent and a hub of
//! the test's own; `events.rs`: real agents and a real server): a flood from many sources to
//! one destination, benign TCP beside it, and a pacer that sends either at a given rate.
//! Every flow is bounded by the packets it is given.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use edgecap_lab::Lab;
use edgecap_lab::packet::{Packet, TcpFlags};

/// The UDP port floods go to.
pub const FLOOD_PORT: u16 = 9999;
/// Benign markers start here; flood markers are below.
pub const BENIGN: u32 = 1_000_000;

/// 200-byte UDP datagrams to `dst`, from many sources (198.19.0.0/20, one per marker),
/// marked from `first`.
pub fn flood(dst: IpAddr, first: u32, count: u32) -> Vec<Vec<u8>> {
    (first..first + count)
        .map(|m| {
            let i = m % 4096;
            let src = IpAddr::from([198, 19, (i >> 8) as u8, (i & 0xff) as u8]);
            Packet::udp(src, dst, 1024 + (m % 1000) as u16, FLOOD_PORT)
                .marker(m)
                .total_len(200)
                .build()
                .unwrap()
        })
        .collect()
}

/// Benign TCP segments from the source to the origin through edge `edge`, marked from
/// [`BENIGN`] + `first`.
pub fn benign(lab: &Lab, edge: usize, first: u32, count: u32) -> Vec<Vec<u8>> {
    (first..first + count)
        .map(|m| {
            Packet::tcp(
                lab.src_addr(edge, false),
                lab.origin_addr(edge, false),
                40000,
                443,
                TcpFlags(0x18),
            )
            .marker(BENIGN + m)
            .build()
            .unwrap()
        })
        .collect()
}

/// Sends `packets` through edge `edge` at about `pps` (a tenth of a second's worth at a
/// time), in time order; bounded by the packets given.
pub fn paced(lab: &Lab, edge: usize, packets: &[Vec<u8>], pps: usize) {
    let chunk = (pps / 10).max(1);
    let start = Instant::now();
    for (i, c) in packets.chunks(chunk).enumerate() {
        let due = start + Duration::from_millis(100 * i as u64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        lab.send(edge, c).unwrap();
    }
}

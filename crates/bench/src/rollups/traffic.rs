//! The rollup seconds simulated nodes send: made once, by the observer's own [`Roller`], from
//! a synthetic traffic mix sampled 1 in 64 (a few hundred samples a second and point: TCP to a
//! skewed set of destinations and ports, DNS over UDP, ICMP, a share of IPv6, SYNs and RSTs,
//! lengths from 60 to 1500 bytes), then stamped with each node's seconds. Every node's
//! seconds carry full heavy-hitter lists and a length histogram, as a busy edge's do.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use edgecap_lab::packet::{Packet, TcpFlags};
use edgecap_observe::{Roller, Second};
use rand::{Rng, SeedableRng};

use crate::exit::Failure;

/// The observer's default sampling rate.
const ONE_IN: u64 = 64;
/// Sampled packets per second and point (at 1 in 64: about 19k packets a second).
const SAMPLES_PER_SECOND: usize = 300;
/// Distinct template seconds per point; nodes go round them.
const TEMPLATES: u64 = 8;
/// Heavy hitters kept per list (the agent's `TOP`).
const TOP: usize = 10;

/// Template seconds, `[template][point]`.
pub struct Traffic {
    seconds: Vec<Vec<Second>>,
}

impl Traffic {
    /// Templates for `points` (names), from a seeded mix: every run sends the same content.
    pub fn new(points: &[String]) -> Result<Traffic, Failure> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(12);
        let mut roller = Roller::new(points.to_vec(), None, TOP);
        let base = 1_000_000_000u64;
        for t in 0..TEMPLATES {
            for p in 0..points.len() {
                let (mut packets, mut bytes) = (0u64, 0u64);
                for _ in 0..SAMPLES_PER_SECOND {
                    let (data, len) = packet(&mut rng)?;
                    let ts = (base + t) * 1_000_000_000 + rng.random_range(0..1_000_000_000);
                    let cut = &data[..data.len().min(160)];
                    roller.sample(ts, p as u16, len as u32, cut, ONE_IN);
                    packets += ONE_IN;
                    bytes += ONE_IN * len as u64;
                }
                roller.counters(base + t, p as u16, packets, bytes);
            }
        }
        let closed = roller.close(base + TEMPLATES);
        let mut seconds = vec![Vec::new(); TEMPLATES as usize];
        for s in closed {
            seconds[(s.t - base) as usize].push(s);
        }
        if seconds.iter().any(|s| s.len() != points.len()) {
            return Err(Failure::runtime("rollup templates: a second is missing"));
        }
        Ok(Traffic { seconds })
    }

    /// Node `node`'s seconds `t` (stamped `t - shift`) of every point: the whole node's, then
    /// each of `accounts`' own (a quarter of the node's traffic each, estimated).
    pub fn node_seconds(
        &self,
        node: usize,
        (from, until): (u64, u64),
        shift: u64,
        accounts: &[String],
    ) -> Vec<Second> {
        let mut out = Vec::new();
        for t in from..until {
            let template = &self.seconds[((t + node as u64) % TEMPLATES) as usize];
            for s in template {
                let mut s = s.clone();
                s.t = t.saturating_sub(shift);
                for a in accounts {
                    let mut own = s.clone();
                    own.account = Some(a.clone());
                    own.exact = false;
                    own.packets /= 4;
                    own.bytes /= 4;
                    out.push(own);
                }
                out.push(s);
            }
        }
        out
    }

    /// Rows each node sends per second: points x (1 + accounts).
    pub fn rows_per_second(&self, accounts: usize) -> usize {
        self.seconds[0].len() * (1 + accounts)
    }
}

/// One packet of the mix, whole (the roller gets its first 160 bytes and its length).
fn packet(rng: &mut impl Rng) -> Result<(Vec<u8>, usize), Failure> {
    // Destinations: 40 services, the first few far heavier (a skewed, realistic spread).
    let d = (rng.random_range(0.0f64..1.0).powi(3) * 40.0) as u8;
    let s = rng.random_range(0..=255u8);
    let v6 = rng.random_range(0..10) == 0;
    let (src, dst): (IpAddr, IpAddr) = if v6 {
        (
            Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, u16::from(s)).into(),
            Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, u16::from(d)).into(),
        )
    } else {
        (
            Ipv4Addr::new(198, 18, 0, s).into(),
            Ipv4Addr::new(198, 19, 0, d).into(),
        )
    };
    let len = [60usize, 60, 60, 120, 200, 576, 1200, 1500, 1500, 1500][rng.random_range(0..10)];
    let sport = rng.random_range(1024..65535u16);
    let kind = rng.random_range(0..100);
    let p = match kind {
        0..=59 => {
            let dport = [443u16, 443, 443, 80, 22, 8443][rng.random_range(0..6)];
            let flags = match rng.random_range(0..20) {
                0 => TcpFlags::SYN,
                1 => TcpFlags::RST,
                _ => TcpFlags::ACK,
            };
            Packet::tcp(src, dst, sport, dport, flags).total_len(len.max(60))
        }
        60..=89 => Packet::udp(src, dst, sport, 53).total_len(len.max(48)),
        90..=96 => Packet::icmp_echo(src, dst, 1, 1).total_len(len.max(48)),
        _ => Packet::raw(src, dst, 47).total_len(len.max(48)),
    };
    let bytes = p
        .build()
        .map_err(|e| Failure::runtime(format!("crafting rollup traffic: {e}")))?;
    let n = bytes.len();
    Ok((bytes, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_carry_the_mix_of_every_point_and_account() {
        let points = vec!["pre-firewall".to_owned(), "post-firewall".to_owned()];
        let t = Traffic::new(&points).unwrap();
        let accounts = vec!["a".repeat(32)];
        let s = t.node_seconds(3, (1000, 1003), 600, &accounts);
        assert_eq!(s.len(), 3 * t.rows_per_second(1));
        assert_eq!(t.rows_per_second(1), 4);
        assert_eq!(s.iter().map(|s| s.t).min(), Some(400));
        assert_eq!(s.iter().map(|s| s.t).max(), Some(402));
        let node = s.iter().find(|s| s.account.is_none()).unwrap();
        assert!(node.exact);
        assert_eq!(node.packets, ONE_IN * SAMPLES_PER_SECOND as u64);
        assert_eq!(node.samples, SAMPLES_PER_SECOND as u64);
        assert!(node.tcp > 0 && node.udp > 0 && node.icmp > 0 && node.other > 0);
        assert!(node.families[0] > 0 && node.families[1] > 0);
        assert!(node.syn > 0 && node.rst > 0);
        assert_eq!(node.top_dst.len(), TOP);
        assert!(!node.top_dport.is_empty());
        assert_eq!(node.lengths.iter().sum::<u64>(), node.packets);
        let own = s.iter().find(|s| s.account.is_some()).unwrap();
        assert!(!own.exact);
    }
}

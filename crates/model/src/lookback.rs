//! Look-back questions to a node's observer ring and their answers, as they travel in the
//! agent protocol ([`crate::ServerMsg::Query`], [`crate::AgentMsg::Answer`]). Size estimates
//! ask with `limit: 0`; look-back captures ask for the samples.

use serde::{Deserialize, Serialize};

pub use edgecap_observe::PeriodRate;

/// The most samples one query may ask a node for.
pub const MAX_QUERY_SAMPLES: u64 = 100_000;

/// Samples per answer message: 1,000 samples of at most 160 bytes, hex-encoded with their
/// fields, stay well under `MAX_MESSAGE_BYTES`.
pub const SAMPLES_PER_ANSWER: usize = 1_000;

/// The most bytes of a sample on the wire (the ring's snaplen bound).
pub const MAX_SAMPLE_BYTES: usize = 65_535;

/// Which samples of the ring: those of the window at the points, matching the filter inside
/// the account's prefixes (the same composition and boundary as a capture's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RingQuery {
    /// 32 hex digits; the answer carries it back.
    pub query_id: String,
    #[serde(default)]
    pub filter_v1: serde_json::Value,
    #[serde(default)]
    pub filter: Option<String>,
    /// The account's prefixes when it is restricted (see `Assignment::prefixes`).
    #[serde(default)]
    pub prefixes: Option<Vec<String>>,
    /// The observer's points to read; empty: all of them.
    #[serde(default)]
    pub points: Vec<String>,
    /// Unix nanoseconds, `from_ns <= ts < to_ns`.
    pub from_ns: u64,
    pub to_ns: u64,
    /// Samples to return at most (0: only the estimate).
    pub limit: u64,
}

impl RingQuery {
    /// The question a create request asks of the rings (an estimate's, `limit: 0`, or a
    /// look-back capture's): its filter fields and points, inside `prefixes` (the account's,
    /// when restricted), over `[from_ns, to_ns)`. The query id is set per node when sent.
    pub fn of_request(
        req: &crate::CreateRequest,
        prefixes: Option<Vec<String>>,
        from_ns: u64,
        to_ns: u64,
        limit: u64,
    ) -> RingQuery {
        RingQuery {
            query_id: String::new(),
            filter_v1: req.filter_v1.clone(),
            filter: req.filter.clone(),
            prefixes,
            points: req.points.clone(),
            from_ns,
            to_ns,
            limit,
        }
    }
}

/// One sample in an answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireSample {
    pub ts_ns: u64,
    pub orig_len: u32,
    /// The observer point's name.
    pub point: String,
    pub ifindex: u32,
    /// Packets it stood for in the ring.
    pub one_in: u64,
    /// The packet's first bytes, lower-case hex.
    pub data: String,
}

/// One message of an answer: the first carries the totals, every one some samples, the last
/// says so. An error ends the answer at once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RingAnswer {
    pub query_id: String,
    /// 0, 1, ... per message of this answer.
    pub seq: u32,
    pub last: bool,
    /// Why the node could not answer (the field at fault first, as in a refused part).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Samples that matched, kept or not; packets and bytes they stand for.
    #[serde(default)]
    pub matched: u64,
    #[serde(default)]
    pub est_packets: u64,
    #[serde(default)]
    pub est_bytes: u64,
    /// Each returned sample stands for this many matching ones (more matched than the limit).
    #[serde(default = "one")]
    pub thinned_by: f64,
    /// The ring periods the window covers and their rates; and the oldest second the ring
    /// answers for (None: empty or the observer is not running).
    #[serde(default)]
    pub periods: Vec<PeriodRate>,
    #[serde(default)]
    pub reach_start: Option<u64>,
    #[serde(default)]
    pub samples: Vec<WireSample>,
}

fn one() -> f64 {
    1.0
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

/// The bytes of a hex string (either case); None when it is not hex or longer than
/// [`MAX_SAMPLE_BYTES`].
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || s.len() / 2 > MAX_SAMPLE_BYTES {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    s.as_bytes()
        .chunks(2)
        .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_requests_ring_query_carries_its_filters_points_and_prefixes() {
        let body = serde_json::json!({"type": "simple", "system": "magic-transit",
            "time_limit": 60, "packet_limit": 10, "points": ["pre-firewall", "ingress"],
            "filter_v1": {"destination_port": 53}, "filter": "udp"});
        let req = crate::validate_create(&body, &crate::AccountLimits::default()).unwrap();
        let prefixes = Some(vec!["198.18.0.0/24".to_owned()]);
        let q = RingQuery::of_request(&req, prefixes.clone(), 5, 9, 10);
        assert_eq!(q.filter_v1["destination_port"], 53);
        assert_eq!(q.filter.as_deref(), Some("udp"));
        assert_eq!(q.points, ["pre-firewall", "ingress"]);
        assert_eq!(q.prefixes, prefixes);
        assert_eq!((q.from_ns, q.to_ns, q.limit), (5, 9, 10));
        assert!(q.query_id.is_empty(), "set per node when sent");
    }

    #[test]
    fn hex_round_trips_and_refuses_what_is_not_hex() {
        let bytes: Vec<u8> = (0..=255).collect();
        assert_eq!(unhex(&hex(&bytes)).unwrap(), bytes);
        assert_eq!(hex(&[0x45, 0x0a]), "450a");
        assert_eq!(unhex("450A"), Some(vec![0x45, 0x0a]));
        assert_eq!(unhex("4"), None);
        assert_eq!(unhex("zz"), None);
        assert_eq!(unhex(&"00".repeat(MAX_SAMPLE_BYTES + 1)), None);
    }

    #[test]
    fn an_answer_is_chunked_with_its_head_first_and_its_end_marked() {
        let sample = WireSample {
            ts_ns: 1,
            orig_len: 60,
            point: "p".into(),
            ifindex: 1,
            one_in: 4,
            data: hex(&[0x45; 20]),
        };
        let head = AnswerHead {
            matched: 7,
            est_packets: 28,
            est_bytes: 1680,
            thinned_by: 2.0,
            periods: vec![PeriodRate {
                start: 0,
                end: 60,
                one_in: 4,
            }],
            reach_start: Some(0),
        };
        let msgs = RingAnswer::chunked("q", head.clone(), vec![sample; 2 * SAMPLES_PER_ANSWER + 1]);
        assert_eq!(msgs.len(), 3);
        assert_eq!(msgs.iter().map(|m| m.seq).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(msgs.iter().filter(|m| m.last).count(), 1);
        assert!(msgs[2].last);
        assert_eq!(
            msgs.iter().map(|m| m.samples.len()).sum::<usize>(),
            2 * SAMPLES_PER_ANSWER + 1
        );
        assert_eq!(
            (msgs[0].matched, msgs[0].periods.len(), msgs[0].reach_start),
            (7, 1, Some(0))
        );
        assert_eq!(
            (msgs[1].matched, msgs[1].periods.len(), msgs[1].reach_start),
            (0, 0, None)
        );
        assert!(
            msgs.iter()
                .all(|m| m.thinned_by == 2.0 && m.query_id == "q")
        );
        // No samples: still one message, the last, with the head.
        let empty = RingAnswer::chunked("q", head, Vec::new());
        assert_eq!(empty.len(), 1);
        assert!(empty[0].last && empty[0].matched == 7);
    }

    #[test]
    fn a_full_answer_message_stays_under_the_message_bound() {
        let sample = WireSample {
            ts_ns: u64::MAX,
            orig_len: u32::MAX,
            point: "a-point-name-of-thirty-two-chars".into(),
            ifindex: u32::MAX,
            one_in: u64::MAX,
            data: hex(&[0xff; 160]),
        };
        let answer = RingAnswer {
            query_id: "0".repeat(32),
            seq: 0,
            last: false,
            error: None,
            matched: u64::MAX,
            est_packets: u64::MAX,
            est_bytes: u64::MAX,
            thinned_by: 1.0,
            periods: vec![
                PeriodRate {
                    start: 0,
                    end: 60,
                    one_in: 64
                };
                1441
            ],
            reach_start: Some(0),
            samples: vec![sample; SAMPLES_PER_ANSWER],
        };
        let text = serde_json::to_string(&crate::AgentMsg::Answer { answer }).unwrap();
        assert!(
            text.len() < crate::protocol::MAX_MESSAGE_BYTES,
            "{}",
            text.len()
        );
    }
}

/// What an answer states once, in its first message (`thinned_by`: in every message).
#[derive(Debug, Clone, PartialEq)]
pub struct AnswerHead {
    pub matched: u64,
    pub est_packets: u64,
    pub est_bytes: u64,
    pub thinned_by: f64,
    pub periods: Vec<PeriodRate>,
    pub reach_start: Option<u64>,
}

impl RingAnswer {
    /// The messages of one answer, as agents send them: at most [`SAMPLES_PER_ANSWER`]
    /// samples each, numbered from 0, the last marked, `head` in the first (there is always
    /// one message, even without samples).
    pub fn chunked(
        query_id: &str,
        head: AnswerHead,
        mut samples: Vec<WireSample>,
    ) -> Vec<RingAnswer> {
        let mut out = Vec::with_capacity(samples.len() / SAMPLES_PER_ANSWER + 1);
        // Every message says how thinned its samples are; the rest is stated once.
        let thinned_by = head.thinned_by;
        let mut head = Some(head);
        let mut seq = 0u32;
        loop {
            let rest = samples.split_off(samples.len().min(SAMPLES_PER_ANSWER));
            let h = head.take();
            out.push(RingAnswer {
                query_id: query_id.to_owned(),
                seq,
                last: rest.is_empty(),
                error: None,
                matched: h.as_ref().map_or(0, |h| h.matched),
                est_packets: h.as_ref().map_or(0, |h| h.est_packets),
                est_bytes: h.as_ref().map_or(0, |h| h.est_bytes),
                thinned_by,
                reach_start: h.as_ref().and_then(|h| h.reach_start),
                periods: h.map(|h| h.periods).unwrap_or_default(),
                samples,
            });
            if rest.is_empty() {
                return out;
            }
            samples = rest;
            seq += 1;
        }
    }
}

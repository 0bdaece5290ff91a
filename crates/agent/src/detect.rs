//! Trigger evaluation on the node's own 1 s rollups (issue 14), pure: no clock, no I/O. The
//! agent feeds each closed second's measurements ([`Observation`], made from rollup
//! [`Second`]s by [`observe`]) to one [`Detector`] per trigger and acts on its
//! [`Decision`]s.
//!
//! Rules, per key (the whole scope, or each destination address with `per: destination`):
//! - a second *holds* when the metric is above the threshold, above `factor` times the
//!   learned baseline and above `floor`, or below the threshold (`below`: only once the
//!   metric has been at or over it since the last firing, so a node that never had the
//!   traffic does not fire);
//! - it fires when it has held `sustained_seconds` seconds in a row (a missing second breaks
//!   the run), and, above a threshold, again each cooldown while it keeps holding (a
//!   cooldown of 0: once per run; `below`: once per run);
//! - a firing is allowed only when the trigger-wide cooldown has passed since its last
//!   capture; otherwise it is refused, once per episode and reason, and the caller reports
//!   that (an event without a capture). Allowed, it starts a capture at once
//!   ([`Decision::Fire`]) while fewer than this node's local share of `captures_per_hour`
//!   started in the last hour and what is left of its local share of `bytes_per_day` in the
//!   last day covers the capture's byte limit (the trigger's `capture.byte_limit`; without
//!   one, what is left, or the whole `bytes_per_day` when nothing is:
//!   [`edgecap_model::trigger::wanted_bytes`]). Otherwise it needs the
//!   server's grant first ([`Decision::Ask`]: a capture from the pool beyond the captures
//!   share, the bytes the local bytes do not cover from the bytes pool, or both; answered
//!   with [`Detector::answered`]: a refusal gives the local bytes, the local capture and the
//!   cooldown back; the run asks again after the cooldown, as it would fire again). The
//!   capture's byte limit is then the local bytes plus the granted ones;
//! - the baseline is an EWMA learned from seconds that do not hold, with the trigger's
//!   half-life; a key's first second seeds it.
//!
//! Memory is bounded: at most [`MAX_KEYS`] keys (the least recently seen is forgotten), at
//! most `captures_per_hour` local firings, [`edgecap_model::firing::MAX_PENDING_ASKS`] asks
//! (the caller's bound) and as many byte reservations as firings in a day.
//!
//! Strict across nodes: the local shares are the server's split of half of each budget
//! (hub/splits.rs); the pools hold the other halves. Granted bytes are the server's to count
//! (for a day, whatever the capture writes); the local bytes of a capture are counted here
//! until it ends, and then what it wrote beyond its grant, at most its local bytes.

use std::collections::{BTreeMap, VecDeque};
use std::net::IpAddr;

use edgecap_model::trigger::{Metric, Per, Threshold, Trigger};
use edgecap_observe::Second;

/// Keys (destination addresses) a detector follows at once.
pub const MAX_KEYS: usize = 4096;

const HOUR: u64 = 3600;
const DAY: u64 = 24 * 3600;

/// One closed second, measured for one trigger: the metric over the scope and per
/// destination address (those the rollups name).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Observation {
    pub t: u64,
    pub scope: f64,
    pub destinations: Vec<(IpAddr, f64)>,
}

/// The metric of `seconds` (one node's closed seconds for time `t`, any points of the
/// trigger's scope), as per-second values. Per destination, packets come from the heavy
/// hitters (upper bounds); bits and SYNs are the destination's share of packets times the
/// second's bits or SYNs.
pub fn observe(t: u64, seconds: &[&Second], metric: Metric, points: &[String]) -> Observation {
    let mut o = Observation {
        t,
        ..Observation::default()
    };
    let mut per_dst: BTreeMap<IpAddr, f64> = BTreeMap::new();
    for s in seconds
        .iter()
        .filter(|s| s.t == t && points.contains(&s.point))
    {
        let total = match metric {
            Metric::PacketsPerSecond => s.packets as f64,
            Metric::BitsPerSecond => s.bytes as f64 * 8.0,
            Metric::SynPerSecond => s.syn as f64,
        };
        o.scope += total;
        let sampled: u64 = s.families.iter().sum();
        for h in &s.top_dst {
            let share = if sampled == 0 {
                0.0
            } else {
                h.count as f64 / sampled as f64
            };
            let v = match metric {
                Metric::PacketsPerSecond => h.count as f64,
                _ => share.min(1.0) * total,
            };
            *per_dst.entry(h.key).or_default() += v;
        }
    }
    o.destinations = per_dst.into_iter().collect();
    o
}

/// Why a firing was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Cooldown,
}

impl Refusal {
    pub fn text(self) -> &'static str {
        match self {
            Refusal::Cooldown => "cooldown",
        }
    }
}

/// What a second decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Start a capture. `key`: the destination that fired (None: the whole scope);
    /// `started`: the first second of the run; `peak`: the highest value in it;
    /// `byte_limit`: the capture's, cut to the day's budget; `reservation` identifies the
    /// bytes held for it ([`Detector::settle`]).
    Fire {
        key: Option<IpAddr>,
        started: u64,
        at: u64,
        value: f64,
        peak: f64,
        byte_limit: u64,
        reservation: u64,
    },
    /// As `Fire`, but beyond what the node's local shares cover: the capture starts only if
    /// the server grants it; either way the caller says so with [`Detector::answered`]. The
    /// local bytes, the local capture (if any) and the cooldown are held meanwhile.
    /// `byte_limit`: the local bytes held (the capture's limit is these plus the granted
    /// ones); `bytes`: those asked of the bytes pool; `capture`: whether the capture comes
    /// from the pool of `captures_per_hour` (false: from the node's own share).
    Ask {
        key: Option<IpAddr>,
        started: u64,
        at: u64,
        value: f64,
        peak: f64,
        byte_limit: u64,
        reservation: u64,
        bytes: Option<u64>,
        capture: bool,
    },
    /// The condition held long enough but no capture may start.
    Refused {
        key: Option<IpAddr>,
        started: u64,
        at: u64,
        peak: f64,
        why: Refusal,
    },
    /// A key whose condition held (and fired or was refused) stopped holding: the anomaly
    /// ended at `ended` (its last holding second).
    Ended {
        key: Option<IpAddr>,
        started: u64,
        ended: u64,
        peak: f64,
    },
}

#[derive(Debug, Clone, Default)]
struct KeyState {
    last_seen: u64,
    /// The first second of the current run of holding seconds, and its length.
    run_start: u64,
    run: u64,
    peak: f64,
    baseline: Option<f64>,
    /// `below`: the metric has been at or over the threshold since the last firing.
    armed: bool,
    /// The run has fired or been refused (it reports `Ended` when it stops).
    reported: bool,
    refused: Option<Refusal>,
    last_fired: Option<u64>,
}

/// One trigger's evaluation on one node.
#[derive(Debug, Clone)]
pub struct Detector {
    trigger: Trigger,
    keys: BTreeMap<Option<IpAddr>, KeyState>,
    last_capture: Option<u64>,
    /// Start times of the captures of the node's local share in the last hour (granted ones
    /// are the server's to count).
    captures: VecDeque<u64>,
    /// Asks waiting for an answer: reservation -> (the second asked, the trigger's last
    /// capture before it, restored if refused, and whether it counted a local capture).
    asks: BTreeMap<u64, (u64, Option<u64>, bool)>,
    /// The trigger's whole `bytes_per_day` (what a capture without a byte limit wants).
    per_day: u64,
    /// (time, reservation id, bytes) of captures in the last day.
    bytes: VecDeque<(u64, u64, u64)>,
    next_reservation: u64,
}

impl Detector {
    pub fn new(trigger: Trigger) -> Detector {
        Detector {
            per_day: trigger.budget.bytes_per_day,
            trigger,
            keys: BTreeMap::new(),
            last_capture: None,
            captures: VecDeque::new(),
            asks: BTreeMap::new(),
            bytes: VecDeque::new(),
            next_reservation: 1,
        }
    }

    pub fn trigger(&self) -> &Trigger {
        &self.trigger
    }

    /// Counts captures of this node's own share that it no longer remembers (`spent`: start
    /// times the server recorded in the last hour, sent with the trigger; an agent that
    /// restarted forgot its own) against the share, as if started here: at most
    /// [`edgecap_model::firing::MAX_SPENT`], the latest. For a detector made afresh; one that
    /// kept its own counts would count them twice.
    pub fn seed(&mut self, spent: &[u64]) {
        let mut times: Vec<u64> = spent.to_vec();
        times.sort_unstable();
        let from = times.len().saturating_sub(edgecap_model::firing::MAX_SPENT);
        self.captures.extend(&times[from..]);
    }

    /// Counts the bytes of this node's own share that it held for captures it no longer
    /// remembers (`spent_bytes`: `[when, bytes]` the server recorded in the last day, sent with
    /// the trigger; an agent that restarted forgot its own) against its bytes share, as if
    /// reserved here: at most [`edgecap_model::firing::MAX_SPENT_BYTES`], the latest. For a
    /// detector made afresh.
    pub fn seed_bytes(&mut self, spent: &[[u64; 2]]) {
        let mut held: Vec<[u64; 2]> = spent.to_vec();
        held.sort_unstable();
        let from = held
            .len()
            .saturating_sub(edgecap_model::firing::MAX_SPENT_BYTES);
        // Reservation 0 is never handed out: nothing settles these.
        let mut seeded: Vec<(u64, u64, u64)> =
            held[from..].iter().map(|[t, b]| (*t, 0, *b)).collect();
        seeded.extend(self.bytes.drain(..));
        seeded.sort_by_key(|e| e.0);
        self.bytes = seeded.into();
    }

    /// The budget this node enforces (its share of the trigger's, as the server sends it);
    /// what was used stays counted.
    pub fn set_budget(&mut self, budget: edgecap_model::trigger::Budget) {
        self.trigger.budget = budget;
    }

    /// Bytes still allowed at `t` by the node's local share of the daily budget.
    pub fn bytes_left(&mut self, t: u64) -> u64 {
        self.expire(t);
        let used: u64 = self.bytes.iter().map(|(_, _, b)| *b).sum();
        self.trigger.budget.bytes_per_day.saturating_sub(used)
    }

    /// The capture of `reservation` ended having written `bytes`: what it did not use goes
    /// back to the day's budget.
    pub fn settle(&mut self, reservation: u64, bytes: u64) {
        if let Some(e) = self.bytes.iter_mut().find(|e| e.1 == reservation) {
            e.2 = e.2.min(bytes);
        }
    }

    /// The server answered the ask of `reservation` (or it timed out, or the link was down:
    /// `granted` false). Granted: nothing changes (the capture starts; what was granted does
    /// not count against the local shares). Refused: its local bytes and its local capture
    /// (if it took one) go back, and so does the trigger-wide cooldown unless another
    /// capture started since.
    pub fn answered(&mut self, reservation: u64, granted: bool) {
        let Some((at, before, local)) = self.asks.remove(&reservation) else {
            return;
        };
        if granted {
            return;
        }
        self.bytes.retain(|e| e.1 != reservation);
        if local && let Some(i) = self.captures.iter().rposition(|c| *c == at) {
            self.captures.remove(i);
        }
        if self.last_capture == Some(at) {
            self.last_capture = before;
        }
    }

    /// Asks waiting for an answer.
    pub fn asking(&self) -> usize {
        self.asks.len()
    }

    fn expire(&mut self, t: u64) {
        while self.captures.front().is_some_and(|s| *s + HOUR <= t) {
            self.captures.pop_front();
        }
        while self.bytes.front().is_some_and(|e| e.0 + DAY <= t) {
            self.bytes.pop_front();
        }
    }

    /// Feeds one closed second; seconds must come in time order (an older one is ignored).
    pub fn second(&mut self, o: &Observation) -> Vec<Decision> {
        let mut out = Vec::new();
        let values: Vec<(Option<IpAddr>, f64)> = match self.trigger.condition.per {
            Per::Scope => vec![(None, o.scope)],
            Per::Destination => o.destinations.iter().map(|(k, v)| (Some(*k), *v)).collect(),
        };
        // Keys not measured this second break their runs.
        let absent: Vec<Option<IpAddr>> = self
            .keys
            .iter()
            .filter(|(k, s)| s.run > 0 && !values.iter().any(|(key, _)| key == *k))
            .map(|(k, _)| *k)
            .collect();
        for k in absent {
            if let Some(s) = self.keys.get_mut(&k) {
                end_run(k, s, &mut out);
            }
        }
        for (key, v) in values {
            self.one(o.t, key, v, &mut out);
        }
        out
    }

    fn one(&mut self, t: u64, key: Option<IpAddr>, v: f64, out: &mut Vec<Decision>) {
        if !self.keys.contains_key(&key) && self.keys.len() >= MAX_KEYS {
            let oldest = self
                .keys
                .iter()
                .min_by_key(|(_, s)| s.last_seen)
                .map(|(k, _)| *k);
            if let Some(k) = oldest {
                self.keys.remove(&k);
            }
        }
        let c = self.trigger.condition.clone();
        let s = self.keys.entry(key).or_default();
        if s.last_seen != 0 && t <= s.last_seen {
            return;
        }
        let gap = s.last_seen != 0 && t != s.last_seen + 1;
        s.last_seen = t;
        if gap && s.run > 0 {
            end_run(key, s, out);
        }
        let holds = match c.threshold {
            Threshold::Above(x) => v > x,
            Threshold::AboveBaseline(b) => {
                let base = s.baseline.unwrap_or(v);
                v > b.floor && v > b.factor * base
            }
            Threshold::Below(x) => {
                if v >= x {
                    s.armed = true;
                }
                // A run that started goes on while the flow stays away.
                (s.armed || s.run > 0) && v < x
            }
        };
        if !holds {
            if let Threshold::AboveBaseline(b) = c.threshold {
                let alpha = 1.0 - 0.5f64.powf(1.0 / b.half_life_seconds.max(1) as f64);
                s.baseline = Some(match s.baseline {
                    None => v,
                    Some(base) => base + alpha * (v - base),
                });
            }
            if s.run > 0 {
                end_run(key, s, out);
            }
            return;
        }
        if s.run == 0 {
            s.run_start = t;
            s.peak = v;
        }
        s.run += 1;
        s.peak = s.peak.max(v);
        if s.run < c.sustained_seconds {
            return;
        }
        // Held long enough: fire, unless this run fired already and may not again: a run
        // above a threshold fires again each cooldown while it lasts (with a cooldown of
        // 0, once); a run below one (the traffic stopped) fires once.
        let cooldown = self.trigger.cooldown_seconds;
        let again = cooldown > 0 && !matches!(c.threshold, Threshold::Below(_));
        if s.last_fired.is_some_and(|f| !again || t < f + cooldown) {
            return;
        }
        let (started, peak) = (s.run_start, s.peak);
        let refusal = self.admit(t);
        let s = self.keys.get_mut(&key).expect("inserted above");
        s.reported = true;
        match refusal {
            Err(why) => {
                if s.refused != Some(why) {
                    s.refused = Some(why);
                    out.push(Decision::Refused {
                        key,
                        started,
                        at: t,
                        peak,
                        why,
                    });
                }
            }
            Ok(Admit {
                local_bytes: byte_limit,
                ask_bytes,
                local_capture: local,
            }) => {
                s.refused = None;
                s.last_fired = Some(t);
                if matches!(c.threshold, Threshold::Below(_)) {
                    s.armed = false;
                }
                let reservation = self.next_reservation;
                self.next_reservation += 1;
                self.bytes.push_back((t, reservation, byte_limit));
                if local {
                    self.captures.push_back(t);
                }
                if local && ask_bytes.is_none() {
                    self.last_capture = Some(t);
                    out.push(Decision::Fire {
                        key,
                        started,
                        at: t,
                        value: v,
                        peak,
                        byte_limit,
                        reservation,
                    });
                } else {
                    self.asks.insert(reservation, (t, self.last_capture, local));
                    self.last_capture = Some(t);
                    out.push(Decision::Ask {
                        key,
                        started,
                        at: t,
                        value: v,
                        peak,
                        byte_limit,
                        reservation,
                        bytes: ask_bytes,
                        capture: !local,
                    });
                }
            }
        }
    }

    /// May a capture start at `t`: what the node's local shares cover of it, and what it
    /// must ask the server for.
    fn admit(&mut self, t: u64) -> Result<Admit, Refusal> {
        self.expire(t);
        if self
            .last_capture
            .is_some_and(|l| t < l + self.trigger.cooldown_seconds)
        {
            return Err(Refusal::Cooldown);
        }
        let left = self.bytes_left(t);
        let want = edgecap_model::trigger::wanted_bytes(
            self.trigger.capture.byte_limit,
            self.per_day,
            left,
        );
        let local_bytes = want.min(left);
        Ok(Admit {
            local_bytes,
            ask_bytes: (local_bytes < want).then(|| want - local_bytes),
            local_capture: (self.captures.len() as u64) < self.trigger.budget.captures_per_hour,
        })
    }
}

/// What [`Detector::admit`] allows.
struct Admit {
    /// The bytes of the node's local share the capture holds.
    local_bytes: u64,
    /// The bytes it must ask of the pool (the local ones do not cover its byte limit).
    ask_bytes: Option<u64>,
    /// The node's local share of `captures_per_hour` covers it.
    local_capture: bool,
}

fn end_run(key: Option<IpAddr>, s: &mut KeyState, out: &mut Vec<Decision>) {
    if s.reported {
        out.push(Decision::Ended {
            key,
            started: s.run_start,
            ended: s.run_start + s.run - 1,
            peak: s.peak,
        });
    }
    s.run = 0;
    s.reported = false;
    s.refused = None;
    s.last_fired = None;
}

#[cfg(test)]
#[path = "detect_tests.rs"]
mod tests;

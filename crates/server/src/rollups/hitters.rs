//! Heavy hitters as stored and merged (pure).
//!
//! A stored list is a floor `F` and `[key, count, error]` triples: for every listed key
//! `count - error <= true weight <= count`, and any key not listed weighed at most `F`. That
//! is what a space-saving sketch guarantees, and [`Merge`] keeps it when lists of many seconds
//! and nodes are added together, in memory bounded by its capacity (the same semantics as
//! `edgecap_observe::SpaceSaving::merge`, with the floor of truncated lists made explicit).
//!
//! In the database a list is text ([`encode`], [`decode`]): `~` and the base64 of varints
//! (floor, key count, then per key its bytes, count and error), about a third of the JSON
//! `{"floor":F,"keys":[[key,count,error],...]}` that rows stored before migration 0015 carry
//! (still read). An empty text is a list dropped on purpose: a second's lists go once the
//! downsampling job took it into its minute (see `crate::rollups::jobs`).

use std::collections::HashMap;
use std::hash::Hash;

use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use edgecap_observe::Hitter;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Keys a merged (minute) list keeps.
pub const STORED_KEYS: usize = 20;

/// Keys a merge holds while it runs.
pub const MERGE_CAPACITY: usize = 1024;

/// A list as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored<K> {
    pub floor: u64,
    pub keys: Vec<(K, u64, u64)>,
}

impl<K> Default for Stored<K> {
    fn default() -> Self {
        Stored {
            floor: 0,
            keys: Vec::new(),
        }
    }
}

impl<K: Clone> Stored<K> {
    /// An agent's list (the top of a sketch): unlisted keys weighed 0 when the listed ones
    /// account for the whole `total` (the list is the whole sketch), else at most the
    /// smallest listed count (the sketch's floor, or a key cut off by the top).
    pub fn from_agent(hitters: &[Hitter<K>], total: Option<u64>) -> Stored<K> {
        let sum: u64 = hitters.iter().map(|h| h.count).sum();
        let exhaustive = hitters.iter().all(|h| h.error == 0) && total.is_some_and(|t| sum >= t);
        let floor = match exhaustive {
            true => 0,
            false => hitters.iter().map(|h| h.count).min().unwrap_or(0),
        };
        Stored {
            floor,
            keys: hitters
                .iter()
                .map(|h| (h.key.clone(), h.count, h.error))
                .collect(),
        }
    }
}

/// A key as stored in the compact text.
pub trait StoredKey: Sized {
    fn put(&self, out: &mut Vec<u8>);
    fn take(input: &mut &[u8]) -> Option<Self>;
}

/// Addresses (as the API prints them): 4 or 16 bytes behind a tag; any other text as is.
impl StoredKey for String {
    fn put(&self, out: &mut Vec<u8>) {
        match self.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V4(a)) if a.to_string() == *self => {
                out.push(4);
                out.extend_from_slice(&a.octets());
            }
            Ok(std::net::IpAddr::V6(a)) if a.to_string() == *self => {
                out.push(6);
                out.extend_from_slice(&a.octets());
            }
            _ => {
                out.push(0);
                put_varint(out, self.len() as u64);
                out.extend_from_slice(self.as_bytes());
            }
        }
    }
    fn take(input: &mut &[u8]) -> Option<Self> {
        let tag = take_bytes(input, 1)?[0];
        match tag {
            4 => {
                let b: [u8; 4] = take_bytes(input, 4)?.try_into().ok()?;
                Some(std::net::Ipv4Addr::from(b).to_string())
            }
            6 => {
                let b: [u8; 16] = take_bytes(input, 16)?.try_into().ok()?;
                Some(std::net::Ipv6Addr::from(b).to_string())
            }
            0 => {
                let n = usize::try_from(take_varint(input)?).ok()?;
                String::from_utf8(take_bytes(input, n)?.to_vec()).ok()
            }
            _ => None,
        }
    }
}

impl StoredKey for u16 {
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_be_bytes());
    }
    fn take(input: &mut &[u8]) -> Option<Self> {
        Some(u16::from_be_bytes(take_bytes(input, 2)?.try_into().ok()?))
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn take_varint(input: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = take_bytes(input, 1)?[0];
        v |= u64::from(b & 0x7f).checked_shl(shift)?;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

fn take_bytes<'a>(input: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if input.len() < n {
        return None;
    }
    let (head, rest) = input.split_at(n);
    *input = rest;
    Some(head)
}

/// The marker of the compact text.
const COMPACT: char = '~';

/// A list as the database stores it (see the module's documentation).
pub fn encode<K: StoredKey>(list: &Stored<K>) -> String {
    let mut bytes = Vec::with_capacity(4 + list.keys.len() * 10);
    put_varint(&mut bytes, list.floor);
    put_varint(&mut bytes, list.keys.len() as u64);
    for (k, count, error) in &list.keys {
        k.put(&mut bytes);
        put_varint(&mut bytes, *count);
        put_varint(&mut bytes, *error);
    }
    let mut text = String::with_capacity(1 + bytes.len().div_ceil(3) * 4);
    text.push(COMPACT);
    STANDARD_NO_PAD.encode_string(&bytes, &mut text);
    text
}

/// A stored list back: `None` for a list dropped on purpose (empty text); the compact text or
/// the JSON of older rows otherwise; an error names what is wrong.
pub fn decode<K: StoredKey + DeserializeOwned>(text: &str) -> Result<Option<Stored<K>>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    if let Some(b64) = text.strip_prefix(COMPACT) {
        let bytes = STANDARD_NO_PAD
            .decode(b64)
            .map_err(|e| format!("not base64: {e}"))?;
        let mut input = &bytes[..];
        let bad = || "truncated or malformed list".to_owned();
        let floor = take_varint(&mut input).ok_or_else(bad)?;
        let n = take_varint(&mut input).ok_or_else(bad)?;
        // Every key takes at least 3 bytes: no count can make this allocate more than the text.
        let mut keys = Vec::with_capacity((n as usize).min(input.len() / 3));
        for _ in 0..n {
            let k = K::take(&mut input).ok_or_else(bad)?;
            let count = take_varint(&mut input).ok_or_else(bad)?;
            let error = take_varint(&mut input).ok_or_else(bad)?;
            keys.push((k, count, error));
        }
        if !input.is_empty() {
            return Err(bad());
        }
        return Ok(Some(Stored { floor, keys }));
    }
    serde_json::from_str(text)
        .map(Some)
        .map_err(|e| e.to_string())
}

#[derive(Debug, Clone, Copy, Default)]
struct Entry {
    /// Bound the key had when it entered (the bound of absent keys then).
    base: u64,
    /// Sum of floors seen when it entered.
    floors_at_entry: u64,
    /// Sums over the lists that named it: counts, errors and those lists' floors.
    counts: u64,
    errors: u64,
    floors_listed: u64,
}

/// Adds stored lists together, keeping the bounds true, in at most `capacity` keys.
#[derive(Debug, Clone)]
pub struct Merge<K> {
    capacity: usize,
    entries: HashMap<K, Entry>,
    /// Sum of the floors of every list added.
    floors: u64,
    /// Bound of keys never listed or evicted: `absent + (floors - absent_at)`.
    absent: u64,
    absent_at: u64,
}

impl<K: Hash + Eq + Clone + Ord> Merge<K> {
    pub fn new(capacity: usize) -> Merge<K> {
        Merge {
            capacity: capacity.max(1),
            entries: HashMap::new(),
            floors: 0,
            absent: 0,
            absent_at: 0,
        }
    }

    fn absent_bound(&self) -> u64 {
        self.absent + (self.floors - self.absent_at)
    }

    /// Adds one list (one second or minute of one node and point).
    pub fn add(&mut self, list: &Stored<K>) {
        let absent = self.absent_bound();
        for (key, count, error) in &list.keys {
            let add = |e: &mut Entry| {
                e.counts = e.counts.saturating_add(*count);
                e.errors = e.errors.saturating_add(*error);
                e.floors_listed = e.floors_listed.saturating_add(list.floor);
            };
            // A key already held is found without cloning it (most are, in a long merge).
            match self.entries.get_mut(key) {
                Some(e) => add(e),
                None => {
                    let mut e = Entry {
                        base: absent,
                        floors_at_entry: self.floors,
                        ..Entry::default()
                    };
                    add(&mut e);
                    self.entries.insert(key.clone(), e);
                }
            }
        }
        self.floors = self.floors.saturating_add(list.floor);
        if self.entries.len() > 2 * self.capacity {
            self.shrink(self.capacity);
        }
    }

    fn bounds(&self, e: &Entry) -> (u64, u64) {
        // Lists after its entry that did not name it may each have hidden up to their floor.
        let unlisted = self
            .floors
            .saturating_sub(e.floors_at_entry)
            .saturating_sub(e.floors_listed);
        let count = e.base.saturating_add(e.counts).saturating_add(unlisted);
        let error = e.base.saturating_add(e.errors).saturating_add(unlisted);
        (count, error.min(count))
    }

    /// Keeps the `n` heaviest keys; the others' bound becomes the floor of absent keys.
    fn shrink(&mut self, n: usize) {
        let mut all: Vec<(K, u64)> = self
            .entries
            .iter()
            .map(|(k, e)| (k.clone(), self.bounds(e).0))
            .collect();
        all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let dropped_max = all.get(n).map(|x| x.1).unwrap_or(0);
        for (k, _) in all.into_iter().skip(n) {
            self.entries.remove(&k);
        }
        let bound = self.absent_bound().max(dropped_max);
        self.absent = bound;
        self.absent_at = self.floors;
    }

    /// The `n` heaviest keys with their bounds, heaviest first, and the bound of any other key.
    pub fn top(&self, n: usize) -> Stored<K> {
        let mut all: Vec<(K, u64, u64)> = self
            .entries
            .iter()
            .map(|(k, e)| {
                let (c, err) = self.bounds(e);
                (k.clone(), c, err)
            })
            .collect();
        all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let cut = all.get(n).map(|x| x.1).unwrap_or(0);
        all.truncate(n);
        Stored {
            floor: self.absent_bound().max(cut),
            keys: all,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgecap_observe::SpaceSaving;
    use proptest::prelude::*;

    #[test]
    fn exhaustive_lists_add_exactly() {
        let a = Stored {
            floor: 0,
            keys: vec![(1u16, 5, 0), (2, 3, 0)],
        };
        let b = Stored {
            floor: 0,
            keys: vec![(2u16, 4, 0)],
        };
        let mut m = Merge::new(8);
        m.add(&a);
        m.add(&b);
        let top = m.top(8);
        assert_eq!(top.keys, vec![(2, 7, 0), (1, 5, 0)]);
        assert_eq!(top.floor, 0);
    }

    #[test]
    fn an_agent_list_that_covers_its_total_has_no_floor() {
        let h = |key, count| Hitter {
            key,
            count,
            error: 0,
        };
        assert_eq!(
            Stored::from_agent(&[h(1u16, 6), h(2, 4)], Some(10)).floor,
            0
        );
        assert_eq!(
            Stored::from_agent(&[h(1u16, 6), h(2, 4)], Some(11)).floor,
            4
        );
        assert_eq!(Stored::from_agent(&[h(1u16, 6)], None).floor, 6);
    }

    #[test]
    fn compact_text_round_trips_and_is_smaller_than_json() {
        let addrs = Stored {
            floor: 17,
            keys: vec![
                ("198.18.3.4".to_owned(), 4000, 120),
                ("2001:db8::1".to_owned(), 3000, 0),
                ("not an address".to_owned(), 1, 1),
                ("::ffff:198.18.0.1".to_owned(), u64::MAX, 0),
            ],
        };
        let text = encode(&addrs);
        assert!(text.starts_with('~'), "{text}");
        assert_eq!(decode::<String>(&text), Ok(Some(addrs.clone())));
        // A busy second's list: ten IPv4 keys with thousands of packets each.
        let busy = Stored {
            floor: 2000,
            keys: (0..10u64)
                .map(|k| (format!("198.18.3.{k}"), 4000 - k * 100, 120 + k))
                .collect(),
        };
        let (compact, json) = (encode(&busy), serde_json::to_string(&busy).unwrap());
        assert!(compact.len() * 2 < json.len(), "{compact} against {json}");
        let ports = Stored {
            floor: 0,
            keys: vec![(443u16, 10, 0), (0, 1, 1), (65535, 2, 0)],
        };
        assert_eq!(decode::<u16>(&encode(&ports)), Ok(Some(ports)));
        assert_eq!(
            decode::<u16>(&encode(&Stored::<u16>::default())),
            Ok(Some(Stored::default()))
        );
        // Rows from before the compact text still read; an empty text is a dropped list.
        assert_eq!(
            decode::<u16>(r#"{"floor":3,"keys":[[53,9,1]]}"#),
            Ok(Some(Stored {
                floor: 3,
                keys: vec![(53, 9, 1)]
            }))
        );
        assert_eq!(decode::<u16>(""), Ok(None));
    }

    #[test]
    fn garbage_text_is_an_error_not_a_panic() {
        for text in ["~", "~!!", "~AQ", "~/////////////w", "[1,2]", "~AZAB"] {
            assert!(decode::<String>(text).is_err(), "{text}");
            assert!(decode::<u16>(text).is_err(), "{text}");
        }
        // A count far beyond the bytes given.
        let mut b = Vec::new();
        put_varint(&mut b, 0);
        put_varint(&mut b, u64::MAX);
        let text = format!("~{}", STANDARD_NO_PAD.encode(&b));
        assert!(decode::<String>(&text).is_err());
    }

    proptest! {
        #[test]
        fn any_list_round_trips(floor in any::<u64>(), keys in proptest::collection::vec(
            (any::<u32>(), any::<u64>(), any::<u64>(), any::<bool>()), 0..30)) {
            let list = Stored {
                floor,
                keys: keys.iter().map(|(a, c, e, v6)| {
                    let k = match v6 {
                        false => std::net::Ipv4Addr::from(*a).to_string(),
                        true => std::net::Ipv6Addr::from(u128::from(*a) << 64 | 1).to_string(),
                    };
                    (k, *c, *e)
                }).collect(),
            };
            prop_assert_eq!(decode::<String>(&encode(&list)), Ok(Some(list)));
        }

        /// Streams split into parts, each sketched and cut to its top few, merged: every
        /// listed key's bounds hold the truth and every key not listed weighs at most the floor.
        #[test]
        fn merged_bounds_hold(parts in proptest::collection::vec(
            proptest::collection::vec((0u8..40, 1u64..20), 0..60), 1..12),
            k in 2usize..10, top in 1usize..8, cap in 2usize..12) {
            let mut truth: HashMap<u8, u64> = HashMap::new();
            let mut m = Merge::new(cap);
            for part in &parts {
                let mut s = SpaceSaving::new(k);
                for (key, w) in part {
                    s.add(*key, *w);
                    *truth.entry(*key).or_default() += w;
                }
                m.add(&Stored::from_agent(&s.top(top), Some(s.total())));
            }
            let out = m.top(cap);
            prop_assert!(out.keys.len() <= cap);
            for (key, count, error) in &out.keys {
                let t = truth.get(key).copied().unwrap_or(0);
                prop_assert!(count - error <= t && t <= *count, "{} {} {} truth {}", key, count, error, t);
            }
            for (key, t) in &truth {
                if !out.keys.iter().any(|x| x.0 == *key) {
                    prop_assert!(*t <= out.floor, "{} weighs {} over floor {}", key, t, out.floor);
                }
            }
        }
    }
}

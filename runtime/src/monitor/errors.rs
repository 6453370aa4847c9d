//! Error aggregation: every server-side failure (5xx, trap, deadline,
//! host-call failure) is fingerprinted by plugin, route, error kind and its
//! message with numbers and ids normalised away, and grouped: count, first
//! and last seen, sample request and trace ids, recent occurrences, and
//! new / regressed / spiking flags. Behind `GET /api/v1/monitoring/errors`.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use sha2::{Digest, Sha256};

/// Groups kept; the least recently seen is dropped beyond.
const MAX_GROUPS: usize = 1000;
/// Sample occurrences kept per group.
const SAMPLES: usize = 10;
/// A group first seen this recently is `new`.
const NEW_FOR: Duration = Duration::from_secs(15 * 60);
/// A group seen again after this much quiet is `regressed`.
const QUIET: Duration = Duration::from_secs(60 * 60);
/// Spiking: at least this many in the last minute...
const SPIKE_MIN: u64 = 10;
/// ...and this many times the per-minute average of the last quarter hour.
const SPIKE_FACTOR: f64 = 3.0;
/// Per-minute counts kept for spike detection.
const MINUTES: usize = 15;

/// One failure, as it happened.
#[derive(Debug, Clone)]
pub struct Occurrence<'a> {
    /// The plugin (empty for the runtime itself).
    pub plugin: &'a str,
    /// The route pattern, job kind or host call.
    pub route: &'a str,
    /// The error code (`guest_fault`, `deadline_exceeded`, `sql_unavailable`, ...).
    pub kind: &'a str,
    /// The message.
    pub message: &'a str,
    /// A fingerprint the plugin chose, replacing the computed one.
    pub fingerprint: Option<&'a str>,
    /// The request id.
    pub request_id: &'a str,
    /// The trace id, when traced.
    pub trace_id: Option<String>,
}

/// Groups of failures by fingerprint.
#[derive(Debug, Default)]
pub struct ErrorGroups {
    groups: Mutex<HashMap<String, Group>>,
}

/// One group, as served.
#[derive(Debug, Clone, Serialize)]
pub struct Group {
    /// The fingerprint.
    pub fingerprint: String,
    /// The plugin.
    pub plugin: String,
    /// The route, job kind or host call.
    pub route: String,
    /// The error code.
    pub kind: String,
    /// The message, normalised.
    pub message: String,
    /// Occurrences so far.
    pub count: u64,
    /// First occurrence, Unix ms.
    pub first_seen: u64,
    /// Last occurrence, Unix ms.
    pub last_seen: u64,
    /// Recent occurrences: request id, trace id, Unix ms; newest last.
    pub samples: VecDeque<Sample>,
    /// First seen within the last 15 minutes.
    pub new: bool,
    /// Seen again after an hour of quiet (the last time it happened).
    pub regressed: bool,
    /// The last minute has at least 10 and three times the average.
    pub spiking: bool,
    /// Occurrences per minute, oldest first, the current minute last.
    #[serde(skip)]
    minutes: VecDeque<(u64, u64)>,
}

/// One sampled occurrence.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    /// Its request id.
    pub request_id: String,
    /// Its trace id.
    pub trace_id: Option<String>,
    /// When, Unix ms.
    pub at: u64,
    /// The message as it was, before normalising.
    pub message: String,
}

impl ErrorGroups {
    /// Records one failure; returns its fingerprint.
    pub fn record(&self, occurrence: Occurrence<'_>) -> String {
        self.record_at(occurrence, SystemTime::now())
    }

    fn record_at(&self, o: Occurrence<'_>, now: SystemTime) -> String {
        let now_ms = unix_ms(now);
        let message = normalise(o.message);
        let fingerprint = match o.fingerprint {
            Some(chosen) => chosen.chars().take(64).collect(),
            None => fingerprint(&[o.plugin, o.route, o.kind, &message]),
        };
        let mut groups = self.groups.lock().unwrap_or_else(|e| e.into_inner());
        if !groups.contains_key(&fingerprint) && groups.len() >= MAX_GROUPS {
            let oldest = groups
                .values()
                .min_by_key(|g| g.last_seen)
                .map(|g| g.fingerprint.clone());
            if let Some(oldest) = oldest {
                groups.remove(&oldest);
            }
        }
        let group = groups.entry(fingerprint.clone()).or_insert_with(|| Group {
            fingerprint: fingerprint.clone(),
            plugin: o.plugin.into(),
            route: o.route.into(),
            kind: o.kind.into(),
            message,
            count: 0,
            first_seen: now_ms,
            last_seen: now_ms,
            samples: VecDeque::new(),
            new: true,
            regressed: false,
            spiking: false,
            minutes: VecDeque::new(),
        });
        group.regressed =
            group.count > 0 && now_ms.saturating_sub(group.last_seen) >= millis(QUIET);
        group.count += 1;
        group.last_seen = now_ms;
        let minute = now_ms / 60_000;
        match group.minutes.back_mut() {
            Some((m, n)) if *m == minute => *n += 1,
            _ => {
                group.minutes.push_back((minute, 1));
                if group.minutes.len() > MINUTES {
                    group.minutes.pop_front();
                }
            }
        }
        if group.samples.len() == SAMPLES {
            group.samples.pop_front();
        }
        group.samples.push_back(Sample {
            request_id: o.request_id.into(),
            trace_id: o.trace_id,
            at: now_ms,
            message: o.message.chars().take(1000).collect(),
        });
        fingerprint
    }

    /// Groups by last seen, newest first, after `cursor`; with the cursor
    /// of the next page when there is one.
    pub fn page(&self, limit: usize, cursor: Option<&Cursor>) -> (Vec<Group>, Option<Cursor>) {
        let now = unix_ms(SystemTime::now());
        let groups = self.groups.lock().unwrap_or_else(|e| e.into_inner());
        let mut all: Vec<&Group> = groups.values().collect();
        all.sort_by(|a, b| (b.last_seen, &b.fingerprint).cmp(&(a.last_seen, &a.fingerprint)));
        let after = all.into_iter().filter(|g| match cursor {
            Some(c) => {
                (g.last_seen, g.fingerprint.as_str()) < (c.last_seen, c.fingerprint.as_str())
            }
            None => true,
        });
        let mut page: Vec<Group> = after.take(limit + 1).map(|g| g.flagged(now)).collect();
        let next = (page.len() > limit).then(|| {
            page.truncate(limit);
            page.last().map(|g| Cursor {
                last_seen: g.last_seen,
                fingerprint: g.fingerprint.clone(),
            })
        });
        (page, next.flatten())
    }

    /// Groups flagged spiking now.
    pub fn spiking(&self) -> usize {
        let now = unix_ms(SystemTime::now());
        let groups = self.groups.lock().unwrap_or_else(|e| e.into_inner());
        groups.values().filter(|g| g.spiking_at(now)).count()
    }

    /// One group.
    pub fn get(&self, fingerprint: &str) -> Option<Group> {
        let now = unix_ms(SystemTime::now());
        let groups = self.groups.lock().unwrap_or_else(|e| e.into_inner());
        groups.get(fingerprint).map(|g| g.flagged(now))
    }
}

impl Group {
    /// A copy with `new` and `spiking` as of `now`.
    fn flagged(&self, now: u64) -> Group {
        let mut group = self.clone();
        group.new = now.saturating_sub(self.first_seen) < millis(NEW_FOR);
        group.spiking = self.spiking_at(now);
        group
    }

    /// At least [`SPIKE_MIN`] in the minute of `now` and [`SPIKE_FACTOR`]
    /// times the average of the minutes before.
    fn spiking_at(&self, now: u64) -> bool {
        let minute = now / 60_000;
        let last = self
            .minutes
            .iter()
            .find(|(m, _)| *m == minute)
            .map_or(0, |(_, n)| *n);
        let earlier: u64 = self
            .minutes
            .iter()
            .filter(|(m, _)| *m < minute && minute - *m < MINUTES as u64)
            .map(|(_, n)| n)
            .sum();
        let average = earlier as f64 / (MINUTES - 1) as f64;
        last >= SPIKE_MIN && last as f64 >= SPIKE_FACTOR * average.max(1.0)
    }
}

/// Where a page of groups ends: opaque to clients (hex).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    last_seen: u64,
    fingerprint: String,
}

impl Cursor {
    /// The opaque form.
    pub fn encode(&self) -> String {
        format!("{}:{}", self.last_seen, self.fingerprint)
            .bytes()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Parses the opaque form; `None` when tampered with.
    pub fn decode(text: &str) -> Option<Cursor> {
        if !text.len().is_multiple_of(2) || text.len() > 256 {
            return None;
        }
        let bytes: Option<Vec<u8>> = (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
            .collect();
        let text = String::from_utf8(bytes?).ok()?;
        let (last_seen, fingerprint) = text.split_once(':')?;
        Some(Cursor {
            last_seen: last_seen.parse().ok()?,
            fingerprint: fingerprint.to_string(),
        })
    }
}

/// The message with every word that holds a digit (numbers, ids, hashes,
/// addresses, UUIDs) replaced by `<n>`, so occurrences group.
pub fn normalise(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if word.bytes().any(|b| b.is_ascii_digit()) {
            out.push_str("<n>");
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in message.chars().take(2000) {
        if c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | ':') {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

/// A short hex hash of `parts` (each ended by a NUL, so parts cannot run
/// into each other).
pub fn fingerprint(parts: &[&str]) -> String {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    hash.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64
}

fn millis(d: Duration) -> u64 {
    d.as_millis() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn occurrence<'a>(message: &'a str, request_id: &'a str) -> Occurrence<'a> {
        Occurrence {
            plugin: "p",
            route: "/r",
            kind: "guest_fault",
            message,
            fingerprint: None,
            request_id,
            trace_id: None,
        }
    }

    #[test]
    fn numbers_ids_and_addresses_do_not_split_groups() {
        assert_eq!(
            normalise("returned 1234 bytes at 0x7ffe12 for 0192f3a4-7c1e-7000-8000-00aa11bb22cc"),
            "returned <n> bytes at <n> for <n>"
        );
        let groups = ErrorGroups::default();
        let a = groups.record(occurrence("row 17 of note 5 is locked", "r1"));
        let b = groups.record(occurrence("row 99 of note 123 is locked", "r2"));
        let c = groups.record(occurrence("table is gone", "r3"));
        assert_eq!(a, b);
        assert_ne!(a, c);
        let group = groups.get(&a).expect("grouped");
        assert_eq!(group.count, 2);
        assert_eq!(group.samples.len(), 2);
        assert!(group.new);
    }

    #[test]
    fn regressed_after_quiet_and_spiking_after_a_burst() {
        let groups = ErrorGroups::default();
        let start = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let fp = groups.record_at(occurrence("boom", "r0"), start);
        let later = start + QUIET + Duration::from_secs(1);
        groups.record_at(occurrence("boom", "r1"), later);
        let map = groups.groups.lock().expect("lock");
        let group = map.get(&fp).expect("group");
        assert!(group.regressed);
        let minute = unix_ms(later) / 60_000;
        let mut burst = group.clone();
        burst.minutes = VecDeque::from([(minute - 5, 1), (minute, 12)]);
        assert!(burst.flagged(unix_ms(later)).spiking);
        burst.minutes = VecDeque::from([(minute - 5, 100), (minute, 12)]);
        assert!(!burst.flagged(unix_ms(later)).spiking);
    }

    #[test]
    fn cursors_round_trip_and_refuse_tampering() {
        let cursor = Cursor {
            last_seen: 42,
            fingerprint: "abc".into(),
        };
        assert_eq!(Cursor::decode(&cursor.encode()), Some(cursor));
        assert_eq!(Cursor::decode("zz"), None);
        assert_eq!(Cursor::decode("abc"), None);
    }

    #[test]
    fn pages_follow_last_seen() {
        let groups = ErrorGroups::default();
        for i in 0..5 {
            let message = format!("error kind {}", ["a", "b", "c", "d", "e"][i]);
            groups.record_at(
                occurrence(&message, "r"),
                UNIX_EPOCH + Duration::from_secs(1_800_000_000 + i as u64),
            );
        }
        let (first, next) = groups.page(2, None);
        assert_eq!(first[0].message, "error kind e");
        let (second, next) = groups.page(2, next.as_ref());
        assert_eq!(second[0].message, "error kind c");
        let (third, next) = groups.page(2, next.as_ref());
        assert_eq!(third.len(), 1);
        assert_eq!(next, None);
    }
}

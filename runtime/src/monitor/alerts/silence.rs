//! Silences: label matchers with an end time. While a silence matches an
//! alert, its notifications are held back (the alert still moves through
//! its states); a firing alert whose silence ends is announced then. Kept in
//! `<data_dir>/silences.json` across restarts; expired ones are dropped.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Longest a silence may last.
pub const MAX_SILENCE: Duration = Duration::from_secs(30 * 24 * 3600);

/// One silence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Silence {
    /// Its id.
    pub id: String,
    /// Labels an alert must all have, with these values.
    pub matchers: BTreeMap<String, String>,
    /// When it began, Unix ms.
    pub starts_at: u64,
    /// When it ends, Unix ms.
    pub ends_at: u64,
    /// Why, for people.
    pub comment: String,
}

/// A silence as asked for over the API.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSilence {
    /// Labels to match; at least one.
    pub matchers: BTreeMap<String, String>,
    /// How long, e.g. `2h`.
    #[serde(with = "humantime_serde")]
    pub duration: Duration,
    /// Why.
    #[serde(default)]
    pub comment: String,
}

/// The silences of a node.
#[derive(Debug)]
pub struct Silences {
    list: Mutex<Vec<Silence>>,
    file: PathBuf,
}

impl Silences {
    /// The silences saved in `file` that have not ended by `now`.
    pub fn load(file: PathBuf, now: u64) -> Silences {
        let list: Vec<Silence> = std::fs::read(&file)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        Silences {
            list: Mutex::new(list.into_iter().filter(|s| s.ends_at > now).collect()),
            file,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Silence>> {
        self.list.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a silence; the error says what is wrong with it.
    pub fn add(&self, new: NewSilence, now: u64) -> Result<Silence, String> {
        if new.matchers.is_empty() {
            return Err("a silence needs at least one matcher".into());
        }
        if new.duration.is_zero() || new.duration > MAX_SILENCE {
            return Err("duration must be more than 0 and at most 30 days".into());
        }
        let silence = Silence {
            id: uuid::Uuid::now_v7().to_string(),
            matchers: new.matchers,
            starts_at: now,
            ends_at: now + new.duration.as_millis() as u64,
            comment: new.comment.chars().take(1000).collect(),
        };
        let mut list = self.lock();
        list.push(silence.clone());
        self.save(&list);
        Ok(silence)
    }

    /// Ends a silence now; false when there is none with `id`.
    pub fn remove(&self, id: &str) -> bool {
        let mut list = self.lock();
        let before = list.len();
        list.retain(|s| s.id != id);
        let removed = list.len() < before;
        if removed {
            self.save(&list);
        }
        removed
    }

    /// The silences in force at `now`.
    pub fn active(&self, now: u64) -> Vec<Silence> {
        let mut list = self.lock();
        let before = list.len();
        list.retain(|s| s.ends_at > now);
        if list.len() < before {
            self.save(&list);
        }
        list.clone()
    }

    /// Whether a silence in force at `now` matches `labels`.
    pub fn silences(&self, labels: &BTreeMap<String, String>, now: u64) -> bool {
        self.lock().iter().any(|s| {
            s.starts_at <= now
                && now < s.ends_at
                && s.matchers.iter().all(|(k, v)| labels.get(k) == Some(v))
        })
    }

    fn save(&self, list: &[Silence]) {
        super::save_json(&self.file, &list, "silences");
    }
}

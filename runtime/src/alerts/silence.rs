//! Silences: label matchers with an end time. While a silence matches an
//! alert, its notifications are held back (the alert still moves through
//! its states); a firing alert whose silence ends is announced then. Kept in
//! the runtime store, shared by the nodes of a cluster and kept across
//! restarts; ended ones are dropped.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::backend::runtime_store::RuntimeStore;
use crate::backend::sql::SqlError;

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

/// Why a silence was not added.
#[derive(Debug, thiserror::Error)]
pub enum SilenceError {
    /// The request is wrong; says how.
    #[error("{0}")]
    Invalid(String),
    /// The store did not answer.
    #[error(transparent)]
    Store(#[from] SqlError),
}

/// The silences, kept in the runtime store so every node sees the same;
/// the evaluating node reads them before each evaluation.
#[derive(Debug)]
pub struct Silences {
    /// As last read from the store.
    list: Mutex<Vec<Silence>>,
    store: RuntimeStore,
}

impl Silences {
    /// The silences of `store`.
    pub fn new(store: RuntimeStore) -> Silences {
        Silences {
            list: Mutex::default(),
            store,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Silence>> {
        self.list.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a silence.
    pub async fn add(&self, new: NewSilence, now: u64) -> Result<Silence, SilenceError> {
        if new.matchers.is_empty() {
            return Err(SilenceError::Invalid(
                "a silence needs at least one matcher".into(),
            ));
        }
        if new.duration.is_zero() || new.duration > MAX_SILENCE {
            return Err(SilenceError::Invalid(
                "duration must be more than 0 and at most 30 days".into(),
            ));
        }
        let silence = Silence {
            id: uuid::Uuid::now_v7().to_string(),
            matchers: new.matchers,
            starts_at: now,
            ends_at: now + new.duration.as_millis() as u64,
            comment: new.comment.chars().take(1000).collect(),
        };
        let body =
            serde_json::to_string(&silence).map_err(|e| SilenceError::Invalid(e.to_string()))?;
        self.store
            .add_silence(&silence.id, silence.ends_at as i64, &body, now as i64)
            .await?;
        self.lock().push(silence.clone());
        Ok(silence)
    }

    /// Ends a silence now; false when there is none with `id`.
    pub async fn remove(&self, id: &str, now: u64) -> Result<bool, SqlError> {
        let removed = self.store.remove_silence(id, now as i64).await?;
        self.lock().retain(|s| s.id != id);
        Ok(removed)
    }

    /// The silences in force at `now`, read from the store.
    pub async fn active(&self, now: u64) -> Result<Vec<Silence>, SqlError> {
        self.refresh(now).await?;
        Ok(self.lock().clone())
    }

    /// Reads the silences in force at `now` from the store.
    pub async fn refresh(&self, now: u64) -> Result<(), SqlError> {
        let list: Vec<Silence> = self
            .store
            .silences(now as i64)
            .await?
            .iter()
            .filter_map(|body| serde_json::from_str(body).ok())
            .collect();
        *self.lock() = list;
        Ok(())
    }

    /// Whether a silence in force at `now` matches `labels` (among those
    /// last read).
    pub fn silences(&self, labels: &BTreeMap<String, String>, now: u64) -> bool {
        self.lock().iter().any(|s| {
            s.starts_at <= now
                && now < s.ends_at
                && s.matchers.iter().all(|(k, v)| labels.get(k) == Some(v))
        })
    }
}

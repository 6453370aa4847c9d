//! `[jobs]` and `[[jobs.schedules]]`: the durable job queue, its workers
//! and the operator's schedules; their defaults and checks, with the
//! checks the job queue applies too (queue names, cron expressions).
//!
//! Layer: config, the bottom. It uses nothing of the crate but the config
//! module's own error type and the [`PluginConfig`]s schedules name.

use std::collections::BTreeMap;
use std::time::Duration;

use bytesize::ByteSize;
use croner::Cron;
use croner::parser::{CronParser, Seconds};
use serde::Deserialize;

use super::{ConfigError, PluginConfig, invalid};

/// Queue names: 1 to 64 of a-z, 0-9, `-` and `_`.
pub fn valid_queue(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Parses a cron expression: five fields, or six with seconds first.
pub fn parse_cron(expression: &str) -> Result<Cron, String> {
    CronParser::builder()
        .seconds(Seconds::Optional)
        .build()
        .parse(expression)
        .map_err(|e| format!("`{expression}` is not a cron expression: {e}"))
}

/// `[jobs]`: the durable job queue (in the `sql` backend's engine), the
/// workers of this node and the leader's maintenance.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JobsConfig {
    /// Jobs run at once per queue on this node; a queue not listed is
    /// not worked here. Default: `{ default = 8 }`.
    pub queues: BTreeMap<String, u32>,
    /// Jobs claimed per round trip (at most the free slots).
    pub claim_batch: u32,
    /// How often idle workers look for jobs when no notification wakes
    /// them (PostgreSQL notifies; SQLite across processes relies on this).
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// How often a worker says it is alive (and learns of cancellations).
    #[serde(with = "humantime_serde")]
    pub heartbeat: Duration,
    /// A worker silent this long is dead: the leader's rescuer sends its
    /// running jobs back to the queue.
    #[serde(with = "humantime_serde")]
    pub worker_timeout: Duration,
    /// Time one attempt may take, unless its kind says otherwise.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// The most a kind may ask for.
    #[serde(with = "humantime_serde")]
    pub max_timeout: Duration,
    /// Attempts of a kind that declares 0.
    pub max_attempts: u32,
    /// Retry delay after the first failure; doubles per attempt, with
    /// jitter, up to `backoff_max`.
    #[serde(with = "humantime_serde")]
    pub backoff_base: Duration,
    /// The longest retry delay.
    #[serde(with = "humantime_serde")]
    pub backoff_max: Duration,
    /// Largest payload (API and `jobs.enqueue`).
    pub max_payload: ByteSize,
    /// Completed and cancelled jobs are deleted this long after finishing;
    /// discarded ones are kept for inspection and redrive.
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    /// After downtime, the latest missed tick of a schedule still runs if
    /// it is no older than this; older missed ticks are skipped.
    #[serde(with = "humantime_serde")]
    pub missed_tick_window: Duration,
    /// How often the leader rescues, prunes and checks schedules.
    #[serde(with = "humantime_serde")]
    pub maintenance_interval: Duration,
    /// Connections of the queue's own PostgreSQL pool.
    pub connections: u32,
    /// Schedules declared by the operator (besides the plugins' own).
    pub schedules: Vec<ScheduleConfig>,
}

impl Default for JobsConfig {
    fn default() -> Self {
        JobsConfig {
            queues: BTreeMap::from([("default".to_string(), 8)]),
            claim_batch: 32,
            poll_interval: Duration::from_secs(1),
            heartbeat: Duration::from_secs(2),
            worker_timeout: Duration::from_secs(15),
            timeout: Duration::from_secs(60),
            max_timeout: Duration::from_secs(3600),
            max_attempts: 5,
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(3600),
            max_payload: ByteSize::kib(256),
            retention: Duration::from_secs(24 * 3600),
            missed_tick_window: Duration::from_secs(3600),
            maintenance_interval: Duration::from_secs(1),
            connections: 8,
            schedules: Vec::new(),
        }
    }
}

/// `[[jobs.schedules]]`: a job enqueued on a cron schedule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// The plugin that runs it.
    pub plugin: String,
    /// Unique per plugin.
    pub name: String,
    /// Five fields, or six with seconds first; UTC.
    pub cron: String,
    /// One of the plugin's job kinds.
    pub kind: String,
    /// The payload, as JSON.
    #[serde(default)]
    pub payload: Option<serde_json::Value>,
}

impl JobsConfig {
    /// Checks of `[jobs]`; a schedule must name one of `plugins`.
    pub(super) fn validate(
        &self,
        plugins: &BTreeMap<String, PluginConfig>,
    ) -> Result<(), ConfigError> {
        for (queue, concurrency) in &self.queues {
            if !valid_queue(queue) {
                return invalid(
                    &format!("jobs.queues.{queue}"),
                    "a queue name is 1 to 64 of a-z, 0-9, `-` and `_`",
                );
            }
            if *concurrency == 0 {
                return invalid(&format!("jobs.queues.{queue}"), "must be at least 1");
            }
        }
        if self.claim_batch == 0 || self.max_attempts == 0 || self.connections == 0 {
            return invalid(
                "jobs",
                "claim_batch, max_attempts and connections must be at least 1",
            );
        }
        self.validate_durations()?;
        for (i, schedule) in self.schedules.iter().enumerate() {
            schedule.validate(&format!("jobs.schedules[{i}]"), plugins)?;
        }
        Ok(())
    }

    fn validate_durations(&self) -> Result<(), ConfigError> {
        let durations = [
            ("poll_interval", self.poll_interval),
            ("heartbeat", self.heartbeat),
            ("timeout", self.timeout),
            ("backoff_base", self.backoff_base),
            ("maintenance_interval", self.maintenance_interval),
        ];
        if let Some((key, _)) = durations.iter().find(|(_, d)| d.is_zero()) {
            return invalid(&format!("jobs.{key}"), "must be more than 0");
        }
        if self.worker_timeout < self.heartbeat * 3 {
            return invalid("jobs.worker_timeout", "must be at least 3 heartbeats");
        }
        if self.timeout > self.max_timeout || self.backoff_base > self.backoff_max {
            return invalid(
                "jobs",
                "timeout must be at most max_timeout and backoff_base at most backoff_max",
            );
        }
        Ok(())
    }
}

impl ScheduleConfig {
    fn validate(
        &self,
        key: &str,
        plugins: &BTreeMap<String, PluginConfig>,
    ) -> Result<(), ConfigError> {
        if !plugins.contains_key(&self.plugin) {
            return invalid(key, &format!("plugin `{}` is not configured", self.plugin));
        }
        if let Err(message) = parse_cron(&self.cron) {
            return invalid(&format!("{key}.cron"), &message);
        }
        if self.name.is_empty() || self.kind.is_empty() {
            return invalid(key, "name and kind must not be empty");
        }
        Ok(())
    }
}

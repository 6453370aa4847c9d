//! What exactly one node does for the queue (the leader, elected with a
//! PostgreSQL advisory lock held on a connection of its own; with SQLite
//! the one node leads): rescue jobs of dead workers, prune finished jobs,
//! enqueue scheduled ticks, forward SQLite outboxes.
//!
//! Schedules: every tick enqueues one job with the unique key
//! `schedule:<name>:<tick ms>`, so a tick cannot be enqueued twice, not even
//! by two leaders during a handover. After downtime only the latest missed
//! tick runs, and only when it is at most `jobs.missed_tick_window` old.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::backend::jobs::NewJob;
use crate::backend::sql::{Leader, SqlService};
use crate::capability::jobs::queue::{EnqueueOptions, JobKinds, Jobs, ScheduleSpec};
use crate::clock::now_ms;
use crate::deploy::Registry;
use crate::monitor::Metrics;

/// Prune at most this often.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// The leader's loop; runs until the task is aborted.
pub async fn run(jobs: Jobs, plugins: Registry, sql: SqlService, metrics: Arc<Metrics>) {
    let config = jobs.config().clone();
    let mut tick = tokio::time::interval(config.maintenance_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut leader: Option<Leader> = None;
    let mut last_tick: HashMap<(String, String), i64> = HashMap::new();
    let mut last_prune = 0i64;
    loop {
        tick.tick().await;
        if !sql.hold_lead("jobs", &mut leader).await {
            last_tick.clear();
            continue;
        }
        let now = now_ms() as i64;
        let dead_before = now - config.worker_timeout.as_millis() as i64;
        match jobs.store().rescue(now, dead_before).await {
            Ok(r) if r.retried > 0 => tracing::warn!(
                jobs = r.retried,
                discarded = r.discarded,
                "rescued jobs of workers that stopped answering"
            ),
            Ok(_) => {}
            Err(err) => tracing::warn!(%err, "job rescue failed"),
        }
        if now - last_prune >= PRUNE_EVERY.as_millis() as i64 {
            last_prune = now;
            let before = now - config.retention.as_millis() as i64;
            match jobs.store().prune(before).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(jobs = n, "pruned finished jobs"),
                Err(err) => tracing::warn!(%err, "job pruning failed"),
            }
        }
        match jobs.store().depth().await {
            Ok(counts) => metrics.job_depth(&counts),
            Err(err) => tracing::debug!(%err, "cannot sample the queue depth"),
        }
        let loaded = plugins.load_full();
        for (name, plugin) in loaded.iter() {
            // A plugin enqueues only its own kinds: without any, it has
            // written no outbox.
            let Some(kinds) = plugin.context().job_kinds() else {
                continue;
            };
            if !kinds.kinds.is_empty()
                && let Some(db) = plugin.context().database()
                && let Err(err) = jobs.forward_outbox(db).await
            {
                tracing::warn!(plugin = %name, %err, "cannot forward the job outbox");
            }
            for schedule in &kinds.schedules {
                let key = (name.clone(), schedule.name.clone());
                enqueue_tick(
                    &jobs,
                    name,
                    kinds,
                    schedule,
                    now,
                    last_tick.entry(key).or_default(),
                )
                .await;
            }
        }
    }
}

/// Enqueues the latest tick of `schedule` at or before `now` if it is newer
/// than `last` (and, right after taking the lead, recent enough).
async fn enqueue_tick(
    jobs: &Jobs,
    plugin: &str,
    kinds: &JobKinds,
    schedule: &ScheduleSpec,
    now: i64,
    last: &mut i64,
) {
    let Some(at) = DateTime::<Utc>::from_timestamp_millis(now) else {
        return;
    };
    let Ok(tick) = schedule.cron.find_previous_occurrence(&at, true) else {
        return;
    };
    let tick = tick.timestamp_millis();
    if tick <= *last {
        return;
    }
    let window = jobs.config().missed_tick_window.as_millis() as i64;
    if *last == 0 && now - tick > window {
        *last = tick;
        return;
    }
    let job = match jobs.prepare(
        plugin,
        kinds,
        &schedule.kind,
        schedule.payload.clone(),
        EnqueueOptions::default(),
        None,
    ) {
        Ok(job) => NewJob {
            unique_key: Some(format!("schedule:{}:{tick}", schedule.name)),
            ..job
        },
        Err(err) => {
            *last = tick;
            tracing::warn!(plugin, schedule = %schedule.name, %err, "cannot enqueue a scheduled job");
            return;
        }
    };
    match jobs.store().insert(&[job]).await {
        Ok(ids) => {
            *last = tick;
            if ids.first().is_some_and(Option::is_some) {
                jobs.wake().notify_waiters();
                tracing::info!(plugin, schedule = %schedule.name, tick, "scheduled job enqueued");
            }
        }
        Err(err) => {
            tracing::warn!(plugin, schedule = %schedule.name, %err, "cannot enqueue a scheduled job")
        }
    }
}

//! A plugin's job kinds and schedules: what its `job-handler` declares and
//! the operator's `[[jobs.schedules]]` for it, checked, with the host's
//! defaults applied.
//!
//! Layer: `capability` (part of `capability::jobs`); it may call `config`
//! (the jobs settings, cron and queue-name checks), nothing above.

use super::queue::{JobKinds, KindSpec, ScheduleSpec};
use crate::capability::DeclaredJobs;
use crate::capability::bindings::job_handler::{JobKind, Schedule};
use crate::config::jobs::{parse_cron, valid_queue};
use crate::config::{JobsConfig, ScheduleConfig};

/// Checks the kinds and schedules `job-handler` declared (read with
/// the manifest; `None` without the export) and applies the host's
/// defaults; adds the operator's schedules for this plugin
/// (`[[jobs.schedules]]`).
pub fn check(
    config: &JobsConfig,
    declared: Option<Result<DeclaredJobs, String>>,
    operator: &[ScheduleConfig],
) -> Result<JobKinds, String> {
    let mut kinds = JobKinds::default();
    let Some(declared) = declared else {
        return match operator.first() {
            Some(s) => Err(format!(
                "schedule `{}` in trellis.toml, but the plugin exports no job-handler",
                s.name
            )),
            None => Ok(kinds),
        };
    };
    let (declared, schedules) =
        declared.map_err(|err| format!("listing job kinds failed: {err}"))?;
    for kind in declared {
        let (name, spec) = check_kind(config, kind)?;
        if kinds.kinds.insert(name.clone(), spec).is_some() {
            return Err(format!("kind `{name}` is declared twice"));
        }
    }
    add_schedules(&mut kinds, schedules, operator)?;
    Ok(kinds)
}

/// One kind `job-handler` declared, checked, with the host's defaults
/// applied: its name and what the queue keeps of it.
fn check_kind(config: &JobsConfig, kind: JobKind) -> Result<(String, KindSpec), String> {
    if kind.name.is_empty() || kind.name.len() > 100 {
        return Err(format!("kind name `{}` must be 1 to 100 bytes", kind.name));
    }
    let queue = if kind.queue.is_empty() {
        "default".to_string()
    } else {
        kind.queue
    };
    if !valid_queue(&queue) {
        return Err(format!(
            "kind `{}`: queue `{queue}` is not 1 to 64 of a-z, 0-9, `-` and `_`",
            kind.name
        ));
    }
    let timeout = match kind.timeout_ms {
        0 => config.timeout,
        ms => std::time::Duration::from_millis(u64::from(ms)),
    };
    if timeout > config.max_timeout {
        return Err(format!(
            "kind `{}` asks for a timeout of {}; jobs.max_timeout is {}",
            kind.name,
            humantime::format_duration(timeout),
            humantime::format_duration(config.max_timeout)
        ));
    }
    let spec = KindSpec {
        queue,
        max_attempts: if kind.max_attempts == 0 {
            config.max_attempts
        } else {
            kind.max_attempts
        },
        timeout,
        priority: kind.priority,
    };
    Ok((kind.name, spec))
}

/// Adds the schedules `job-handler` declared, then the operator's for this
/// plugin: each with a valid cron expression, enqueueing a known kind, and
/// named once.
fn add_schedules(
    kinds: &mut JobKinds,
    schedules: Vec<Schedule>,
    operator: &[ScheduleConfig],
) -> Result<(), String> {
    let from_operator = operator.iter().map(|s| {
        let payload = s
            .payload
            .as_ref()
            .map(|p| p.to_string().into_bytes())
            .unwrap_or_default();
        (s.name.clone(), s.cron.clone(), s.kind.clone(), payload)
    });
    let from_plugin = schedules
        .into_iter()
        .map(|s| (s.name, s.cron, s.kind, s.payload));
    for (name, cron, kind, payload) in from_plugin.chain(from_operator) {
        let cron = parse_cron(&cron).map_err(|e| format!("schedule `{name}`: {e}"))?;
        if !kinds.kinds.contains_key(&kind) {
            return Err(format!("schedule `{name}` enqueues unknown kind `{kind}`"));
        }
        if kinds.schedules.iter().any(|s| s.name == name) {
            return Err(format!("schedule `{name}` is declared twice"));
        }
        kinds.schedules.push(ScheduleSpec {
            name,
            cron,
            kind,
            payload,
        });
    }
    Ok(())
}

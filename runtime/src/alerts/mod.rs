//! Alerting: rules from `[alerts]` evaluated over the runtime's own figures
//! every `evaluation_interval`. Each alert (a rule and one label set; its
//! fingerprint is the hash of the labels) goes inactive → pending →
//! firing → resolved; every transition to firing or resolved is posted once
//! to each webhook (with retries). The evaluating node saves the states in
//! the runtime store (`<data_dir>/runtime.db`, or the runtime's PostgreSQL
//! schema a cluster shares), and a node that starts evaluating — after a
//! restart, or taking over from another — continues from them, so a firing
//! alert is neither forgotten nor announced again.

mod notify;
pub mod silence;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use crate::config::alert_rule::{Expr, Op, Signal};
pub use notify::Notifier;
pub use silence::{NewSilence, Silence, SilenceError, Silences};

use crate::backend::runtime_store::RuntimeStore;
use crate::backend::sql::SqlError;
use crate::config::{AlertRule, AlertsConfig};
use crate::monitor::Window;

/// The key of the alert states in the store's `runtime_state`.
const STATE_KEY: &str = "alerts";

/// Resolved alerts stay listed this long.
const RESOLVED_KEPT: Duration = Duration::from_secs(15 * 60);

/// A rule, parsed.
#[derive(Debug, Clone)]
struct Rule {
    config: AlertRule,
    expr: Expr,
}

/// Where an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// The condition holds, not yet for `for`.
    Pending,
    /// The condition held for `for`.
    Firing,
    /// It fired and the condition cleared (after `keep_firing_for`).
    Resolved,
}

/// One alert: a rule and a label set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Hash of the labels.
    pub fingerprint: String,
    /// The rule's name.
    pub rule: String,
    /// `alertname`, the route's labels, the rule's labels, `severity`.
    pub labels: BTreeMap<String, String>,
    /// Where it is.
    pub state: State,
    /// The value last evaluated.
    pub value: Option<f64>,
    /// Since when the condition holds (Unix ms).
    pub active_since: u64,
    /// When it last held (Unix ms).
    pub last_true: u64,
    /// When it fired (Unix ms).
    pub fired_at: Option<u64>,
    /// When it resolved (Unix ms).
    pub resolved_at: Option<u64>,
    /// Whether its firing was announced (not held back by a silence).
    #[serde(default)]
    pub notified: bool,
    /// Whether a silence matches it now.
    #[serde(default)]
    pub silenced: bool,
}

/// What the rules read, gathered once per evaluation.
#[derive(Debug, Default)]
pub struct Inputs {
    /// Per route: plugin, route, method and its window.
    pub routes: Vec<(String, String, String, Arc<Window>)>,
    /// Query cache hits over lookups since start (`None` before any).
    pub query_cache_hit_rate: Option<f64>,
    /// Instances alive.
    pub instances_in_use: f64,
    /// Resident memory.
    pub process_rss_bytes: Option<f64>,
    /// Error groups flagged spiking.
    pub error_groups_spiking: f64,
    /// Jobs waiting in the queue (`None`: the queue did not answer).
    pub job_queue_depth: Option<f64>,
}

/// A transition to announce.
#[derive(Debug, Clone, Serialize)]
pub struct Notification {
    /// `firing` or `resolved`.
    pub status: State,
    /// The alert.
    pub alert: Alert,
    /// The rule's summary.
    pub summary: Option<String>,
    /// The rule's expression.
    pub expr: String,
}

/// The rules and the alerts they raised.
#[derive(Debug)]
pub struct Alerts {
    rules: Vec<Rule>,
    alerts: Mutex<BTreeMap<String, Alert>>,
    store: RuntimeStore,
    /// Whether this node evaluates (one node per shared database does).
    leading: AtomicBool,
    /// Whether `alerts` holds the stored states (taken up on leading).
    resumed: AtomicBool,
    /// Whether the last save failed.
    unsaved: AtomicBool,
    /// Silences in force.
    silences: Silences,
}

impl Alerts {
    /// The rules of `config` (already validated), their states and the
    /// silences kept in `store`.
    pub fn new(config: &AlertsConfig, store: RuntimeStore) -> Alerts {
        let rules: Vec<Rule> = config
            .rules
            .iter()
            .filter_map(|r| {
                Expr::parse(&r.expr).ok().map(|expr| Rule {
                    config: r.clone(),
                    expr,
                })
            })
            .collect();
        Alerts {
            rules,
            alerts: Mutex::default(),
            silences: Silences::new(store.clone()),
            store,
            leading: AtomicBool::new(false),
            resumed: AtomicBool::new(false),
            unsaved: AtomicBool::new(false),
        }
    }

    /// The silences.
    pub fn silences(&self) -> &Silences {
        &self.silences
    }

    /// Records whether this node evaluates the rules. A node that stops
    /// leading takes the stored states up again when it leads next.
    pub fn set_leading(&self, leading: bool) {
        self.leading.store(leading, Ordering::Relaxed);
        if !leading {
            self.resumed.store(false, Ordering::Relaxed);
        }
    }

    /// Whether this node evaluates the rules.
    pub fn leading(&self) -> bool {
        self.leading.load(Ordering::Relaxed)
    }

    /// Whether there is anything to evaluate.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Every alert not inactive, firing first: this node's own states when
    /// it evaluates (and has taken them up), else those the evaluating node
    /// stored.
    pub async fn list(&self) -> Result<Vec<Alert>, SqlError> {
        let mut list: Vec<Alert> = if self.leading() && self.resumed.load(Ordering::Relaxed) {
            let alerts = self.alerts.lock().unwrap_or_else(|e| e.into_inner());
            alerts.values().cloned().collect()
        } else {
            self.stored().await?
        };
        list.sort_by_key(|a| (a.state != State::Firing, a.state, a.rule.clone()));
        Ok(list)
    }

    /// The states stored by the node that evaluated last, for the rules
    /// configured here.
    async fn stored(&self) -> Result<Vec<Alert>, SqlError> {
        let saved: Vec<Alert> = match self.store.state(STATE_KEY).await? {
            Some(json) => serde_json::from_str(&json).unwrap_or_else(|err| {
                tracing::warn!(%err, "stored alert states are unreadable; starting afresh");
                Vec::new()
            }),
            None => Vec::new(),
        };
        Ok(saved
            .into_iter()
            .filter(|a| self.rules.iter().any(|r| r.config.name == a.rule))
            .collect())
    }

    /// One evaluation on the leading node: takes the stored states up
    /// first if it has not yet, reads the silences, evaluates at `now` and
    /// stores the states when they changed. Returns the transitions to
    /// announce. With the store unreachable it evaluates nothing (going on
    /// from a blank state could announce a firing alert twice); once the
    /// states are held, a failed read of the silences keeps the last ones,
    /// and a failed save is retried at the next evaluation.
    pub async fn evaluate_and_save(
        &self,
        inputs: &Inputs,
        now: u64,
    ) -> Result<Vec<Notification>, SqlError> {
        if !self.resumed.load(Ordering::Relaxed) {
            let stored = self.stored().await?;
            *self.alerts.lock().unwrap_or_else(|e| e.into_inner()) = stored
                .into_iter()
                .map(|a| (a.fingerprint.clone(), a))
                .collect();
            self.resumed.store(true, Ordering::Relaxed);
        }
        if let Err(err) = self.silences.refresh(now).await {
            tracing::warn!(%err, "cannot read the silences; using the last ones read");
        }
        let (notifications, changed) = self.evaluate(inputs, now);
        if changed || self.unsaved.load(Ordering::Relaxed) {
            let list: Vec<Alert> = {
                let alerts = self.alerts.lock().unwrap_or_else(|e| e.into_inner());
                alerts.values().cloned().collect()
            };
            let saved = match serde_json::to_string(&list) {
                Ok(json) => self.store.set_state(STATE_KEY, &json, now as i64).await,
                Err(err) => Err(SqlError::Unavailable(err.to_string())),
            };
            if let Err(err) = &saved {
                tracing::warn!(%err, "cannot save the alert states; retrying at the next evaluation");
            }
            self.unsaved.store(saved.is_err(), Ordering::Relaxed);
        }
        Ok(notifications)
    }

    /// The rules, as configured.
    pub fn rules(&self) -> Vec<&AlertRule> {
        self.rules.iter().map(|r| &r.config).collect()
    }

    /// One evaluation at `now` (Unix ms): moves every alert and returns the
    /// transitions to announce, and whether any state changed.
    fn evaluate(&self, inputs: &Inputs, now: u64) -> (Vec<Notification>, bool) {
        let mut notifications = Vec::new();
        let mut alerts = self.alerts.lock().unwrap_or_else(|e| e.into_inner());
        let before = alerts.clone();
        for rule in &self.rules {
            let mut active = Vec::new();
            for (labels, value) in samples(rule, inputs) {
                if value.is_some_and(|v| rule.expr.op.holds(v, rule.expr.threshold)) {
                    let fingerprint = fingerprint(&labels);
                    let alert = alerts
                        .entry(fingerprint.clone())
                        .and_modify(|a| {
                            if a.state == State::Resolved {
                                *a = fresh(rule, &fingerprint, &labels, now);
                            }
                        })
                        .or_insert_with(|| fresh(rule, &fingerprint, &labels, now));
                    alert.value = value;
                    alert.last_true = now;
                    let held = Duration::from_millis(now.saturating_sub(alert.active_since));
                    if alert.state == State::Pending && held >= rule.config.for_ {
                        alert.state = State::Firing;
                        alert.fired_at = Some(now);
                        notifications.push(notification(rule, alert));
                    }
                    active.push(fingerprint);
                }
            }
            let cleared: Vec<String> = alerts
                .values()
                .filter(|a| a.rule == rule.config.name && !active.contains(&a.fingerprint))
                .map(|a| a.fingerprint.clone())
                .collect();
            for fingerprint in cleared {
                let Some(alert) = alerts.get_mut(&fingerprint) else {
                    continue;
                };
                let quiet = Duration::from_millis(now.saturating_sub(alert.last_true));
                match alert.state {
                    State::Pending => {
                        alerts.remove(&fingerprint);
                    }
                    State::Firing if quiet >= rule.config.keep_firing_for => {
                        alert.state = State::Resolved;
                        alert.resolved_at = Some(now);
                        notifications.push(notification(rule, alert));
                    }
                    State::Resolved
                        if Duration::from_millis(
                            now.saturating_sub(alert.resolved_at.unwrap_or(now)),
                        ) >= RESOLVED_KEPT =>
                    {
                        alerts.remove(&fingerprint);
                    }
                    _ => {}
                }
            }
        }
        let notifications = self.hold_back_silenced(&mut alerts, notifications, now);
        let changed = *alerts != before;
        (notifications, changed)
    }

    /// Drops the notifications a silence holds back, and announces firing
    /// alerts held back before whose silence has ended.
    fn hold_back_silenced(
        &self,
        alerts: &mut BTreeMap<String, Alert>,
        transitions: Vec<Notification>,
        now: u64,
    ) -> Vec<Notification> {
        let mut out = Vec::new();
        for n in transitions {
            let silenced = self.silences.silences(&n.alert.labels, now);
            let Some(alert) = alerts.get_mut(&n.alert.fingerprint) else {
                continue;
            };
            match n.status {
                State::Firing if !silenced => {
                    alert.notified = true;
                    out.push(n);
                }
                // A resolution is news only where the firing was.
                State::Resolved if alert.notified && !silenced => out.push(n),
                _ => {}
            }
        }
        for alert in alerts.values_mut() {
            alert.silenced = self.silences.silences(&alert.labels, now);
            if alert.state == State::Firing && !alert.notified && !alert.silenced {
                alert.notified = true;
                if let Some(rule) = self.rules.iter().find(|r| r.config.name == alert.rule) {
                    out.push(notification(rule, alert));
                }
            }
        }
        out
    }
}

/// The rule's samples: a label set and a value (`None`: no data).
fn samples(rule: &Rule, inputs: &Inputs) -> Vec<(BTreeMap<String, String>, Option<f64>)> {
    let mut base = rule.config.labels.clone();
    base.insert("alertname".into(), rule.config.name.clone());
    base.insert("severity".into(), rule.config.severity.clone());
    let expr = &rule.expr;
    let host = |value: Option<f64>| vec![(base.clone(), value)];
    match expr.signal {
        Signal::QueryCacheHitRate => host(inputs.query_cache_hit_rate),
        Signal::InstancesInUse => host(Some(inputs.instances_in_use)),
        Signal::ProcessRss => host(inputs.process_rss_bytes),
        Signal::ErrorGroupsSpiking => host(Some(inputs.error_groups_spiking)),
        Signal::JobQueueDepth => host(inputs.job_queue_depth),
        _ => inputs
            .routes
            .iter()
            .filter(|(plugin, route, method, _)| {
                let wanted = |key: &str, value: &str| {
                    expr.matchers.get(key).is_none_or(|want| want == value)
                };
                wanted("plugin", plugin) && wanted("route", route) && wanted("method", method)
            })
            .map(|(plugin, route, method, window)| {
                let summary = window.summary(expr.window);
                let value = match expr.signal {
                    Signal::RouteLatency(50) => summary.p50_ms,
                    Signal::RouteLatency(95) => summary.p95_ms,
                    Signal::RouteLatency(_) => summary.p99_ms,
                    Signal::RouteErrorRate => (summary.requests > 0).then_some(summary.error_rate),
                    Signal::RouteRps => Some(summary.rps),
                    _ => Some(summary.requests as f64),
                };
                let mut labels = base.clone();
                labels.insert("plugin".into(), plugin.clone());
                labels.insert("route".into(), route.clone());
                labels.insert("method".into(), method.clone());
                (labels, value)
            })
            .collect(),
    }
}

fn fresh(rule: &Rule, fingerprint: &str, labels: &BTreeMap<String, String>, now: u64) -> Alert {
    Alert {
        fingerprint: fingerprint.to_string(),
        rule: rule.config.name.clone(),
        labels: labels.clone(),
        state: State::Pending,
        value: None,
        active_since: now,
        last_true: now,
        fired_at: None,
        resolved_at: None,
        notified: false,
        silenced: false,
    }
}

fn notification(rule: &Rule, alert: &Alert) -> Notification {
    Notification {
        status: alert.state,
        alert: alert.clone(),
        summary: rule.config.summary.clone(),
        expr: rule.config.expr.clone(),
    }
}

fn fingerprint(labels: &BTreeMap<String, String>) -> String {
    let parts: Vec<&str> = labels
        .iter()
        .flat_map(|(k, v)| [k.as_str(), v.as_str()])
        .collect();
    crate::monitor::fingerprint(&parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn alerts(expr: &str, for_: u64, keep: u64, store: &RuntimeStore) -> Alerts {
        let config = AlertsConfig {
            rules: vec![AlertRule {
                name: "TooMany".into(),
                expr: expr.into(),
                for_: Duration::from_millis(for_),
                keep_firing_for: Duration::from_millis(keep),
                severity: "critical".into(),
                labels: BTreeMap::from([("team".into(), "api".into())]),
                summary: None,
            }],
            ..AlertsConfig::default()
        };
        let alerts = Alerts::new(&config, store.clone());
        alerts.set_leading(true);
        alerts
    }

    fn inputs(instances: f64) -> Inputs {
        Inputs {
            instances_in_use: instances,
            ..Inputs::default()
        }
    }

    async fn store(name: &str) -> RuntimeStore {
        let dir =
            std::env::temp_dir().join(format!("trellis-alerts-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        RuntimeStore::sqlite(&dir, Duration::from_secs(5))
            .await
            .expect("store")
    }

    async fn evaluate(alerts: &Alerts, instances: f64, now: u64) -> Vec<Notification> {
        alerts
            .evaluate_and_save(&inputs(instances), now)
            .await
            .expect("store answers")
    }

    async fn listed(alerts: &Alerts) -> Vec<Alert> {
        alerts.list().await.expect("store answers")
    }

    #[tokio::test]
    async fn pending_firing_resolved_with_one_notification_each() {
        let store = store("cycle").await;
        let alerts = alerts("instances_in_use > 5", 1000, 500, &store).await;
        assert!(evaluate(&alerts, 9.0, 0).await.is_empty());
        assert_eq!(listed(&alerts).await[0].state, State::Pending);
        assert!(evaluate(&alerts, 9.0, 500).await.is_empty());
        let fired = evaluate(&alerts, 9.0, 1000).await;
        assert_eq!(fired.len(), 1);
        assert_eq!(fired[0].status, State::Firing);
        assert_eq!(fired[0].alert.labels["team"], "api");
        // Deduplicated while firing.
        assert!(evaluate(&alerts, 9.0, 2000).await.is_empty());
        // keep_firing_for: still firing 400 ms after it cleared.
        assert!(evaluate(&alerts, 1.0, 2400).await.is_empty());
        let resolved = evaluate(&alerts, 1.0, 2500).await;
        assert_eq!(resolved.len(), 1);
        assert_eq!(resolved[0].status, State::Resolved);

        // A restart keeps the state: no second "firing".
        let again = alerts_in(&store).await;
        assert_eq!(listed(&again).await[0].state, State::Resolved);
    }

    async fn alerts_in(store: &RuntimeStore) -> Alerts {
        alerts("instances_in_use > 5", 1000, 500, store).await
    }

    #[tokio::test]
    async fn a_firing_alert_survives_a_restart_without_renotifying() {
        let store = store("restart").await;
        let first = alerts("instances_in_use > 5", 0, 0, &store).await;
        assert_eq!(evaluate(&first, 9.0, 0).await.len(), 1);
        let second = alerts_in(&store).await;
        assert!(evaluate(&second, 9.0, 100).await.is_empty());
        assert_eq!(listed(&second).await[0].state, State::Firing);
    }

    #[tokio::test]
    async fn a_node_that_does_not_evaluate_lists_the_stored_states() {
        let store = store("follower").await;
        let leader = alerts("instances_in_use > 5", 0, 0, &store).await;
        let follower = alerts_in(&store).await;
        follower.set_leading(false);
        assert!(listed(&follower).await.is_empty());
        assert_eq!(evaluate(&leader, 9.0, 0).await.len(), 1);
        assert_eq!(listed(&follower).await[0].state, State::Firing);
    }

    #[tokio::test]
    async fn a_pending_alert_that_clears_goes_quietly() {
        let store = store("quiet").await;
        let alerts = alerts("instances_in_use > 5", 1000, 0, &store).await;
        evaluate(&alerts, 9.0, 0).await;
        assert!(evaluate(&alerts, 1.0, 100).await.is_empty());
        assert!(listed(&alerts).await.is_empty());
    }
}

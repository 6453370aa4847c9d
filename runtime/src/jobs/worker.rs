//! This node's workers: per configured queue, a loop that claims jobs in
//! batches (woken by `NOTIFY`, a local enqueue or the poll interval) and
//! runs each in a fresh instance of its plugin; a heartbeat that keeps the
//! worker alive in the queue's eyes and learns of cancellations; and a
//! completer that records successes in batches.
//!
//! Layer: `jobs`; it may call `deploy` (the registry of live plugins),
//! `plugin` (a job attempt), `capability::jobs` (the queue), `backend::jobs`
//! and `clock`, never `http` or `server`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::task::JoinSet;

use crate::backend::jobs::{Finish, Job};
use crate::capability::jobs::queue::Jobs;
use crate::clock::now_ms;
use crate::deploy::Registry;
use crate::plugin::JobOutcome;

/// Successes recorded per statement at most.
const COMPLETE_BATCH: usize = 512;

/// Milliseconds a busy worker waits at most for a batch's worth of free
/// slots before claiming what it has.
const BATCH_WAIT_TICKS: u32 = 5;

/// Tries to record an attempt's end while the database is away (about a
/// minute with the growing pauses between them).
const RECORD_TRIES: u64 = 20;

/// How long jobs interrupted at the end of the grace period get to stop
/// (a guest stops at its next epoch tick; one waiting in a host call is
/// dropped when the process ends).
const INTERRUPT_WAIT: Duration = Duration::from_millis(500);

/// The workers of this node. Dropping them aborts everything; call
/// [`Workers::stop`] to drain.
#[derive(Debug)]
pub struct Workers {
    id: String,
    jobs: Jobs,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
    running: Running,
    /// Set when the grace period is over: what the jobs still running do
    /// from then on is not recorded (they were handed back).
    handed_back: Arc<AtomicBool>,
    /// Per queue: its slots, and how many there are.
    slots: Vec<(Arc<Semaphore>, u32)>,
    completer: Option<(mpsc::UnboundedSender<Done>, tokio::task::JoinHandle<()>)>,
}

/// Jobs running on this node: id → (attempt, cancel flag).
type Running = Arc<Mutex<HashMap<String, (i64, Arc<AtomicBool>)>>>;

/// A success waiting to be recorded.
type Done = (String, i64, Vec<u8>);

/// What every job task needs.
#[derive(Clone)]
struct Context {
    worker: String,
    jobs: Jobs,
    plugins: Registry,
    running: Running,
    handed_back: Arc<AtomicBool>,
    done: mpsc::UnboundedSender<Done>,
    /// Set once the worker is in the queue's worker list: claiming before
    /// would let the leader rescue its jobs as a dead worker's.
    registered: watch::Receiver<bool>,
}

impl Workers {
    /// Starts a worker for every queue in `jobs.queues`.
    pub fn start(jobs: Jobs, plugins: Registry) -> Workers {
        let id = format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple());
        let (stop, stopped) = watch::channel(false);
        let running: Running = Arc::default();
        let (done, completions) = mpsc::unbounded_channel();
        let (registered_tx, registered) = watch::channel(false);
        let completer = tokio::spawn(complete(jobs.clone(), id.clone(), completions));
        let handed_back = Arc::new(AtomicBool::new(false));
        let context = Context {
            worker: id.clone(),
            jobs: jobs.clone(),
            plugins,
            running: running.clone(),
            handed_back: handed_back.clone(),
            done: done.clone(),
            registered,
        };
        let mut tasks = JoinSet::new();
        let mut slots = Vec::new();
        for (queue, concurrency) in &jobs.config().queues {
            let semaphore = Arc::new(Semaphore::new(*concurrency as usize));
            slots.push((semaphore.clone(), *concurrency));
            tasks.spawn(fetch(
                context.clone(),
                queue.clone(),
                (semaphore, *concurrency),
                stopped.clone(),
            ));
        }
        tasks.spawn(heartbeat(context.clone(), registered_tx, stopped.clone()));
        let store = jobs.store().clone();
        let wake = jobs.wake().clone();
        tasks.spawn(async move { store.listen(wake).await });
        tracing::info!(worker = %id, queues = ?jobs.config().queues, "job workers started");
        Workers {
            id,
            jobs,
            stop,
            tasks,
            running,
            handed_back,
            slots,
            completer: Some((done, completer)),
        }
    }

    /// This worker's id in the queue.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Stops claiming, lets running jobs finish within `grace`, then hands
    /// the rest back to the queue and interrupts them; records what
    /// completed, and leaves the queue's worker list.
    pub async fn stop(mut self, grace: Duration) {
        let _ = self.stop.send(true);
        if tokio::time::timeout(grace, self.drained()).await.is_err() {
            self.hand_back().await;
        }
        self.tasks.abort_all();
        if let Some((done, completer)) = self.completer.take() {
            drop(done);
            // The fetch and job tasks hold senders too; they are aborted.
            let _ = tokio::time::timeout(Duration::from_secs(5), completer).await;
        }
        if let Err(err) = self.jobs.store().retire(&self.id).await {
            tracing::warn!(%err, "could not leave the worker list");
        }
        tracing::info!(worker = %self.id, "job workers stopped");
    }

    /// Resolves when no job runs on this node.
    async fn drained(&self) {
        for (semaphore, n) in &self.slots {
            let _ = semaphore.acquire_many(*n).await;
        }
    }

    /// The grace period is over: the jobs still running go back to the
    /// queue (their attempt stays spent: their next run is a higher
    /// attempt), and are then interrupted, so none runs on once its job
    /// was handed back.
    async fn hand_back(&self) {
        self.handed_back.store(true, Ordering::Relaxed);
        let left: Vec<(String, i64, Arc<AtomicBool>)> = self
            .running
            .lock()
            .map(|r| {
                r.iter()
                    .map(|(id, (attempt, flag))| (id.clone(), *attempt, flag.clone()))
                    .collect()
            })
            .unwrap_or_default();
        tracing::warn!(
            jobs = left.len(),
            "grace period over; returning jobs to the queue"
        );
        for (id, attempt, _) in &left {
            let now = now_ms() as i64;
            if let Err(err) = self
                .jobs
                .store()
                .finish(id, *attempt, &self.id, &Finish::HandBack(now), now)
                .await
            {
                tracing::warn!(job = %id, %err, "could not return a job; the rescuer will");
            }
        }
        for (_, _, flag) in &left {
            flag.store(true, Ordering::Relaxed);
        }
        if tokio::time::timeout(INTERRUPT_WAIT, self.drained())
            .await
            .is_err()
        {
            tracing::warn!("jobs still in host calls after the interruption; leaving them");
        }
    }

    /// A handle that stops jobs running on this node.
    pub fn canceller(&self) -> Canceller {
        Canceller(self.running.clone())
    }
}

/// Stops jobs running on this node, for the job API's cancel.
#[derive(Debug, Clone)]
pub struct Canceller(Running);

impl Canceller {
    /// Asks a job running here to stop (its next epoch tick interrupts
    /// it). False when it does not run here.
    pub fn cancel(&self, id: &str) -> bool {
        cancel_local(&self.0, id)
    }
}

fn cancel_local(running: &Running, id: &str) -> bool {
    let Ok(running) = running.lock() else {
        return false;
    };
    match running.get(id) {
        Some((_, flag)) => {
            flag.store(true, Ordering::Relaxed);
            true
        }
        None => false,
    }
}

/// Claims and starts jobs of `queue` while it has free slots.
async fn fetch(
    context: Context,
    queue: String,
    (slots, concurrency): (Arc<Semaphore>, u32),
    mut stopped: watch::Receiver<bool>,
) {
    let config = context.jobs.config().clone();
    // A running job's lease outlasts any attempt; a live worker ends its
    // jobs long before, so the lease only matters if it is gone.
    let lease = (config.max_timeout + config.worker_timeout).as_millis() as i64;
    let mut failures = 0u32;
    // While the queue has more than we take, claim in batches rather than a
    // job per freed slot: wait (briefly) for a batch's worth of free slots.
    let batch = (concurrency / 2).clamp(1, config.claim_batch) as usize;
    let mut busy = false;
    let mut registered = context.registered.clone();
    tokio::select! {
        ready = registered.wait_for(|r| *r) => if ready.is_err() { return },
        _ = stopped.changed() => return,
    }
    loop {
        let first = tokio::select! {
            permit = slots.clone().acquire_owned() => permit,
            _ = stopped.changed() => return,
        };
        let Ok(first) = first else { return };
        let mut permits = gather_permits(&slots, first, busy, batch, config.claim_batch).await;
        let wake = context.jobs.wake().clone();
        let notified = wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let now = now_ms() as i64;
        let wanted = permits.len();
        let claimed = context
            .jobs
            .store()
            .claim(&queue, &context.worker, wanted as u32, now, now + lease)
            .await;
        let jobs = match claimed {
            Ok(jobs) => {
                failures = 0;
                jobs
            }
            Err(err) => {
                failures += 1;
                let pause = claim_failed(&queue, &err, failures, config.poll_interval);
                drop(permits);
                tokio::select! {
                    () = tokio::time::sleep(pause) => continue,
                    _ = stopped.changed() => return,
                }
            }
        };
        let got = jobs.len();
        for (job, permit) in jobs.into_iter().zip(permits.drain(..)) {
            tokio::spawn(run(context.clone(), job, permit));
        }
        drop(permits);
        busy = got == wanted;
        if busy {
            continue;
        }
        tokio::select! {
            () = &mut notified => {}
            () = tokio::time::sleep(config.poll_interval) => {}
            _ = stopped.changed() => return,
        }
    }
}

/// `first` and as many more free slots as one claim may fill (`claim_batch`).
/// A `busy` queue has more jobs than were taken: then it first waits
/// (briefly) for a `batch`'s worth of slots to free.
async fn gather_permits(
    slots: &Arc<Semaphore>,
    first: OwnedSemaphorePermit,
    busy: bool,
    batch: usize,
    claim_batch: u32,
) -> Vec<OwnedSemaphorePermit> {
    if busy {
        for _ in 0..BATCH_WAIT_TICKS {
            if 1 + slots.available_permits() >= batch {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let mut permits = vec![first];
    while permits.len() < claim_batch as usize {
        match slots.clone().try_acquire_owned() {
            Ok(permit) => permits.push(permit),
            Err(_) => break,
        }
    }
    permits
}

/// After the `failures`-th claim in a row failed: logs it (the first, then
/// at powers of two) and says how long to pause, longer with each failure
/// up to the poll interval.
fn claim_failed(
    queue: &str,
    err: &impl std::fmt::Display,
    failures: u32,
    poll_interval: Duration,
) -> Duration {
    if failures == 1 || failures.is_power_of_two() {
        tracing::warn!(%queue, %err, failures, "cannot claim jobs; retrying");
    }
    poll_interval.min(Duration::from_millis(100 * u64::from(failures.min(50))))
}

/// Runs one claimed job and records how it ended.
async fn run(context: Context, job: Job, permit: OwnedSemaphorePermit) {
    let cancel = Arc::new(AtomicBool::new(job.cancel_requested));
    if let Ok(mut running) = context.running.lock() {
        running.insert(job.id.clone(), (job.attempt, cancel.clone()));
    }
    let started = Instant::now();
    let finish = attempt(&context, &job, cancel).await;
    if let Ok(mut running) = context.running.lock() {
        running.remove(&job.id);
    }
    let elapsed = started.elapsed();
    let outcome = match &finish {
        Finish::Completed(_) => "completed",
        Finish::Retry { .. } => "retryable",
        Finish::Discard(_) => "discarded",
        Finish::Snooze(_) => "snoozed",
        Finish::HandBack(_) => "handed_back",
        Finish::Cancelled => "cancelled",
    };
    tracing::debug!(job = %job.id, kind = %job.kind, attempt = job.attempt, outcome, elapsed_us = elapsed.as_micros() as u64, "job attempt");
    if let Some(plugin) = context.plugins.load().get(&job.plugin) {
        plugin.job_stats(&job, outcome, elapsed);
    }
    match finish {
        Finish::Completed(result) => {
            let _ = context.done.send((job.id, job.attempt, result));
        }
        // Interrupted because it was handed back: how it ended is not its
        // own (a `cancelled` here would lose the job).
        _ if context.handed_back.load(Ordering::Relaxed) => {}
        other => record(&context, &job, &other).await,
    }
    drop(permit);
}

/// Records how an attempt ended; retries while the queue's database does
/// not answer (a job left `running` would wait for its lease to run out).
async fn record(context: &Context, job: &Job, finish: &Finish) {
    let store = context.jobs.store();
    for failures in 1u64..=RECORD_TRIES {
        let now = now_ms() as i64;
        match store
            .finish(&job.id, job.attempt, &context.worker, finish, now)
            .await
        {
            Ok(true) => return,
            Ok(false) => {
                tracing::debug!(job = %job.id, "job was rescued or handed back meanwhile");
                return;
            }
            Err(err) => {
                if failures == 1 {
                    tracing::warn!(job = %job.id, %err, "cannot record a job's attempt; retrying");
                }
                tokio::time::sleep(Duration::from_millis(250 * failures)).await;
            }
        }
    }
    tracing::error!(job = %job.id, "gave up recording a job's attempt; its lease will run out and it runs again");
}

/// One attempt: find the plugin and kind, run it, decide what follows.
async fn attempt(context: &Context, job: &Job, cancel: Arc<AtomicBool>) -> Finish {
    let now = now_ms() as i64;
    let plugin = context.plugins.load().get(&job.plugin).cloned();
    let Some(plugin) = plugin else {
        // Not (yet) loaded on this node: try again later, spending the attempt.
        return retry_or_discard(
            context,
            job,
            format!("plugin `{}` is not loaded on this worker", job.plugin),
            now,
        );
    };
    let Some(spec) = plugin.context().job_kind(&job.kind) else {
        return Finish::Discard(format!(
            "plugin `{}` has no job kind `{}`",
            job.plugin, job.kind
        ));
    };
    if cancel.load(Ordering::Relaxed) {
        return Finish::Cancelled;
    }
    match plugin.run_job(job, spec.timeout, cancel).await {
        JobOutcome::Completed(result) => Finish::Completed(result),
        JobOutcome::Failed(message) => retry_or_discard(context, job, message, now),
        JobOutcome::RetryIn(delay, message) => {
            if job.attempt >= job.max_attempts {
                Finish::Discard(message)
            } else {
                Finish::Retry {
                    at: now_ms() as i64 + delay.as_millis() as i64,
                    error: message,
                }
            }
        }
        JobOutcome::Fatal(message) => Finish::Discard(message),
        JobOutcome::Snooze(delay) => Finish::Snooze(now_ms() as i64 + delay.as_millis() as i64),
        JobOutcome::Cancelled => Finish::Cancelled,
    }
}

fn retry_or_discard(context: &Context, job: &Job, message: String, now: i64) -> Finish {
    if job.attempt >= job.max_attempts {
        return Finish::Discard(message);
    }
    let delay = context
        .jobs
        .backoff(u32::try_from(job.attempt).unwrap_or(u32::MAX), &job.id);
    Finish::Retry {
        at: now + delay.as_millis() as i64,
        error: message,
    }
}

/// Beats every `jobs.heartbeat`, and stops jobs whose cancellation was
/// asked on another node.
async fn heartbeat(
    context: Context,
    registered: watch::Sender<bool>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(context.jobs.config().heartbeat);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopped.changed() => return,
        }
        match context
            .jobs
            .store()
            .heartbeat(&context.worker, now_ms() as i64)
            .await
        {
            Ok(cancelled) => {
                registered.send_if_modified(|r| !std::mem::replace(r, true));
                for id in cancelled {
                    cancel_local(&context.running, &id);
                }
            }
            Err(err) => tracing::warn!(%err, "job worker heartbeat failed"),
        }
    }
}

/// Records successes in batches: what has arrived since the last write
/// goes in the next one.
async fn complete(jobs: Jobs, worker: String, mut done: mpsc::UnboundedReceiver<Done>) {
    let mut batch = Vec::with_capacity(COMPLETE_BATCH);
    while done.recv_many(&mut batch, COMPLETE_BATCH).await > 0 {
        let mut failures = 0u32;
        loop {
            match jobs
                .store()
                .complete(&batch, &worker, now_ms() as i64)
                .await
            {
                Ok(()) => break,
                Err(err) if u64::from(failures) < RECORD_TRIES => {
                    failures += 1;
                    tracing::warn!(%err, jobs = batch.len(), "cannot record completed jobs; retrying");
                    tokio::time::sleep(Duration::from_millis(250 * u64::from(failures))).await;
                }
                Err(err) => {
                    tracing::error!(%err, jobs = batch.len(), "giving up recording completed jobs; they will run again");
                    break;
                }
            }
        }
        batch.clear();
    }
}

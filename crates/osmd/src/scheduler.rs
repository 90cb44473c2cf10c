//! The scheduler: fires scheduled jobs' occurrences when they come due. It sleeps until the
//! earliest `timeNextExecution` (at most 30 s, so jobs changed by another replica are seen
//! too) and is woken at once when a job on this replica changes. All the work of an
//! occurrence happens in one store transaction (see `Store::scheduled_job_fire_due`).

use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use osm_core::{Occurrence, OccurrenceOutcome};
use osm_store::{Store, StoreResult};
use tokio::sync::{Notify, broadcast};

/// Jobs handled per store transaction.
const BATCH: u32 = 500;
/// Longest sleep between looks at the store.
const MAX_SLEEP: Duration = Duration::from_secs(30);

/// An occurrence the scheduler recorded, with the time its transaction had committed.
#[derive(Debug, Clone)]
pub struct Fired {
    pub occurrence: Occurrence,
    /// Read right before the store transaction that recorded it began: what is between the
    /// due time and this is the scheduler's wake-up, the rest is the transaction.
    pub began_at: Timestamp,
    /// Read right after the store's commit returned: never earlier than the commit.
    pub committed_at: Timestamp,
}

/// Handles everything due at `now`; returns the occurrences recorded. Time is an argument so
/// tests never wait for a clock.
pub async fn run_once(
    store: &dyn Store,
    now: Timestamp,
    catch_up: SignedDuration,
) -> StoreResult<Vec<Occurrence>> {
    Ok(fire_due(store, now, catch_up, false)
        .await?
        .into_iter()
        .map(|f| f.occurrence)
        .collect())
}

/// [`run_once`] with each occurrence's commit time. With `stop_when_short`, a batch smaller
/// than [`BATCH`] ends the pass without another (empty) transaction to confirm it; it may then
/// leave due jobs (an occurrence already recorded by a run-now advances its job without being
/// returned), which the caller must look for again — the background loop does, at once,
/// since the next due time is then in the past.
async fn fire_due(
    store: &dyn Store,
    now: Timestamp,
    catch_up: SignedDuration,
    stop_when_short: bool,
) -> StoreResult<Vec<Fired>> {
    let mut all = vec![];
    loop {
        let began_at = Timestamp::now();
        let batch = store.scheduled_job_fire_due(now, catch_up, BATCH).await?;
        let committed_at = Timestamp::now();
        let done = batch.is_empty() || (stop_when_short && batch.len() < BATCH as usize);
        for o in batch {
            let outcome = o.outcome.as_str();
            metrics::counter!("osm_scheduler_occurrences_total", "outcome" => outcome).increment(1);
            if o.outcome == OccurrenceOutcome::Fired {
                let delay = (committed_at - o.time).as_secs_f64().max(0.0);
                metrics::histogram!("osm_scheduler_firing_delay_seconds").record(delay);
                tracing::info!(job = %o.job_id, occurrence = %o.time, work_requests = o.work_request_ids.len(), "fired");
            } else {
                tracing::warn!(job = %o.job_id, occurrence = %o.time, "occurrence missed while osmd was down; not run");
            }
            all.push(Fired {
                occurrence: o,
                began_at,
                committed_at,
            });
        }
        if done {
            return Ok(all);
        }
    }
}

/// Runs until the task is aborted. Every recorded occurrence is also sent to `fired` (nothing
/// is kept when no one listens).
pub async fn run(
    store: Arc<dyn Store>,
    wake: Arc<Notify>,
    work: Arc<Notify>,
    fired: broadcast::Sender<Fired>,
    catch_up: SignedDuration,
) {
    loop {
        match fire_due(store.as_ref(), Timestamp::now(), catch_up, true).await {
            Ok(recorded) => {
                if recorded
                    .iter()
                    .any(|f| !f.occurrence.work_request_ids.is_empty())
                {
                    work.notify_waiters();
                }
                for f in recorded {
                    let _ = fired.send(f);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "scheduler pass failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        }
        let sleep = match store.scheduled_job_next_due().await {
            Ok(Some(next)) => {
                let until = (next - Timestamp::now()).as_secs_f64().max(0.0);
                Duration::from_secs_f64(until).min(MAX_SLEEP)
            }
            Ok(None) => MAX_SLEEP,
            Err(e) => {
                tracing::warn!(error = %e, "reading the next due job failed");
                Duration::from_secs(1)
            }
        };
        tokio::select! {
            () = tokio::time::sleep(sleep) => {}
            () = wake.notified() => {}
        }
    }
}

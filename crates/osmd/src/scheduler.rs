//! The scheduler: fires scheduled jobs' occurrences when they come due. It sleeps until the
//! earliest `timeNextExecution` (at most 30 s, so jobs changed by another replica are seen
//! too) and is woken at once when a job on this replica changes. All the work of an
//! occurrence happens in one store transaction (see `Store::scheduled_job_fire_due`).

use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use osm_core::{Occurrence, OccurrenceOutcome};
use osm_store::{Store, StoreResult};
use tokio::sync::Notify;

/// Jobs handled per store transaction.
const BATCH: u32 = 500;
/// Longest sleep between looks at the store.
const MAX_SLEEP: Duration = Duration::from_secs(30);

/// Handles everything due at `now`; returns the occurrences recorded. Time is an argument so
/// tests never wait for a clock.
pub async fn run_once(
    store: &dyn Store,
    now: Timestamp,
    catch_up: SignedDuration,
) -> StoreResult<Vec<Occurrence>> {
    let mut all = vec![];
    loop {
        let batch = store.scheduled_job_fire_due(now, catch_up, BATCH).await?;
        if batch.is_empty() {
            return Ok(all);
        }
        for o in &batch {
            let outcome = o.outcome.as_str();
            metrics::counter!("osm_scheduler_occurrences_total", "outcome" => outcome).increment(1);
            if o.outcome == OccurrenceOutcome::Fired {
                let delay = (now - o.time).as_secs_f64().max(0.0);
                metrics::histogram!("osm_scheduler_firing_delay_seconds").record(delay);
                tracing::info!(job = %o.job_id, occurrence = %o.time, work_requests = o.work_request_ids.len(), "fired");
            } else {
                tracing::warn!(job = %o.job_id, occurrence = %o.time, "occurrence missed while osmd was down; not run");
            }
        }
        all.extend(batch);
    }
}

/// Runs until the task is aborted.
pub async fn run(
    store: Arc<dyn Store>,
    wake: Arc<Notify>,
    work: Arc<Notify>,
    catch_up: SignedDuration,
) {
    loop {
        match run_once(store.as_ref(), Timestamp::now(), catch_up).await {
            Ok(fired) if fired.iter().any(|o| !o.work_request_ids.is_empty()) => {
                work.notify_waiters()
            }
            Ok(_) => {}
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

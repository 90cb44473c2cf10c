//! Group commit for the agent protocol. Long polls and outcome reports that arrive while a
//! dispatch transaction runs wait for it and then go together in the next one, so a busy fleet
//! costs a few transactions per second instead of one (and one fsync) per call, and a quiet
//! one waits for no timer: a call that finds no transaction running starts one at once.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use osm_store::{
    AgentOutcomes, Claim, ClaimedWork, Completed, Completion, CompletionRefused, Store,
};
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::http::error::{ApiError, ApiResult};

/// Calls gathered into one transaction at most.
const MAX_CALLS: usize = 512;
/// Work requests (claimed or reported) per transaction at most, so one transaction stays short.
const MAX_ITEMS: usize = 20_000;
/// Calls waiting for a transaction before new ones wait to be queued.
const QUEUE: usize = 8192;

pub type Answers = Vec<Result<Completed, CompletionRefused>>;

/// One agent call: outcomes to record, then work to claim, in the same transaction.
struct Call {
    report: Option<AgentOutcomes>,
    claim: Option<Claim>,
    reply: oneshot::Sender<ApiResult<(Answers, Vec<ClaimedWork>)>>,
}

impl Call {
    fn items(&self) -> usize {
        self.report.as_ref().map_or(0, |r| r.items.len())
            + self.claim.as_ref().map_or(0, |c| c.limit as usize)
    }
}

pub struct Dispatcher {
    queue: mpsc::Sender<Call>,
}

impl Dispatcher {
    /// Starts `workers` tasks taking batches off one queue: one is right for SQLite (a single
    /// writer); PostgreSQL gains from others that gather and run the next batches while one
    /// commits, up to the point where batches shrink to a call each and contend for pages.
    pub fn start(store: Arc<dyn Store>, lease: SignedDuration, workers: usize) -> Dispatcher {
        let (queue, calls) = mpsc::channel(QUEUE);
        let calls = Arc::new(Mutex::new(calls));
        for _ in 0..workers.max(1) {
            tokio::spawn(work(store.clone(), lease, calls.clone()));
        }
        Dispatcher { queue }
    }

    /// Ends the instance's work requests as its agent reported (one answer per item), then
    /// claims up to `limit` of its queued work requests (none when `limit` is 0), now
    /// IN_PROGRESS under a lease; both in one transaction.
    pub async fn exchange(
        &self,
        instance_id: &str,
        items: Vec<Completion>,
        limit: u32,
    ) -> ApiResult<(Answers, Vec<ClaimedWork>)> {
        let (reply, answer) = oneshot::channel();
        let call = Call {
            report: (!items.is_empty()).then(|| AgentOutcomes {
                instance_id: instance_id.to_string(),
                items,
            }),
            claim: (limit > 0).then(|| Claim {
                instance_id: instance_id.to_string(),
                limit,
            }),
            reply,
        };
        self.queue.send(call).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

fn stopped() -> ApiError {
    ApiError::internal("the work dispatcher stopped")
}

/// One worker: takes whatever is queued (waiting for the first call), runs it as one batch.
async fn work(
    store: Arc<dyn Store>,
    lease: SignedDuration,
    calls: Arc<Mutex<mpsc::Receiver<Call>>>,
) {
    loop {
        let batch = {
            let mut calls = calls.lock().await;
            let Some(first) = calls.recv().await else {
                return;
            };
            let mut items = first.items();
            let mut batch = vec![first];
            while batch.len() < MAX_CALLS && items < MAX_ITEMS {
                match calls.try_recv() {
                    Ok(call) => {
                        items += call.items();
                        batch.push(call);
                    }
                    Err(_) => break,
                }
            }
            batch
        };
        run(&store, lease, batch).await;
    }
}

async fn run(store: &Arc<dyn Store>, lease: SignedDuration, batch: Vec<Call>) {
    let mut claims = vec![];
    let mut reports = vec![];
    let mut replies = vec![];
    for call in batch {
        let asked = (call.report.is_some(), call.claim.is_some());
        reports.extend(call.report);
        claims.extend(call.claim);
        replies.push((asked, call.reply));
    }
    metrics::histogram!("osm_dispatch_batch_calls").record(replies.len() as f64);
    // In a task of its own, so a panic in the store answers this batch with an error instead
    // of stopping the worker.
    let store = store.clone();
    let done = tokio::spawn(async move {
        store
            .work_request_dispatch(&reports, &claims, Timestamp::now(), lease)
            .await
    })
    .await;
    let done = match done {
        Ok(result) => result.map_err(ApiError::from),
        Err(panicked) => Err(ApiError::internal(format!(
            "dispatch batch failed: {panicked}"
        ))),
    };
    match done {
        Ok(done) => {
            let mut completed = done.completed.into_iter();
            let mut claimed = done.claimed.into_iter();
            for ((reported, claiming), reply) in replies {
                let answers = if reported {
                    completed.next().unwrap_or_default()
                } else {
                    vec![]
                };
                let work = if claiming {
                    claimed.next().unwrap_or_default()
                } else {
                    vec![]
                };
                let _ = reply.send(Ok((answers, work)));
            }
        }
        Err(e) => {
            for (_, reply) in replies {
                let _ = reply.send(Err(e.clone()));
            }
        }
    }
}

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

type Answers = Vec<Result<Completed, CompletionRefused>>;

enum Call {
    Claim(Claim, oneshot::Sender<ApiResult<Vec<ClaimedWork>>>),
    Report(AgentOutcomes, oneshot::Sender<ApiResult<Answers>>),
}

impl Call {
    fn items(&self) -> usize {
        match self {
            Call::Claim(c, _) => c.limit as usize,
            Call::Report(r, _) => r.items.len(),
        }
    }
}

pub struct Dispatcher {
    queue: mpsc::Sender<Call>,
}

impl Dispatcher {
    /// Starts `workers` tasks taking batches off one queue: one is right for SQLite (a single
    /// writer), a few let PostgreSQL commit batches side by side.
    pub fn start(store: Arc<dyn Store>, lease: SignedDuration, workers: usize) -> Dispatcher {
        let (queue, calls) = mpsc::channel(QUEUE);
        let calls = Arc::new(Mutex::new(calls));
        for _ in 0..workers.max(1) {
            tokio::spawn(work(store.clone(), lease, calls.clone()));
        }
        Dispatcher { queue }
    }

    /// Up to `limit` of the instance's queued work requests, now IN_PROGRESS under a lease.
    pub async fn claim(&self, instance_id: &str, limit: u32) -> ApiResult<Vec<ClaimedWork>> {
        let (reply, answer) = oneshot::channel();
        let claim = Claim {
            instance_id: instance_id.to_string(),
            limit,
        };
        self.send(Call::Claim(claim, reply)).await?;
        answer.await.map_err(|_| stopped())?
    }

    /// Ends the instance's work requests as its agent reported; one answer per item.
    pub async fn report(&self, instance_id: &str, items: Vec<Completion>) -> ApiResult<Answers> {
        let (reply, answer) = oneshot::channel();
        let report = AgentOutcomes {
            instance_id: instance_id.to_string(),
            items,
        };
        self.send(Call::Report(report, reply)).await?;
        answer.await.map_err(|_| stopped())?
    }

    async fn send(&self, call: Call) -> ApiResult<()> {
        self.queue.send(call).await.map_err(|_| stopped())
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
    let mut claim_replies = vec![];
    let mut reports = vec![];
    let mut report_replies = vec![];
    for call in batch {
        match call {
            Call::Claim(c, reply) => {
                claims.push(c);
                claim_replies.push(reply);
            }
            Call::Report(r, reply) => {
                reports.push(r);
                report_replies.push(reply);
            }
        }
    }
    metrics::histogram!("osm_dispatch_batch_calls").record((claims.len() + reports.len()) as f64);
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
            for (reply, claimed) in claim_replies.into_iter().zip(done.claimed) {
                let _ = reply.send(Ok(claimed));
            }
            for (reply, answers) in report_replies.into_iter().zip(done.completed) {
                let _ = reply.send(Ok(answers));
            }
        }
        Err(e) => {
            for reply in claim_replies {
                let _ = reply.send(Err(e.clone()));
            }
            for reply in report_replies {
                let _ = reply.send(Err(e.clone()));
            }
        }
    }
}

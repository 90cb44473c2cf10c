//! `work-request wait` (and `--wait` on actions): follow a work request until it ends, with a
//! progress bar on stderr. A group's work request is followed through its children: the bar
//! counts finished instances, and a failure names the instances that failed and why.

use std::time::{Duration, Instant};

use futures::StreamExt;
use indexmap::IndexMap;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;

use crate::api::{Api, Failure};
use crate::cli::{Output, WaitOptions};
use crate::output;

/// Children looked at per round while the parent runs (all of them once it has ended), so a
/// group of thousands does not turn each round into thousands of calls.
const CHILDREN_PER_ROUND: usize = 64;
const CONCURRENT_GETS: usize = 8;
/// Failed children whose errors are printed.
const FAILURES_SHOWN: usize = 5;

fn is_terminal(status: &str) -> bool {
    matches!(status, "SUCCEEDED" | "FAILED" | "CANCELED")
}

fn status_of(wr: &Value) -> &str {
    wr["status"].as_str().unwrap_or("")
}

async fn get_work_request(api: &Api, id: &str) -> Result<(Value, Vec<u8>), Failure> {
    let resp = api.get(&format!("/20190801/workRequests/{id}")).await?;
    let v = serde_json::from_slice(&resp.body).map_err(|e| {
        Failure::Connection(format!(
            "work request {id}: malformed JSON from the server: {e}"
        ))
    })?;
    Ok((v, resp.body))
}

/// What the children are doing, for the bar's message.
fn summary(children: &IndexMap<String, Option<Value>>) -> String {
    let mut counts: IndexMap<&str, usize> = IndexMap::new();
    for state in [
        "SUCCEEDED",
        "FAILED",
        "CANCELED",
        "CANCELLING",
        "IN_PROGRESS",
        "ACCEPTED",
    ] {
        counts.insert(state, 0);
    }
    for child in children.values() {
        let s = child.as_ref().map_or("ACCEPTED", status_of);
        *counts.entry(s).or_default() += 1;
    }
    counts
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(s, n)| format!("{n} {}", s.to_ascii_lowercase().replace('_', " ")))
        .collect::<Vec<_>>()
        .join(", ")
}

pub async fn follow(api: &Api, id: &str, opts: &WaitOptions, out: Output) -> Result<(), Failure> {
    let started = Instant::now();
    let bar = ProgressBar::with_draw_target(Some(100), ProgressDrawTarget::stderr());
    bar.enable_steady_tick(Duration::from_millis(120));
    let mut children: IndexMap<String, Option<Value>> = IndexMap::new();
    let (parent, body) = loop {
        let (wr, body) = get_work_request(api, id).await?;
        let ids: Vec<String> = wr["childrenIds"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c.as_str().map(str::to_string))
            .collect();
        let ended = is_terminal(status_of(&wr));
        if ids.is_empty() {
            bar.set_style(style("{spinner} [{bar:30}] {pos}% {msg} ({elapsed})"));
            bar.set_position(wr["percentComplete"].as_f64().unwrap_or(0.0) as u64);
            bar.set_message(status_of(&wr).to_string());
        } else {
            for c in &ids {
                children.entry(c.clone()).or_insert(None);
            }
            let open: Vec<String> = children
                .iter()
                .filter(|(_, v)| !v.as_ref().is_some_and(|v| is_terminal(status_of(v))))
                .map(|(k, _)| k.clone())
                .take(if ended {
                    usize::MAX
                } else {
                    CHILDREN_PER_ROUND
                })
                .collect();
            let fetched: Vec<_> = futures::stream::iter(open)
                .map(|c| async move { get_work_request(api, &c).await.map(|(v, _)| (c, v)) })
                .buffer_unordered(CONCURRENT_GETS)
                .collect()
                .await;
            for r in fetched {
                let (c, v) = r?;
                children.insert(c, Some(v));
            }
            let done = children
                .values()
                .filter(|v| v.as_ref().is_some_and(|v| is_terminal(status_of(v))))
                .count();
            bar.set_style(style(
                "{spinner} [{bar:30}] {pos}/{len} instances: {msg} ({elapsed})",
            ));
            bar.set_length(children.len() as u64);
            bar.set_position(done as u64);
            bar.set_message(summary(&children));
        }
        if ended {
            break (wr, body);
        }
        if let Some(limit) = opts.timeout
            && started.elapsed() >= limit
        {
            bar.finish_and_clear();
            return Err(Failure::Timeout(format!(
                "gave up waiting after {limit:?}: work request {id} is still {}",
                status_of(&wr)
            )));
        }
        tokio::time::sleep(opts.interval).await;
    };
    bar.finish_and_clear();
    output::object(out, &body)?;
    let status = status_of(&parent);
    if status == "SUCCEEDED" {
        return Ok(());
    }
    explain(api, id, &children).await;
    let detail = if children.is_empty() {
        String::new()
    } else {
        format!(" ({})", summary(&children))
    };
    Err(Failure::WorkFailed(format!(
        "work request {id} ended {status}{detail}"
    )))
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .expect("progress template is valid")
        .progress_chars("=> ")
}

/// Prints, on stderr, why the work failed: the errors of the request, or of its first failed
/// children with the instance each ran on.
async fn explain(api: &Api, id: &str, children: &IndexMap<String, Option<Value>>) {
    let first_error = |wr: String| async move {
        let resp = api
            .get(&format!("/20190801/workRequests/{wr}/errors"))
            .await
            .ok()?;
        let errors: Vec<Value> = serde_json::from_slice(&resp.body).ok()?;
        errors
            .last()
            .and_then(|e| e["message"].as_str().map(str::to_string))
    };
    if children.is_empty() {
        if let Some(m) = first_error(id.to_string()).await {
            eprintln!("osmctl: {id}: {m}");
        }
        return;
    }
    let failed: Vec<(&String, &Value)> = children
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| (k, v)))
        .filter(|(_, v)| matches!(status_of(v), "FAILED" | "CANCELED"))
        .collect();
    for (child, wr) in failed.iter().take(FAILURES_SHOWN) {
        let instance = wr["managedInstanceId"]["displayName"]
            .as_str()
            .or(wr["managedInstanceId"]["id"].as_str())
            .unwrap_or("?");
        let why = first_error(child.to_string())
            .await
            .unwrap_or_else(|| status_of(wr).to_ascii_lowercase());
        eprintln!("osmctl: {instance} ({child}): {why}");
    }
    if failed.len() > FAILURES_SHOWN {
        eprintln!(
            "osmctl: … and {} more; see osmctl work-request get {id}",
            failed.len() - FAILURES_SHOWN
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn summaries_count_children_by_state() {
        let mut c = IndexMap::new();
        c.insert("a".to_string(), Some(json!({"status": "SUCCEEDED"})));
        c.insert("b".to_string(), Some(json!({"status": "FAILED"})));
        c.insert("c".to_string(), Some(json!({"status": "IN_PROGRESS"})));
        c.insert("d".to_string(), None);
        c.insert("e".to_string(), Some(json!({"status": "SUCCEEDED"})));
        assert_eq!(
            summary(&c),
            "2 succeeded, 1 failed, 1 in progress, 1 accepted"
        );
    }
}

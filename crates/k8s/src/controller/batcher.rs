//! Batching of pod reconciles under bursts: the reconciles that arrive within a short window are
//! planned against one snapshot and written [`BATCH`] pods per Northbound transaction
//! ([`Controller::reconcile_batch`]: a failed batch is retried one pod per transaction, so one
//! bad pod cannot hold back the others). A few batches run at once, so one slow batch does not
//! stall the next.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::{Controller, PodError, Reconciled};

/// Pods per Northbound transaction.
pub const BATCH: usize = 50;
/// Pods per batch (several transactions).
const MAX_BATCH: usize = BATCH * 8;
/// Batches in flight at once.
const IN_FLIGHT: usize = 4;

type Request = (Pod, oneshot::Sender<Result<Reconciled, PodError>>);

/// Hands pods to the batching task; cloned freely. The task stops when every handle is dropped
/// (its batches in flight are aborted when the task is).
#[derive(Clone)]
pub struct Batcher {
    tx: mpsc::UnboundedSender<Request>,
}

impl Batcher {
    /// Starts the batching task: a batch closes `window` after its first pod, or when full.
    pub fn start(ctl: Controller, window: Duration) -> (Batcher, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Batcher { tx }, tokio::spawn(batches(ctl, window, rx)))
    }

    /// Reconciles one pod, in the next batch.
    pub async fn reconcile(&self, pod: &Pod) -> Result<Reconciled, PodError> {
        let (tx, rx) = oneshot::channel();
        self.tx.send((pod.clone(), tx)).map_err(|_| PodError::Stopped)?;
        rx.await.map_err(|_| PodError::Stopped)?
    }
}

async fn batches(ctl: Controller, window: Duration, mut rx: mpsc::UnboundedReceiver<Request>) {
    let mut running = JoinSet::new();
    let mut batch: Vec<Request> = Vec::new();
    let mut close_at = Instant::now();
    let mut open = true;
    while open || !batch.is_empty() || !running.is_empty() {
        let can_start = running.len() < IN_FLIGHT;
        if can_start && !batch.is_empty() && (batch.len() >= MAX_BATCH || !open || Instant::now() >= close_at) {
            let b = std::mem::take(&mut batch);
            let ctl = ctl.clone();
            running.spawn(async move { run_batch(&ctl, b).await });
            continue;
        }
        tokio::select! {
            r = rx.recv(), if open && batch.len() < MAX_BATCH => match r {
                Some(req) => {
                    if batch.is_empty() {
                        close_at = Instant::now() + window;
                    }
                    batch.push(req);
                }
                None => open = false,
            },
            _ = tokio::time::sleep_until(close_at), if can_start && !batch.is_empty() => {}
            _ = running.join_next(), if !running.is_empty() => {}
        }
    }
}

async fn run_batch(ctl: &Controller, batch: Vec<Request>) {
    let (pods, replies): (Vec<Pod>, Vec<_>) = batch.into_iter().unzip();
    let results = ctl.reconcile_batch(&pods, BATCH).await;
    for (reply, (_, r)) in replies.into_iter().zip(results) {
        let _ = reply.send(r);
    }
}

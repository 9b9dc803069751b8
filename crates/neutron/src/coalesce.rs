//! Coalescing of many callers' requests into one Neutron request: requests arriving within a
//! short window (after the first) are handed to one batch call, up to a maximum per batch. The
//! batch call answers every member or none: a member without an answer (the batch failed, or
//! left it out) does its request alone, so a bad member never fails the others and every failure
//! a caller sees is its own.
//!
//! neutron-server spends most of a port create on per-request work (policy, the transaction,
//! ML2/OVN's Northbound write): one bulk POST of 50 ports costs about as much as a handful of
//! single ones, and one `GET ports?device_id=a&device_id=b..` as one lookup.

use std::future::Future;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

type Request<K, V> = (K, oneshot::Sender<Option<V>>);

/// Hands requests to the batching task (which ends when the last handle is dropped).
pub(crate) struct Coalescer<K, V> {
    tx: mpsc::UnboundedSender<Request<K, V>>,
}

impl<K: Send + 'static, V: Send + 'static> Coalescer<K, V> {
    /// Starts the task (inside a tokio runtime): a batch closes `window` after its first request
    /// or at `max` requests; `run` gets the batch's keys and answers each (`None`: do it alone).
    pub(crate) fn start<F, Fut>(window: Duration, max: usize, run: F) -> Coalescer<K, V>
    where
        F: Fn(Vec<K>) -> Fut + Send + 'static,
        Fut: Future<Output = Vec<Option<V>>> + Send + 'static,
    {
        let (tx, mut rx) = mpsc::unbounded_channel::<Request<K, V>>();
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut batch = vec![first];
                let close = Instant::now() + window;
                while batch.len() < max.max(1) {
                    tokio::select! {
                        r = rx.recv() => match r {
                            Some(req) => batch.push(req),
                            None => break,
                        },
                        _ = tokio::time::sleep_until(close) => break,
                    }
                }
                let (keys, replies): (Vec<K>, Vec<_>) = batch.into_iter().unzip();
                let answers = run(keys);
                tokio::spawn(async move {
                    let mut answers = answers.await.into_iter();
                    for reply in replies {
                        let _ = reply.send(answers.next().flatten());
                    }
                });
            }
        });
        Coalescer { tx }
    }

    /// The batch's answer for `key`; `None`: do it alone.
    pub(crate) async fn call(&self, key: K) -> Option<V> {
        let (tx, rx) = oneshot::channel();
        self.tx.send((key, tx)).ok()?;
        rx.await.ok().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[tokio::test]
    async fn requests_within_the_window_share_one_batch_and_a_missing_answer_is_none() {
        let batches = Arc::new(AtomicUsize::new(0));
        let b = batches.clone();
        let c: Arc<Coalescer<u32, u32>> = Arc::new(Coalescer::start(Duration::from_millis(50), 4, move |keys: Vec<u32>| {
            b.fetch_add(1, Ordering::SeqCst);
            async move { keys.into_iter().map(|k| (k != 3).then_some(k * 10)).collect() }
        }));
        let calls: Vec<_> = (0..6)
            .map(|k| {
                tokio::spawn({
                    let c = c.clone();
                    async move { c.call(k).await }
                })
            })
            .collect();
        let mut got = Vec::new();
        for t in calls {
            got.push(t.await.unwrap());
        }
        assert_eq!(got, [Some(0), Some(10), Some(20), None, Some(40), Some(50)]);
        assert_eq!(batches.load(Ordering::SeqCst), 2, "6 requests, at most 4 per batch");
    }
}

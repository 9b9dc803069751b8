//! Leader election on a `coordination.k8s.io/v1` Lease, as client-go does it: the holder renews
//! `renewTime` every `retry_period`; others take over once `renewTime + leaseDurationSeconds`
//! has passed. Updates use the Lease's resourceVersion, so two candidates never both win.
//!
//! [`decide`] is the pure decision; [`LeaderElector`] runs it against the API server and
//! publishes leadership on a watch channel. Leadership is dropped (false) as soon as a renewal
//! has not succeeded within `renew_deadline`, which is shorter than the lease duration, so the
//! old leader stops writing before anyone else may start.
//!
//! On shutdown ([`LeaderElector::run_until`]) the leader releases the Lease as client-go's
//! `ReleaseOnCancel` does: `holderIdentity` empty, `leaseDurationSeconds` 1, `acquireTime` and
//! `renewTime` now, `leaseTransitions` kept. A standby does not sleep out its `retry_period`
//! blindly: it watches the Lease and tries again as soon as it changes, so it takes over right
//! after a release instead of after the whole lease duration.

use std::time::{Duration, SystemTime};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use std::future::Future;

use futures::StreamExt;
use k8s_openapi::jiff::Timestamp;
use kube::api::{PostParams, WatchParams};
use kube::Api;
use tokio::sync::watch;

/// The parts of a Lease that matter for the decision.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LeaseRecord {
    pub holder: Option<String>,
    pub renew_time: Option<SystemTime>,
    pub lease_duration: Duration,
    pub transitions: i32,
}

/// What a candidate should do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// No Lease yet: create it holding it.
    Create,
    /// Free or expired: take it (bumping `leaseTransitions`).
    Acquire,
    /// Ours: renew it.
    Renew,
    /// Someone else holds it until `until`.
    Wait { holder: String, until: SystemTime },
}

/// The decision for candidate `me` at `now`.
pub fn decide(record: Option<&LeaseRecord>, now: SystemTime, me: &str) -> Decision {
    let Some(r) = record else { return Decision::Create };
    match r.holder.as_deref().filter(|h| !h.is_empty()) {
        None => Decision::Acquire,
        Some(h) if h == me => Decision::Renew,
        Some(h) => {
            let until = r.renew_time.unwrap_or(SystemTime::UNIX_EPOCH) + r.lease_duration;
            if now >= until {
                Decision::Acquire
            } else {
                Decision::Wait { holder: h.to_string(), until }
            }
        }
    }
}

/// Reads the record of a Lease object.
pub fn record_of(lease: &Lease) -> LeaseRecord {
    let spec = lease.spec.clone().unwrap_or_default();
    LeaseRecord {
        holder: spec.holder_identity,
        renew_time: spec.renew_time.or(spec.acquire_time).map(|t| SystemTime::from(t.0)),
        lease_duration: Duration::from_secs(spec.lease_duration_seconds.unwrap_or(0).max(0) as u64),
        transitions: spec.lease_transitions.unwrap_or(0),
    }
}

/// Timing of the election (client-go defaults: 15 s, 10 s, 2 s).
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    pub identity: String,
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

impl LeaseConfig {
    pub fn new(namespace: &str, name: &str, identity: &str) -> LeaseConfig {
        LeaseConfig {
            namespace: namespace.into(),
            name: name.into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// Whether the candidate holds the lease after one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    Held,
    NotHeld,
}

/// Runs the election loop; leadership is published on [`LeaderElector::subscribe`].
pub struct LeaderElector {
    api: Api<Lease>,
    cfg: LeaseConfig,
    tx: watch::Sender<bool>,
}

fn micro(t: SystemTime) -> Option<MicroTime> {
    Timestamp::try_from(t).ok().map(MicroTime)
}

impl LeaderElector {
    pub fn new(client: kube::Client, cfg: LeaseConfig) -> LeaderElector {
        let api = Api::namespaced(client, &cfg.namespace);
        let (tx, _) = watch::channel(false);
        LeaderElector { api, cfg, tx }
    }

    /// True while this candidate is the leader.
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.tx.subscribe()
    }

    /// One acquire-or-renew round trip.
    pub async fn try_acquire_or_renew(&self) -> Result<Attempt, kube::Error> {
        self.round_trip().await.map(|(a, _)| a)
    }

    /// One acquire-or-renew round trip; also the Lease's resourceVersion when another candidate
    /// holds it (where a standby's watch starts).
    async fn round_trip(&self) -> Result<(Attempt, Option<String>), kube::Error> {
        let now = SystemTime::now();
        let current = self.api.get_opt(&self.cfg.name).await?;
        let record = current.as_ref().map(record_of);
        let decision = decide(record.as_ref(), now, &self.cfg.identity);
        let spec = |acquire: Option<MicroTime>, transitions: i32| LeaseSpec {
            holder_identity: Some(self.cfg.identity.clone()),
            lease_duration_seconds: Some(self.cfg.lease_duration.as_secs().max(1) as i32),
            acquire_time: acquire,
            renew_time: micro(now),
            lease_transitions: Some(transitions),
            ..Default::default()
        };
        let result = match (decision, current) {
            (Decision::Wait { holder, .. }, current) => {
                tracing::trace!(%holder, "lease held by another candidate");
                return Ok((Attempt::NotHeld, current.and_then(|l| l.metadata.resource_version)));
            }
            (Decision::Create, _) | (_, None) => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.cfg.name.clone()),
                        namespace: Some(self.cfg.namespace.clone()),
                        ..Default::default()
                    },
                    spec: Some(spec(micro(now), 0)),
                };
                self.api.create(&PostParams::default(), &lease).await.map(|_| ())
            }
            (Decision::Acquire, Some(mut lease)) => {
                let t = record.map(|r| r.transitions).unwrap_or(0) + 1;
                lease.spec = Some(spec(micro(now), t));
                self.api.replace(&self.cfg.name, &PostParams::default(), &lease).await.map(|_| ())
            }
            (Decision::Renew, Some(mut lease)) => {
                let old = lease.spec.clone().unwrap_or_default();
                lease.spec = Some(spec(old.acquire_time, old.lease_transitions.unwrap_or(0)));
                self.api.replace(&self.cfg.name, &PostParams::default(), &lease).await.map(|_| ())
            }
        };
        match result {
            Ok(()) => Ok((Attempt::Held, None)),
            // Someone else wrote the Lease first (409 conflict / already exists).
            Err(kube::Error::Api(s)) if s.code == 409 => Ok((Attempt::NotHeld, None)),
            Err(e) => Err(e),
        }
    }

    /// Gives the Lease up if this candidate holds it (client-go's `ReleaseOnCancel`): empty
    /// `holderIdentity`, `leaseDurationSeconds` 1, `acquireTime`/`renewTime` now, transitions kept.
    /// Returns whether a release was written. A conflict (someone wrote the Lease meanwhile) is
    /// retried while the Lease is still ours.
    pub async fn release(&self) -> Result<bool, kube::Error> {
        for _ in 0..3 {
            let Some(mut lease) = self.api.get_opt(&self.cfg.name).await? else { return Ok(false) };
            let old = lease.spec.clone().unwrap_or_default();
            if old.holder_identity.as_deref() != Some(self.cfg.identity.as_str()) {
                return Ok(false);
            }
            let now = micro(SystemTime::now());
            lease.spec = Some(LeaseSpec {
                holder_identity: Some(String::new()),
                lease_duration_seconds: Some(1),
                acquire_time: now.clone(),
                renew_time: now,
                lease_transitions: old.lease_transitions,
                ..Default::default()
            });
            match self.api.replace(&self.cfg.name, &PostParams::default(), &lease).await {
                Ok(_) => return Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(false)
    }

    /// Waits until the Lease changes after `resource_version` (or `max` passes, or the watch
    /// cannot be made: then it just sleeps out `max`).
    async fn lease_changed(&self, resource_version: Option<&str>, max: Duration) {
        let Some(rv) = resource_version else {
            tokio::time::sleep(max).await;
            return;
        };
        let wp = WatchParams::default().fields(&format!("metadata.name={}", self.cfg.name)).timeout(max.as_secs().clamp(1, 290) as u32);
        let changed = async {
            match self.api.watch(&wp, rv).await {
                Ok(stream) => {
                    futures::pin_mut!(stream);
                    if stream.next().await.is_none() {
                        // The server ended the watch early: do not spin.
                        std::future::pending::<()>().await;
                    }
                }
                Err(e) => {
                    tracing::debug!("watching lease {}/{}: {e}", self.cfg.namespace, self.cfg.name);
                    std::future::pending::<()>().await;
                }
            }
        };
        let _ = tokio::time::timeout(max, changed).await;
    }

    /// Runs forever: acquires, renews every `retry_period`, and publishes false as soon as no
    /// renewal succeeded within `renew_deadline`.
    pub async fn run(self) {
        self.run_until(std::future::pending()).await
    }

    /// Like [`LeaderElector::run`] until `shutdown` completes; then publishes false (writes stop)
    /// and releases the Lease if it holds it, so that a standby takes over at once. Callers stop
    /// their writers before completing `shutdown`.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut last_ok: Option<tokio::time::Instant> = None;
        loop {
            // A round is bounded: while leading, by the moment leadership would lapse (so a hung
            // API call cannot keep a leader writing after its lease expired); else by renew_deadline.
            // Success counts from when the round started (its renewTime is no older than that).
            let started = tokio::time::Instant::now();
            let rd = self.cfg.renew_deadline;
            let bound = match last_ok.map(|t| (t + rd).saturating_duration_since(started)) {
                Some(left) if !left.is_zero() => left,
                _ => rd,
            };
            let round = tokio::select! {
                _ = &mut shutdown => break,
                r = tokio::time::timeout(bound, self.round_trip()) => r,
            };
            let still_leading = |last_ok: Option<tokio::time::Instant>| last_ok.is_some_and(|t| t.elapsed() < rd);
            let (held, watch_from) = match round {
                Ok(Ok((Attempt::Held, _))) => {
                    last_ok = Some(started);
                    (true, None)
                }
                Ok(Ok((Attempt::NotHeld, rv))) => {
                    last_ok = None;
                    (false, rv)
                }
                Ok(Err(e)) => {
                    tracing::warn!("lease {}/{}: {e}", self.cfg.namespace, self.cfg.name);
                    (still_leading(last_ok), None)
                }
                Err(_) => {
                    tracing::warn!(
                        "lease {}/{}: no answer from the API server within {} ms",
                        self.cfg.namespace,
                        self.cfg.name,
                        bound.as_millis()
                    );
                    (still_leading(last_ok), None)
                }
            };
            let was = *self.tx.borrow();
            if held != was {
                if held {
                    tracing::info!(identity = %self.cfg.identity, "became the leader");
                } else {
                    tracing::warn!(identity = %self.cfg.identity, "lost leadership; writes stop");
                }
                self.tx.send_replace(held);
            }
            tokio::select! {
                _ = &mut shutdown => break,
                _ = self.lease_changed(watch_from.as_deref(), self.cfg.retry_period) => {}
            }
        }
        self.tx.send_replace(false);
        match tokio::time::timeout(self.cfg.renew_deadline, self.release()).await {
            Ok(Ok(true)) => tracing::info!(identity = %self.cfg.identity, "released the lease"),
            Ok(Ok(false)) => {}
            Ok(Err(e)) => tracing::warn!("releasing lease {}/{}: {e}", self.cfg.namespace, self.cfg.name),
            Err(_) => tracing::warn!("releasing lease {}/{}: timed out", self.cfg.namespace, self.cfg.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(holder: &str, renew_secs: u64, dur: u64) -> LeaseRecord {
        LeaseRecord {
            holder: Some(holder.into()),
            renew_time: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(renew_secs)),
            lease_duration: Duration::from_secs(dur),
            transitions: 3,
        }
    }
    fn at(s: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(s)
    }

    #[test]
    fn decisions() {
        assert_eq!(decide(None, at(0), "a"), Decision::Create);
        assert_eq!(decide(Some(&rec("a", 100, 15)), at(200), "a"), Decision::Renew, "own lease is renewed even if late");
        assert_eq!(decide(Some(&rec("b", 100, 15)), at(114), "a"), Decision::Wait { holder: "b".into(), until: at(115) });
        assert_eq!(decide(Some(&rec("b", 100, 15)), at(115), "a"), Decision::Acquire, "expired");
        assert_eq!(decide(Some(&rec("", 100, 15)), at(101), "a"), Decision::Acquire, "released");
        let none = LeaseRecord { holder: None, ..rec("x", 0, 0) };
        assert_eq!(decide(Some(&none), at(1), "a"), Decision::Acquire);
    }

    #[test]
    fn record_from_lease_object() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let lease = Lease {
            metadata: Default::default(),
            spec: Some(LeaseSpec {
                holder_identity: Some("b".into()),
                lease_duration_seconds: Some(15),
                renew_time: micro(now),
                lease_transitions: Some(2),
                ..Default::default()
            }),
        };
        let r = record_of(&lease);
        assert_eq!(r.holder.as_deref(), Some("b"));
        assert_eq!(r.renew_time, Some(now));
        assert_eq!(
            decide(Some(&r), now + Duration::from_secs(14), "a"),
            Decision::Wait { holder: "b".into(), until: now + Duration::from_secs(15) }
        );
        assert_eq!(decide(Some(&r), now + Duration::from_secs(16), "a"), Decision::Acquire);
    }
}

//! Leader election on a `coordination.k8s.io/v1` Lease, as client-go does it: the holder renews
//! `renewTime` every `retry_period`; others take over once `renewTime + leaseDurationSeconds`
//! has passed. Updates use the Lease's resourceVersion, so two candidates never both win.
//!
//! [`decide`] is the pure decision; [`LeaderElector`] runs it against the API server and
//! publishes leadership on a watch channel. Leadership is dropped (false) as soon as a renewal
//! has not succeeded within `renew_deadline`, which is shorter than the lease duration, so the
//! old leader stops writing before anyone else may start.

use std::time::{Duration, SystemTime};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
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
            (Decision::Wait { holder, .. }, _) => {
                tracing::trace!(%holder, "lease held by another candidate");
                return Ok(Attempt::NotHeld);
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
            Ok(()) => Ok(Attempt::Held),
            // Someone else wrote the Lease first (409 conflict / already exists).
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(Attempt::NotHeld),
            Err(e) => Err(e),
        }
    }

    /// Runs forever: acquires, renews every `retry_period`, and publishes false as soon as no
    /// renewal succeeded within `renew_deadline`.
    pub async fn run(self) {
        let mut last_ok: Option<tokio::time::Instant> = None;
        loop {
            let held = match self.try_acquire_or_renew().await {
                Ok(Attempt::Held) => {
                    last_ok = Some(tokio::time::Instant::now());
                    true
                }
                Ok(Attempt::NotHeld) => {
                    last_ok = None;
                    false
                }
                Err(e) => {
                    tracing::warn!("lease {}/{}: {e}", self.cfg.namespace, self.cfg.name);
                    last_ok.is_some_and(|t| t.elapsed() < self.cfg.renew_deadline)
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
            tokio::time::sleep(self.cfg.retry_period).await;
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

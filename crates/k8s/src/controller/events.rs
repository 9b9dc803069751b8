//! Writing results back to Kubernetes: `events.k8s.io/v1` Events (pod status annotations go through
//! `pods/status`, [`crate::status::write_pod_annotations`]).
//!
//! [`PodWriter`] is the seam between the controller and the API server; [`KubePodWriter`] is
//! the real one, [`MemoryWriter`] records calls for tests.

use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType as RecorderEventType, Recorder, Reporter};
use thiserror::Error;

use super::desired::PodRef;

/// The component name in Events.
pub const COMPONENT: &str = "kubetron-controller";

/// Event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// A failed write to the API server.
#[derive(Debug, Error)]
#[error("writing to the Kubernetes API for pod {pod}: {source}")]
pub struct WriteError {
    pub pod: String,
    #[source]
    pub source: kube::Error,
}

/// Where the controller reports results.
pub trait PodWriter: Send + Sync {
    /// Records an Event on the pod.
    fn emit_event<'a>(
        &'a self,
        pod: &'a PodRef,
        kind: EventType,
        reason: &'a str,
        message: &'a str,
    ) -> BoxFuture<'a, Result<(), WriteError>>;
}

/// Writes through the Kubernetes API: `events.k8s.io/v1` Events through kube-runtime's
/// [`Recorder`] (repeats of one type, reason and action on one pod within a few minutes become a
/// series of the first Event, counted, instead of new objects).
#[derive(Clone)]
pub struct KubePodWriter {
    recorder: Recorder,
}

impl KubePodWriter {
    /// `instance` is the `reportingInstance` of Events (the pod name of this replica, typically).
    pub fn new(client: kube::Client, instance: impl Into<String>) -> KubePodWriter {
        let reporter = Reporter { controller: COMPONENT.into(), instance: Some(instance.into()) };
        KubePodWriter { recorder: Recorder::new(client, reporter) }
    }
}

/// Kubernetes caps Event notes at 1 KiB.
pub(super) fn clip(message: &str) -> String {
    if message.len() <= 1024 {
        return message.to_string();
    }
    let mut end = 1021;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &message[..end])
}

/// The Event `action`: what the controller was doing.
const ACTION: &str = "ReconcilePorts";

impl PodWriter for KubePodWriter {
    fn emit_event<'a>(
        &'a self,
        pod: &'a PodRef,
        kind: EventType,
        reason: &'a str,
        message: &'a str,
    ) -> BoxFuture<'a, Result<(), WriteError>> {
        Box::pin(async move {
            let regarding = ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: Some(pod.name.clone()),
                namespace: Some(pod.namespace.clone()),
                uid: Some(pod.uid.clone()),
                ..Default::default()
            };
            let ev = Event {
                type_: match kind {
                    EventType::Normal => RecorderEventType::Normal,
                    EventType::Warning => RecorderEventType::Warning,
                },
                reason: reason.to_string(),
                note: Some(clip(message)),
                action: ACTION.into(),
                secondary: None,
            };
            self.recorder.publish(&ev, &regarding).await.map_err(|source| WriteError { pod: pod.to_string(), source })
        })
    }
}

/// One recorded write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    Event { pod: PodRef, kind: EventType, reason: String, message: String },
}

/// Records writes in memory (tests, benchmarks).
#[derive(Debug, Clone, Default)]
pub struct MemoryWriter {
    pub log: Arc<Mutex<Vec<Written>>>,
}

impl MemoryWriter {
    pub fn take(&self) -> Vec<Written> {
        std::mem::take(&mut *self.log.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl PodWriter for MemoryWriter {
    fn emit_event<'a>(
        &'a self,
        pod: &'a PodRef,
        kind: EventType,
        reason: &'a str,
        message: &'a str,
    ) -> BoxFuture<'a, Result<(), WriteError>> {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).push(Written::Event {
            pod: pod.clone(),
            kind,
            reason: reason.to_string(),
            message: message.to_string(),
        });
        Box::pin(async { Ok(()) })
    }
}

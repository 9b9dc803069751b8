//! Writing results back to Kubernetes: core/v1 Events (pod status annotations go through
//! `pods/status`, [`crate::status::write_pod_annotations`]).
//!
//! [`PodWriter`] is the seam between the controller and the API server; [`KubePodWriter`] is
//! the real one, [`MemoryWriter`] records calls for tests.

use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::PostParams;
use kube::Api;
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

/// Writes through the Kubernetes API.
#[derive(Clone)]
pub struct KubePodWriter {
    client: kube::Client,
    /// `reportingInstance` of Events (the pod name of this replica, typically).
    instance: String,
}

impl KubePodWriter {
    pub fn new(client: kube::Client, instance: impl Into<String>) -> KubePodWriter {
        KubePodWriter { client, instance: instance.into() }
    }
}

/// Kubernetes caps Event messages at 1 KiB.
fn clip(message: &str) -> String {
    if message.len() <= 1024 {
        return message.to_string();
    }
    let mut end = 1021;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &message[..end])
}

impl PodWriter for KubePodWriter {
    fn emit_event<'a>(
        &'a self,
        pod: &'a PodRef,
        kind: EventType,
        reason: &'a str,
        message: &'a str,
    ) -> BoxFuture<'a, Result<(), WriteError>> {
        Box::pin(async move {
            let api: Api<Event> = Api::namespaced(self.client.clone(), &pod.namespace);
            let now = Time(k8s_openapi::jiff::Timestamp::now());
            let ev = Event {
                metadata: ObjectMeta {
                    generate_name: Some(format!("{}.", pod.name)),
                    namespace: Some(pod.namespace.clone()),
                    ..Default::default()
                },
                involved_object: ObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("Pod".into()),
                    name: Some(pod.name.clone()),
                    namespace: Some(pod.namespace.clone()),
                    uid: Some(pod.uid.clone()),
                    ..Default::default()
                },
                reason: Some(reason.to_string()),
                message: Some(clip(message)),
                type_: Some(kind.as_str().to_string()),
                count: Some(1),
                first_timestamp: Some(now.clone()),
                last_timestamp: Some(now),
                source: Some(EventSource { component: Some(COMPONENT.into()), host: None }),
                reporting_component: Some(COMPONENT.into()),
                reporting_instance: Some(self.instance.clone()),
                ..Default::default()
            };
            api.create(&PostParams::default(), &ev).await.map(|_| ()).map_err(|source| WriteError { pod: pod.to_string(), source })
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

//! `k8s`: the Kubernetes half of kubetron: NetworkAttachmentDefinitions, the pod network request
//! annotation, the controller (pods -> desired OVN state), the admission webhook, leader election.
//!
//! Data flows one way: Kubernetes objects -> desired OVN state -> OVSDB transactions (`ovn`).
//!
//! Must not touch: netlink or the local Open_vSwitch database (that is the node side).
//!
//! Modules (the Kubernetes-facing pieces that need no OVN):
//! - [`annotation`]: a Pod's `k8s.v1.cni.cncf.io/networks` request, read with `model::request`.
//! - [`ipamclaim`]: the IPAMClaim CRD type (NPWG v1.3 persistent IPs) and the CRD kubetron ships.
//! - [`nad`]: the NetworkAttachmentDefinition CRD type, reading kubetron's config in it
//!   (`model::netconf`), exposure rules.
//! - [`nadsync`]: logical switches marked in OVN -> NetworkAttachmentDefinitions in chosen namespaces.
//! - [`profiles`]: Port_Groups offered as security profiles, published for the webhook (a ConfigMap).
//! - [`controller`]: pods + NADs -> OVN Northbound logical switch ports (reconcile, GC, status, leader election).
//! - [`status`]: writing the `k8s.v1.cni.cncf.io/network-status` and `kubetron.io/interfaces`
//!   annotations (their types and merge rules are `model::status` and `model::handoff`).
//! - [`webhook`]: the pod mutating admission webhook (HTTPS, AdmissionReview v1) and [`webhook::serve`].
//! - [`rbac`]: the API permissions each component uses (what `deploy/` grants).
//! - [`client`]: small API-client helpers (kubeconfig client, idempotent create, polling, YAML manifests).

pub mod annotation;
pub mod client;
pub mod controller;
pub mod ipamclaim;
pub mod meta;
mod mirror;
pub mod mnp;
pub mod nad;
pub mod nadsync;
pub mod profiles;
pub mod rbac;
pub mod status;
pub mod webhook;

//! The cluster-mode CNI plugin: [`Shim`] forwards every verb to the node agent over its unix socket
//! ([`crate::agent`]) and hands the agent's answer to the runtime. Environment and config
//! validation, VERSION and the result's per-version conversion stay in the dispatcher
//! ([`crate::run`]), identical in every mode.
//!
//! Failures of the exchange itself:
//! - agent unreachable (no socket file, nothing listening, not accepted within
//!   [`crate::agent::CONNECT_TIMEOUT`]): at once, code 11 (STATUS: 50) naming the socket.
//!   Exception, DEL when the socket file does not exist: success (see [`Shim`]).
//! - no answer within `timeout_ms` + [`crate::agent::ANSWER_MARGIN`], an HTTP status other than
//!   200, an answer that is not the protocol's: code 11 (STATUS: 50) naming the socket.
//!
//! Chained mode: a pod whose annotations (passed by the runtime under the capability
//! `io.kubernetes.cri.pod-annotations`) ask for no network is answered by the shim alone (ADD
//! returns `prevResult`, DEL and CHECK succeed), without the agent.
//!
//! The `kubetron` binary run with `CNI_COMMAND` picks between this and the direct plugin by the
//! config's mode (`standalone::ByMode`).

use std::io;
use std::path::Path;
use std::time::Duration;

use crate::agent::{self, AgentRequest, AgentResponse, CallError};
use crate::env::Command;
use crate::{Attachment, CniError, CniResult, ErrorCode, Plugin, Request};
use model::netconf::Mode;

/// The cluster- and chained-mode plugin: a client of the node agent.
///
/// DEL and a missing agent: the runtime retries a failed DEL, and a pod cannot finish terminating
/// until one succeeds. When the socket file does not exist at all, no agent serves this node (it
/// was never installed, or was removed: the agent makes the socket when it starts, before its
/// caches sync, and never removes it), so DEL succeeds with a warning: a node without kubetron's
/// agent must not keep pods terminating forever (anything left behind is the node GC's,
/// `kubetron gc`). A socket that exists but refuses or does not answer is an agent that is
/// down or restarting: DEL fails with 11 like every verb, and the runtime's retry reaches it once
/// it is back (the agent's DEL of a container it never knew succeeds).
#[derive(Debug, Clone, Default)]
pub struct Shim;

impl Shim {
    /// Sends the request; returns the agent's result (ADD) or `None`.
    fn forward(&self, req: &Request) -> Result<Option<CniResult>, CniError> {
        let k = &req.config.kubetron;
        let mode = k.mode();
        if mode == Mode::Standalone {
            return Err(CniError::invalid_config(
                "mode standalone needs the kubetron binary as the plugin; this kubetron-cni binary is the cluster-mode shim \
                 (it forwards to the node agent)",
            ));
        }
        let socket = Path::new(k.agent_socket());
        let areq = AgentRequest::new(&req.env, req.raw_config.clone(), k.timeout_ms);
        let bound = Duration::from_millis(k.timeout_ms) + agent::ANSWER_MARGIN;
        let command = req.command();
        // STATUS reports unavailability with 50, every other verb with "try again later".
        let unavailable = |msg: String| {
            let code = if command == Command::Status { ErrorCode::NotAvailable } else { ErrorCode::TryAgainLater };
            CniError::new(code, msg)
        };
        match agent::call(socket, &areq, bound) {
            Ok(AgentResponse::Result(r)) => Ok(r),
            Ok(AgentResponse::Error(e)) => Err(e.into()),
            Err(CallError::Unreachable { source, .. }) if command == Command::Del && source.kind() == io::ErrorKind::NotFound => {
                tracing::warn!(
                    socket = %socket.display(),
                    container = req.container_id(),
                    "no kubetron node agent socket on this node: DEL has nothing to forward to and succeeds"
                );
                Ok(None)
            }
            Err(CallError::Unreachable { source, .. }) => Err(unavailable(format!(
                "kubetron node agent is not reachable at {} ({source}); is the kubetron-node pod running on this node?",
                socket.display()
            ))),
            Err(CallError::NoAnswer { .. }) => Err(unavailable(format!(
                "kubetron node agent at {} did not answer {command} within {} ms (timeout_ms {} + {} ms)",
                socket.display(),
                bound.as_millis(),
                k.timeout_ms,
                agent::ANSWER_MARGIN.as_millis()
            ))),
            Err(CallError::Status { status, body, .. }) => {
                Err(unavailable(format!("kubetron node agent at {} answered HTTP {status}: {body}", socket.display())))
            }
            Err(e @ (CallError::Transport { .. } | CallError::BadAnswer { .. })) => Err(unavailable(format!("kubetron node agent: {e}"))),
        }
    }
}

/// Chained mode, when the runtime passed the pod's annotations and they ask for no network:
/// nothing for kubetron to do, and no need to ask the agent (pods that ask for nothing never
/// depend on it).
fn asks_for_nothing(req: &Request) -> bool {
    if req.config.kubetron.mode() != Mode::Chained {
        return false;
    }
    let Some(annotations) = req.config.runtime_config.as_ref().and_then(|r| r.extra.get(crate::POD_ANNOTATIONS_CAPABILITY)) else {
        return false;
    };
    annotations.get(model::request::NETWORKS_ANNOTATION).and_then(|v| v.as_str()).is_none_or(|v| v.trim().is_empty())
}

impl Plugin for Shim {
    fn add(&self, req: &Request) -> Result<CniResult, CniError> {
        if asks_for_nothing(req) {
            return req.prev_result.clone().ok_or_else(|| {
                CniError::invalid_config(
                    "chained mode needs prevResult: kubetron must come after the cluster's default plugin in the conflist",
                )
            });
        }
        let r = self.forward(req)?.ok_or_else(|| CniError::internal("the kubetron node agent answered ADD without a result"))?;
        r.validate().map_err(|e| CniError::internal(format!("the kubetron node agent answered an invalid result: {}", e.msg)))?;
        Ok(r)
    }
    fn del(&self, req: &Request) -> Result<(), CniError> {
        if asks_for_nothing(req) {
            return Ok(());
        }
        self.forward(req).map(drop)
    }
    fn check(&self, req: &Request) -> Result<(), CniError> {
        if asks_for_nothing(req) {
            return Ok(());
        }
        self.forward(req).map(drop)
    }
    fn status(&self, req: &Request) -> Result<(), CniError> {
        self.forward(req).map(drop)
    }
    fn gc(&self, req: &Request, _valid_attachments: &[Attachment]) -> Result<(), CniError> {
        // The agent reads `cni.dev/valid-attachments` from the config it gets.
        self.forward(req).map(drop)
    }
}

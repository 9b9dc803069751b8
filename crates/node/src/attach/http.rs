//! The agent's end of the shim protocol ([`cni::agent`]): the socket and HTTP/1.1 on it.
//!
//! The socket directory is made anew at start, owned by root with mode 0700 (a directory that
//! cannot be removed, e.g. a mount point, must already be root's and 0700), the socket is 0600:
//! only root on the node (the runtime running the shim) can ask for a pod to be plugged.
//! One request per connection. `POST /cni` takes an [`AgentRequest`] (at most
//! [`cni::agent::MAX_BODY_BYTES`], read within [`BODY_TIMEOUT`]) and answers 200 with an
//! [`AgentResponse`]; `GET /healthz` is 200 once the caches are loaded, else 503.

use std::convert::Infallible;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use cni::agent::{AgentRequest, AgentResponse, API_VERSION, CNI_PATH, HEALTHZ_PATH, MAX_BODY_BYTES};
use cni::CniError;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use model::netconf::CURRENT_VERSION;
use tokio::net::UnixListener;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{verbs, Agent};
use crate::error::{Error, Result};

/// How long a client may take to send its request.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long requests in progress may finish after shutdown begins.
const DRAIN: Duration = Duration::from_secs(5);

/// Makes the socket directory and binds the socket.
pub fn bind(dir: &Path, socket: &Path) -> Result<UnixListener> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            // A mount point (hostPath) cannot be removed: accept it only if it is root's and 0700.
            let md = std::fs::metadata(dir).map_err(|_| Error::io(dir, e))?;
            if md.uid() != 0 || md.mode() & 0o777 != 0o700 {
                return Err(Error::Config(format!(
                    "{} cannot be re-made and is not owned by root with mode 0700 (uid {}, mode {:o})",
                    dir.display(),
                    md.uid(),
                    md.mode() & 0o777
                )));
            }
            match std::fs::remove_file(socket) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(socket, e)),
            }
        }
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(|e| Error::io(dir, e))?;
    let listener = UnixListener::bind(socket).map_err(|e| Error::io(socket, e))?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600)).map_err(|e| Error::io(socket, e))?;
    Ok(listener)
}

/// Serves until `shutdown`, then lets requests in progress finish (bounded) and removes the socket.
pub async fn serve(agent: Arc<Agent>, shutdown: CancellationToken) -> Result<()> {
    let socket = agent.config.socket();
    let listener = bind(&agent.config.socket_dir, &socket)?;
    info!(socket = %socket.display(), node = %agent.config.node_name, "CNI server listening");
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let stream = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    warn!("accepting on {}: {e}", socket.display());
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let agent = agent.clone();
        conns.spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let agent = agent.clone();
                async move { Ok::<_, Infallible>(handle(agent, req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .keep_alive(false)
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(BODY_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = conn.await {
                debug!("CNI connection ended with an error: {e}");
            }
        });
        // Reap finished connections so the set does not grow.
        while conns.try_join_next().is_some() {}
    }
    drop(listener);
    let _ = std::fs::remove_file(&socket);
    if tokio::time::timeout(DRAIN, async { while conns.join_next().await.is_some() {} }).await.is_err() {
        warn!("CNI requests still in progress after {DRAIN:?}; ending them");
        conns.abort_all();
    }
    info!("CNI server stopped");
    Ok(())
}

fn reply(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static(content_type));
    r
}

fn text(status: StatusCode, msg: &str) -> Response<Full<Bytes>> {
    reply(status, "text/plain", format!("{msg}\n").into_bytes())
}

fn answer(a: &AgentResponse) -> Response<Full<Bytes>> {
    match serde_json::to_vec(a) {
        Ok(b) => reply(StatusCode::OK, "application/json", b),
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, &format!("encoding the answer: {e}")),
    }
}

fn error_answer(e: &CniError, version: &str) -> Response<Full<Bytes>> {
    answer(&AgentResponse::Error(e.to_json(version)))
}

async fn handle(agent: Arc<Agent>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    match (req.method(), req.uri().path()) {
        (&Method::GET, HEALTHZ_PATH) => {
            if agent.ready() {
                text(StatusCode::OK, "ok")
            } else {
                text(StatusCode::SERVICE_UNAVAILABLE, "caches not loaded yet")
            }
        }
        (&Method::POST, CNI_PATH) => {
            let body = match tokio::time::timeout(BODY_TIMEOUT, Limited::new(req.into_body(), MAX_BODY_BYTES).collect()).await {
                Ok(Ok(b)) => b.to_bytes(),
                Ok(Err(e)) => return text(StatusCode::BAD_REQUEST, &format!("reading the request: {e}")),
                Err(_) => return text(StatusCode::REQUEST_TIMEOUT, "the request body did not arrive in time"),
            };
            let areq: AgentRequest = match serde_json::from_slice(&body) {
                Ok(r) => r,
                Err(e) => return text(StatusCode::BAD_REQUEST, &format!("not a kubetron agent request: {e}")),
            };
            let version = areq.config.get("cniVersion").and_then(|v| v.as_str()).unwrap_or(CURRENT_VERSION).to_string();
            if areq.api != API_VERSION {
                let e = CniError::invalid_config(format!(
                    "the kubetron-cni shim speaks protocol {} and this node agent speaks {API_VERSION}; install matching versions",
                    areq.api
                ));
                return error_answer(&e, &version);
            }
            // Bounded: beyond max_requests a request is refused at once, not queued without limit.
            let Ok(_permit) = agent.request_permits.clone().try_acquire_owned() else {
                let e = CniError::try_again_later(format!(
                    "the kubetron node agent is busy ({} requests in progress); try again later",
                    agent.config.max_requests
                ));
                return error_answer(&e, &version);
            };
            // The verb runs in its own task: if this connection goes (the runtime killed the
            // shim), the token fires and the task undoes what it made before ending.
            let cancel = CancellationToken::new();
            let on_drop = cancel.clone().drop_guard();
            let task = tokio::spawn(verbs::run(agent.clone(), areq, cancel));
            let out = task.await;
            on_drop.disarm();
            match out {
                Ok(Ok(result)) => answer(&AgentResponse::Result(result)),
                Ok(Err(e)) => error_answer(&e, &version),
                Err(e) => error_answer(&CniError::internal(format!("the request's task failed: {e}")), &version),
            }
        }
        _ => text(StatusCode::NOT_FOUND, "kubetron node agent: POST /cni or GET /healthz"),
    }
}

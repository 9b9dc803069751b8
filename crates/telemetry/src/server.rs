//! The HTTP endpoint: `/metrics`, `/healthz`, `/readyz`.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::{Error, Registry};

/// What the endpoint serves: the registry and a readiness flag the process flips.
#[derive(Debug, Clone)]
pub struct Telemetry {
    pub registry: Registry,
    ready: watch::Sender<bool>,
}

impl Default for Telemetry {
    fn default() -> Self {
        Telemetry { registry: Registry::new(), ready: watch::channel(false).0 }
    }
}

impl Telemetry {
    pub fn new() -> Telemetry {
        Telemetry::default()
    }
    /// Sets what `/readyz` answers.
    pub fn set_ready(&self, ready: bool) {
        self.ready.send_replace(ready);
    }
    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }
}

fn reply(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

fn route(t: &Telemetry, req: &Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    if req.method() != hyper::Method::GET {
        return reply(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "method not allowed\n".into());
    }
    match req.uri().path() {
        "/metrics" => reply(StatusCode::OK, "text/plain; version=0.0.4", t.registry.render()),
        "/healthz" => reply(StatusCode::OK, "text/plain", "ok\n".into()),
        "/readyz" if t.is_ready() => reply(StatusCode::OK, "text/plain", "ready\n".into()),
        "/readyz" => reply(StatusCode::SERVICE_UNAVAILABLE, "text/plain", "not ready\n".into()),
        _ => reply(StatusCode::NOT_FOUND, "text/plain", "not found\n".into()),
    }
}

/// Binds `addr` and serves until `shutdown` resolves. Returns the bound address (port 0 picks one)
/// through `bound` before serving.
pub async fn serve(
    addr: SocketAddr,
    telemetry: Telemetry,
    bound: Option<tokio::sync::oneshot::Sender<SocketAddr>>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), Error> {
    let listener = TcpListener::bind(addr).await.map_err(|e| Error::Bind { addr, source: e })?;
    let local = listener.local_addr().map_err(|e| Error::Bind { addr, source: e })?;
    if let Some(b) = bound {
        let _ = b.send(local);
    }
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => return Ok(()),
            acc = listener.accept() => {
                let Ok((stream, _)) = acc else { continue };
                let t = telemetry.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let r = route(&t, &req);
                        async move { Ok::<_, Infallible>(r) }
                    });
                    let io = hyper_util::rt::TokioIo::new(stream);
                    if let Err(e) = hyper::server::conn::http1::Builder::new().serve_connection(io, svc).await {
                        tracing::debug!("telemetry connection: {e}");
                    }
                });
            }
        }
    }
}

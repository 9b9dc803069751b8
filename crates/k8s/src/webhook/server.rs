//! The HTTPS server: `POST /mutate` (AdmissionReview v1), `GET /healthz` and `GET /metrics`
//! (Prometheus text: admissions by result).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::admit::admit;
use super::review::AdmissionReview;
use super::source::NadSource;
use super::tls::{self, TlsSource};
use super::WebhookError;

/// Largest request body accepted (the API server caps objects well below this).
pub const MAX_BODY: usize = 8 * 1024 * 1024;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a stopping server waits for requests in flight (well inside a pod's default 30 s
/// termination grace period).
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Webhook settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    /// Address to listen on (e.g. `0.0.0.0:8443`).
    pub listen: SocketAddr,
    /// Serving certificate.
    pub tls: TlsSource,
}

/// Counters of what the webhook answered.
#[derive(Debug, Clone)]
pub struct WebhookMetrics {
    registry: telemetry::Registry,
    allowed: telemetry::Counter,
    patched: telemetry::Counter,
    denied: telemetry::Counter,
    bad_request: telemetry::Counter,
}

impl WebhookMetrics {
    pub fn new(registry: telemetry::Registry) -> WebhookMetrics {
        let c = |result: &str| {
            registry.counter("kubetron_webhook_admissions_total", "Pod admissions answered, by result.", &[("result", result)])
        };
        WebhookMetrics { allowed: c("allowed"), patched: c("patched"), denied: c("denied"), bad_request: c("bad_request"), registry }
    }
    pub fn registry(&self) -> &telemetry::Registry {
        &self.registry
    }
}

/// A bound, not yet running webhook server.
pub struct WebhookServer<S> {
    listener: TcpListener,
    acceptor: TlsAcceptor,
    nads: Arc<S>,
    ca_pem: Option<String>,
    metrics: WebhookMetrics,
}

impl<S: NadSource> WebhookServer<S> {
    /// Load TLS and bind the listener.
    pub async fn bind(config: &WebhookConfig, nads: S) -> Result<Self, WebhookError> {
        let (tls_config, ca_pem) = tls::load(&config.tls)?;
        let listener = TcpListener::bind(config.listen).await.map_err(|source| WebhookError::Bind { addr: config.listen, source })?;
        Ok(WebhookServer {
            listener,
            acceptor: TlsAcceptor::from(tls_config),
            nads: Arc::new(nads),
            ca_pem,
            metrics: WebhookMetrics::new(telemetry::Registry::new()),
        })
    }

    /// The counters this server updates (served at `/metrics`).
    pub fn metrics(&self) -> &WebhookMetrics {
        &self.metrics
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> Result<SocketAddr, WebhookError> {
        self.listener.local_addr().map_err(WebhookError::Accept)
    }

    /// The CA PEM when the certificate was generated.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// Serve until `shutdown` completes; then stop accepting, let the requests in flight finish
    /// (idle keep-alive connections are closed) for up to [`DRAIN_TIMEOUT`], and return.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> Result<(), WebhookError> {
        tracing::info!(addr = ?self.listener.local_addr().ok(), "admission webhook listening");
        tokio::pin!(shutdown);
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut conns = tokio::task::JoinSet::new();
        loop {
            while conns.try_join_next().is_some() {}
            let (tcp, peer) = tokio::select! {
                _ = &mut shutdown => break,
                accepted = self.listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Transient (e.g. EMFILE): log, back off a little, keep serving.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let acceptor = self.acceptor.clone();
            let nads = self.nads.clone();
            let metrics = self.metrics.clone();
            let mut stop = stop_rx.clone();
            conns.spawn(async move {
                let tls = tokio::select! {
                    _ = stopping(&mut stop) => return,
                    r = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)) => match r {
                        Ok(Ok(tls)) => tls,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    },
                };
                let service = hyper::service::service_fn(move |req| {
                    let (nads, metrics) = (nads.clone(), metrics.clone());
                    async move { Ok::<_, Infallible>(handle(req, nads.as_ref(), &metrics).await) }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(30))
                    .serve_connection(TokioIo::new(tls), service);
                tokio::pin!(conn);
                let r = tokio::select! {
                    r = conn.as_mut() => r,
                    _ = stopping(&mut stop) => {
                        // Finish the request in flight, then close (no more keep-alive).
                        conn.as_mut().graceful_shutdown();
                        conn.as_mut().await
                    }
                };
                if let Err(e) = r {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
            });
        }
        drop(self.listener);
        let _ = stop_tx.send(true);
        let in_flight = conns.len();
        if tokio::time::timeout(DRAIN_TIMEOUT, async { while conns.join_next().await.is_some() {} }).await.is_err() {
            tracing::warn!(in_flight, "connections still open after {DRAIN_TIMEOUT:?}; closing them");
            conns.abort_all();
        }
        tracing::info!("admission webhook stopped");
        Ok(())
    }

    /// Serve forever.
    pub async fn run(self) -> Result<(), WebhookError> {
        self.run_until(std::future::pending()).await
    }
}

/// Completes once the server is stopping.
async fn stopping(stop: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("text/plain"));
    r
}

async fn handle<S: NadSource>(req: Request<Incoming>, nads: &S, metrics: &WebhookMetrics) -> Response<Full<Bytes>> {
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/healthz") => text(StatusCode::OK, "ok\n"),
        (&Method::GET, "/metrics") => text(StatusCode::OK, metrics.registry.render()),
        (&Method::POST, "/mutate") => {
            let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
                Ok(b) => b.to_bytes(),
                Err(e) => return text(StatusCode::BAD_REQUEST, format!("could not read request body: {e}\n")),
            };
            match review(&body, nads).await {
                Ok(answer) => {
                    match &answer.response {
                        Some(r) if !r.allowed => metrics.denied.inc(),
                        Some(r) if r.patch.is_some() => metrics.patched.inc(),
                        _ => metrics.allowed.inc(),
                    }
                    let json = match serde_json::to_vec(&answer) {
                        Ok(j) => j,
                        Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, format!("encoding response: {e}\n")),
                    };
                    let mut r = Response::new(Full::new(Bytes::from(json)));
                    r.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("application/json"));
                    r
                }
                Err(msg) => {
                    metrics.bad_request.inc();
                    text(StatusCode::BAD_REQUEST, msg)
                }
            }
        }
        (_, "/healthz") | (_, "/mutate") | (_, "/metrics") => text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n"),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// Answer one serialized AdmissionReview with a serialized AdmissionReview.
/// `Err` carries a message for an HTTP 400 (not an AdmissionReview with a request).
pub async fn review_bytes<S: NadSource>(body: &[u8], nads: &S) -> Result<Vec<u8>, String> {
    let answer = review(body, nads).await?;
    serde_json::to_vec(&answer).map_err(|e| format!("encoding response: {e}\n"))
}

async fn review<S: NadSource>(body: &[u8], nads: &S) -> Result<AdmissionReview, String> {
    let review: AdmissionReview = serde_json::from_slice(body).map_err(|e| format!("body is not an AdmissionReview: {e}\n"))?;
    let request = review.request.ok_or_else(|| "AdmissionReview has no request\n".to_string())?;
    Ok(AdmissionReview::from_response(admit(&request, nads).await))
}

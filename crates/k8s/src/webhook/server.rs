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

/// Webhook settings.
#[derive(Debug, Clone)]
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

    /// Serve until `shutdown` completes. Connections in flight are left to finish on their own.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> Result<(), WebhookError> {
        tracing::info!(addr = ?self.listener.local_addr().ok(), "admission webhook listening");
        tokio::pin!(shutdown);
        loop {
            let (tcp, peer) = tokio::select! {
                _ = &mut shutdown => return Ok(()),
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
            tokio::spawn(async move {
                let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                };
                let service = hyper::service::service_fn(move |req| {
                    let (nads, metrics) = (nads.clone(), metrics.clone());
                    async move { Ok::<_, Infallible>(handle(req, nads.as_ref(), &metrics).await) }
                });
                if let Err(e) = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(30))
                    .serve_connection(TokioIo::new(tls), service)
                    .await
                {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
            });
        }
    }

    /// Serve forever.
    pub async fn run(self) -> Result<(), WebhookError> {
        self.run_until(std::future::pending()).await
    }
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

//! The HTTP client: bounded calls, retries, idempotent port creation.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use tracing::{debug, warn};

use crate::coalesce::Coalescer;
use crate::types::{ErrorBody, Network, NewPort, Port, SecurityGroup, Subnet, DEVICE_OWNER};
use crate::Error;

/// How to reach Neutron and how hard to try.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The API endpoint, `http://HOST:PORT` (the part before `/v2.0`).
    pub url: String,
    /// Bound of one HTTP exchange.
    pub timeout: Duration,
    /// Port creates and deletes in flight at most (neutron-server's API workers are few and
    /// CPU-bound; more in flight only queues there).
    pub write_concurrency: usize,
    /// Tries of one call on transient failures.
    pub tries: u32,
    /// The first pause between tries; doubled each time, at most 5 s.
    pub backoff: Duration,
    /// How requests are authenticated.
    pub auth: Auth,
    /// Lookups of a pod's ports and creates of ports without static addresses arriving within this
    /// window are sent as one request each (a bulk POST, one GET naming many devices);
    /// `Duration::ZERO`: every request alone. See [`crate::coalesce`].
    pub coalesce_window: Duration,
    /// At most this many in one coalesced request.
    pub coalesce_max: usize,
    /// For `https://` endpoints (Neutron's and Keystone's): the CA certificates (PEM) their
    /// certificates must chain to; `None`: the system's roots.
    pub ca_file: Option<std::path::PathBuf>,
}

/// How the client authenticates: not at all (Neutron's `noauth`), or with a Keystone v3 token
/// (users and projects in domain `Default`). The token is cached and renewed before it expires
/// (a quarter of its lifetime before, at most 2 minutes), and at once when Neutron answers 401.
#[derive(Clone, Default)]
pub enum Auth {
    #[default]
    None,
    /// A user's password, the token scoped to `project`.
    Password { keystone: String, user: String, password: String, project: String },
    /// An application credential (its project is its own).
    ApplicationCredential { keystone: String, id: String, secret: String },
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::None => write!(f, "None"),
            Auth::Password { keystone, user, project, .. } => write!(f, "Password({user}@{project} at {keystone})"),
            Auth::ApplicationCredential { keystone, id, .. } => write!(f, "ApplicationCredential({id} at {keystone})"),
        }
    }
}

impl Auth {
    /// Keystone's root URL (without `/v3`) and the body of `POST /v3/auth/tokens`.
    fn request(&self) -> Option<(String, Value)> {
        let url = |k: &str| k.trim_end_matches('/').trim_end_matches("/v3").to_string();
        match self {
            Auth::None => None,
            Auth::Password { keystone, user, password, project } => Some((
                url(keystone),
                json!({"auth": {"identity": {"methods": ["password"],
                                             "password": {"user": {"name": user, "domain": {"name": "Default"}, "password": password}}},
                                "scope": {"project": {"name": project, "domain": {"name": "Default"}}}}}),
            )),
            Auth::ApplicationCredential { keystone, id, secret } => Some((
                url(keystone),
                json!({"auth": {"identity": {"methods": ["application_credential"],
                                             "application_credential": {"id": id, "secret": secret}}}}),
            )),
        }
    }
}

/// Keystone's token path.
const TOKENS: &str = "/v3/auth/tokens";

/// A cached token.
#[derive(Clone)]
struct Token {
    value: String,
    renew_at: tokio::time::Instant,
}

impl ClientConfig {
    /// Defaults for `url`: 30 s per exchange, 8 writes in flight, 6 tries from 200 ms.
    pub fn new(url: &str) -> ClientConfig {
        ClientConfig {
            url: url.trim_end_matches('/').to_string(),
            timeout: Duration::from_secs(30),
            write_concurrency: 8,
            tries: 6,
            backoff: Duration::from_millis(200),
            auth: Auth::None,
            coalesce_window: Duration::from_millis(20),
            coalesce_max: 25,
            ca_file: None,
        }
    }
}

/// A Neutron client (cheap to clone; clones share the connection pool and the write bound).
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: ClientConfig,
    http: HttpClient<HttpsConnector<HttpConnector>, Full<Bytes>>,
    writes: Semaphore,
    /// The current token; the lock makes concurrent callers wait for one renewal.
    token: tokio::sync::Mutex<Option<Token>>,
    token_requests: std::sync::atomic::AtomicU64,
    /// Started on first use (inside the runtime).
    batches: std::sync::OnceLock<Batches>,
}

/// The coalescers of [`ClientConfig::coalesce_window`].
struct Batches {
    lookups: Coalescer<String, Vec<Port>>,
    creates: Coalescer<NewPort, Port>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("url", &self.inner.cfg.url).finish()
    }
}

impl Client {
    /// A client of the Neutron at `cfg.url` (`http://` or `https://`; so may Keystone's be).
    pub fn new(cfg: ClientConfig) -> Result<Client, Error> {
        let refuse = |what: String| Error::Transport { url: cfg.url.clone(), method: String::new(), path: String::new(), what };
        if !cfg.url.starts_with("http://") && !cfg.url.starts_with("https://") {
            return Err(refuse("the endpoint must be an http:// or https:// URL".into()));
        }
        let https = match &cfg.ca_file {
            Some(path) => HttpsConnectorBuilder::new().with_tls_config(tls_config(path).map_err(refuse)?),
            None => match HttpsConnectorBuilder::new().with_native_roots() {
                Ok(b) => b,
                // No system roots: https endpoints then fail to verify (naming the missing CA file).
                Err(e) => {
                    debug!("no system CA certificates ({e}); https endpoints need ClientConfig::ca_file");
                    HttpsConnectorBuilder::new().with_tls_config(empty_roots())
                }
            },
        };
        let connector = https.https_or_http().enable_http1().build();
        let http = HttpClient::builder(TokioExecutor::new()).build(connector);
        let writes = Semaphore::new(cfg.write_concurrency.max(1));
        let (token, token_requests) = (tokio::sync::Mutex::new(None), Default::default());
        let batches = std::sync::OnceLock::new();
        Ok(Client { inner: Arc::new(Inner { cfg, http, writes, token, token_requests, batches }) })
    }

    /// The coalescers, started on first use; `None` when coalescing is off. Their tasks hold the
    /// client weakly: they end with the last clone.
    fn batches(&self) -> Option<&Batches> {
        let cfg = &self.inner.cfg;
        if cfg.coalesce_window.is_zero() {
            return None;
        }
        Some(self.inner.batches.get_or_init(|| {
            let (window, max) = (cfg.coalesce_window, cfg.coalesce_max);
            let weak = Arc::downgrade(&self.inner);
            let lookups = Coalescer::start(window, max, move |ids: Vec<String>| {
                let inner = weak.upgrade();
                async move {
                    let Some(inner) = inner else { return Vec::new() };
                    let found = Client { inner }.ports_of_devices(&ids).await.ok();
                    ids.iter().map(|id| found.as_ref().map(|all| all.iter().filter(|p| &p.device_id == id).cloned().collect())).collect()
                }
            });
            let weak = Arc::downgrade(&self.inner);
            let creates = Coalescer::start(window, max, move |want: Vec<NewPort>| {
                let inner = weak.upgrade();
                async move {
                    let Some(inner) = inner else { return Vec::new() };
                    let made = Client { inner }.create_ports(&want).await;
                    match made {
                        Ok(made) => {
                            want.iter().map(|w| made.iter().find(|p| p.device_id == w.device_id && p.name == w.name).cloned()).collect()
                        }
                        Err(e) => {
                            warn!(ports = want.len(), "a bulk create failed ({e}); each port is made alone");
                            Vec::new()
                        }
                    }
                }
            });
            Batches { lookups, creates }
        }))
    }

    /// How many tokens this client asked Keystone for.
    pub fn token_requests(&self) -> u64 {
        self.inner.token_requests.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The token to send (`None` without Keystone): the cached one, else a new one.
    async fn token(&self) -> Result<Option<String>, Error> {
        let Some((keystone, body)) = self.inner.cfg.auth.request() else { return Ok(None) };
        let mut cached = self.inner.token.lock().await;
        if let Some(t) = cached.as_ref().filter(|t| tokio::time::Instant::now() < t.renew_at) {
            return Ok(Some(t.value.clone()));
        }
        self.inner.token_requests.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let asked = tokio::time::Instant::now();
        let (status, headers, bytes) = self.raw(&Method::POST, &keystone, TOKENS, Some(&body), None).await?;
        let url = format!("{keystone}{TOKENS}");
        if status != 201 {
            let message = String::from_utf8_lossy(&bytes).chars().take(300).collect();
            return Err(Error::Auth { url, status, message });
        }
        let value = headers
            .get("x-subject-token")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| Error::Auth { url: url.clone(), status, message: "no X-Subject-Token".into() })?
            .to_string();
        let body: Value = serde_json::from_slice(&bytes).unwrap_or_default();
        let at = |k: &str| body["token"][k].as_str().and_then(epoch_seconds);
        let lifetime = match (at("issued_at"), at("expires_at")) {
            (Some(i), Some(e)) if e > i => Duration::from_secs_f64(e - i),
            _ => Duration::from_secs(60),
        };
        let renew_at = asked + lifetime - (lifetime / 4).min(Duration::from_secs(120));
        *cached = Some(Token { value: value.clone(), renew_at });
        Ok(Some(value))
    }

    /// Forgets `token` (Neutron refused it) unless it was renewed meanwhile.
    async fn forget_token(&self, token: &str) {
        let mut cached = self.inner.token.lock().await;
        if cached.as_ref().is_some_and(|t| t.value == token) {
            *cached = None;
        }
    }

    /// One HTTP exchange with `base` + `path`: status, headers, body.
    async fn raw(
        &self,
        method: &Method,
        base: &str,
        path: &str,
        body: Option<&Value>,
        token: Option<&str>,
    ) -> Result<(u16, hyper::HeaderMap, Bytes), Error> {
        let cfg = &self.inner.cfg;
        let transport = |what: String| Error::Transport { url: base.to_string(), method: method.to_string(), path: path.to_string(), what };
        let bytes = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        let mut req = Request::builder()
            .method(method.clone())
            .uri(format!("{base}{path}"))
            .header("content-type", "application/json")
            .header("accept", "application/json");
        if let Some(t) = token {
            req = req.header("x-auth-token", t);
        }
        let req = req.body(Full::new(bytes)).map_err(|e| transport(e.to_string()))?;
        let answer = async {
            let resp = self.inner.http.request(req).await.map_err(|e| transport(with_causes(&e)))?;
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let body = resp.into_body().collect().await.map_err(|e| transport(e.to_string()))?.to_bytes();
            Ok((status, headers, body))
        };
        match tokio::time::timeout(cfg.timeout, answer).await {
            Ok(r) => r,
            Err(_) => Err(transport(format!("no answer within {} ms", cfg.timeout.as_millis()))),
        }
    }

    /// One exchange with Neutron (with the token; a 401 renews it and sends once more).
    async fn exchange(&self, method: &Method, path: &str, body: Option<&Value>) -> Result<(u16, Bytes), Error> {
        let url = &self.inner.cfg.url;
        let token = self.token().await?;
        let (status, _, bytes) = self.raw(method, url, path, body, token.as_deref()).await?;
        match token {
            Some(t) if status == 401 => {
                self.forget_token(&t).await;
                let token = self.token().await?;
                let (status, _, bytes) = self.raw(method, url, path, body, token.as_deref()).await?;
                Ok((status, bytes))
            }
            _ => Ok((status, bytes)),
        }
    }

    /// One call: a 2xx answer's body decoded as `T` (from `Null` when empty), else [`Error::Api`].
    async fn call<T: DeserializeOwned>(&self, method: Method, path: &str, body: Option<&Value>) -> Result<T, Error> {
        let (status, bytes) = self.exchange(&method, path, body).await?;
        let decode = |what: String| Error::Decode { method: method.to_string(), path: path.to_string(), what };
        if !(200..300).contains(&status) {
            let e: ErrorBody = serde_json::from_slice(&bytes).unwrap_or_default();
            let (kind, message) = match e.error {
                Some(d) => (d.kind, d.message),
                None => (String::new(), String::from_utf8_lossy(&bytes).chars().take(500).collect()),
            };
            return Err(Error::Api { method: method.to_string(), path: path.to_string(), status, kind, message });
        }
        let value: Value =
            if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).map_err(|e| decode(e.to_string()))? };
        serde_json::from_value(value).map_err(|e| decode(e.to_string()))
    }

    /// The pauses between tries: `backoff`, doubled each time, at most 5 s.
    fn pauses(&self) -> impl Iterator<Item = Duration> {
        let first = self.inner.cfg.backoff;
        std::iter::successors(Some(first), |p| Some((*p * 2).min(Duration::from_secs(5))))
    }

    /// `f` tried again on transient failures, with backoff, up to `tries` times.
    async fn retried<T, F, Fut>(&self, what: &str, mut f: F) -> Result<T, Error>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, Error>>,
    {
        let tries = self.inner.cfg.tries.max(1);
        let mut pauses = self.pauses();
        let mut attempt = 1;
        loop {
            match f().await {
                Ok(t) => return Ok(t),
                Err(e) if e.is_transient() && attempt < tries => {
                    let pause = pauses.next().unwrap_or_default();
                    debug!(attempt, "{what}: {e}; trying again in {} ms", pause.as_millis());
                    tokio::time::sleep(pause).await;
                    attempt += 1;
                }
                Err(e) if attempt > 1 => return Err(Error::Exhausted { tries: attempt, last: Box::new(e) }),
                Err(e) => return Err(e),
            }
        }
    }

    /// Networks matching `query` (the part after `?`, e.g. `tags=kubetron:expose`; empty: all).
    pub async fn networks(&self, query: &str) -> Result<Vec<Network>, Error> {
        let path = if query.is_empty() { "/v2.0/networks".to_string() } else { format!("/v2.0/networks?{query}") };
        let v: Value = self.retried("listing networks", || self.call(Method::GET, &path, None)).await?;
        field(&v, "networks", &path)
    }

    /// The subnets of the networks `network_ids`.
    pub async fn subnets_of(&self, network_ids: &[String]) -> Result<Vec<Subnet>, Error> {
        if network_ids.is_empty() {
            return Ok(Vec::new());
        }
        let q: Vec<String> = network_ids.iter().map(|id| format!("network_id={}", encode(id))).collect();
        let path = format!("/v2.0/subnets?{}", q.join("&"));
        let v: Value = self.retried("listing subnets", || self.call(Method::GET, &path, None)).await?;
        field(&v, "subnets", &path)
    }

    /// Security groups matching `query` (e.g. `name=web&project_id=P`; empty: all visible).
    pub async fn security_groups(&self, query: &str) -> Result<Vec<SecurityGroup>, Error> {
        let path = if query.is_empty() { "/v2.0/security-groups".to_string() } else { format!("/v2.0/security-groups?{query}") };
        let v: Value = self.retried("listing security groups", || self.call(Method::GET, &path, None)).await?;
        field(&v, "security_groups", &path)
    }

    /// The security groups whose name or ID is `name_or_id` (in `project` when given).
    pub async fn security_groups_named(&self, name_or_id: &str, project: Option<&str>) -> Result<Vec<SecurityGroup>, Error> {
        let scope = project.map(|p| format!("&project_id={}", encode(p))).unwrap_or_default();
        let mut found = self.security_groups(&format!("name={}{scope}", encode(name_or_id))).await?;
        if found.is_empty() {
            found = self.security_groups(&format!("id={}{scope}", encode(name_or_id))).await?;
        }
        Ok(found)
    }

    /// Creates a security group (setup: tests, the sandbox) in `project` (noauth) or the token's.
    pub async fn create_security_group(&self, name: &str, project: Option<&str>) -> Result<SecurityGroup, Error> {
        let mut sg = json!({"name": name});
        if let Some(p) = project {
            sg["project_id"] = json!(p);
        }
        let v: Value = self.call(Method::POST, "/v2.0/security-groups", Some(&json!({ "security_group": sg }))).await?;
        field(&v, "security_group", "/v2.0/security-groups")
    }

    /// The port `id`, if it exists.
    pub async fn port(&self, id: &str) -> Result<Option<Port>, Error> {
        let path = format!("/v2.0/ports/{}", encode(id));
        match self.retried("reading a port", || self.call::<Value>(Method::GET, &path, None)).await {
            Ok(v) => field(&v, "port", &path).map(Some),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// kubetron's ports (`device_owner` [`DEVICE_OWNER`]) of device `device_id` (a pod UID);
    /// coalesced with other lookups ([`ClientConfig::coalesce_window`]).
    pub async fn ports_of_device(&self, device_id: &str) -> Result<Vec<Port>, Error> {
        if let Some(b) = self.batches() {
            if let Some(found) = b.lookups.call(device_id.to_string()).await {
                return Ok(found);
            }
        }
        self.ports_of_devices(&[device_id.to_string()]).await
    }

    /// kubetron's ports of any of `device_ids`, in one request.
    pub async fn ports_of_devices(&self, device_ids: &[String]) -> Result<Vec<Port>, Error> {
        let mut path = format!("/v2.0/ports?device_owner={}", encode(DEVICE_OWNER));
        for id in device_ids {
            path.push_str(&format!("&device_id={}", encode(id)));
        }
        let v: Value = self.retried("listing pods' ports", || self.call(Method::GET, &path, None)).await?;
        field(&v, "ports", &path)
    }

    /// Every port kubetron made ([`DEVICE_OWNER`]), read in pages of [`PAGE`].
    pub async fn owned_ports(&self) -> Result<Vec<Port>, Error> {
        let mut all: Vec<Port> = Vec::new();
        loop {
            let mut path = format!("/v2.0/ports?device_owner={}&limit={PAGE}", encode(DEVICE_OWNER));
            if let Some(last) = all.last() {
                path.push_str(&format!("&marker={}", encode(&last.id)));
            }
            let v: Value = self.retried("listing kubetron's ports", || self.call(Method::GET, &path, None)).await?;
            let page: Vec<Port> = field(&v, "ports", &path)?;
            let full = page.len() >= PAGE;
            all.extend(page);
            if !full {
                return Ok(all);
            }
        }
    }

    /// Creates a port: one POST within the write bound, never retried (see [`Client::ensure_port`]).
    pub async fn create_port(&self, port: &NewPort) -> Result<Port, Error> {
        let _permit = self.inner.writes.acquire().await.expect("the write semaphore is never closed");
        let body = json!({ "port": port });
        let v: Value = self.call(Method::POST, "/v2.0/ports", Some(&body)).await?;
        field(&v, "port", "/v2.0/ports")
    }

    /// Creates `ports` in one bulk POST (`{"ports": [..]}`, all or none), within the write bound;
    /// never retried. The answer lists them in the order asked.
    pub async fn create_ports(&self, ports: &[NewPort]) -> Result<Vec<Port>, Error> {
        let _permit = self.inner.writes.acquire().await.expect("the write semaphore is never closed");
        let body = json!({ "ports": ports });
        let v: Value = self.call(Method::POST, "/v2.0/ports", Some(&body)).await?;
        field(&v, "ports", "/v2.0/ports")
    }

    /// The port of `want` (same `device_id` and `name`), made if there is none; `true` when this
    /// call made it. A transient failure of the create (no answer, 5xx, Neutron's own conflicts)
    /// is followed by a lookup before any second create, so retries never make a second port; if
    /// two exist anyway (a create still running inside Neutron when the lookup ran), the oldest is
    /// kept and the others deleted.
    pub async fn ensure_port(&self, want: &NewPort) -> Result<(Port, bool), Error> {
        if let Some(p) = self.existing(want).await? {
            return Ok((p, false));
        }
        self.create_missing_port(want).await
    }

    /// [`Client::ensure_port`] for a port the caller just looked up and did not find: made at once
    /// (coalesced into a bulk create when it asks for no static address), then as
    /// [`Client::ensure_port`] does (looked up again before every further create).
    pub async fn create_missing_port(&self, want: &NewPort) -> Result<(Port, bool), Error> {
        let dynamic = want.fixed_ips.is_empty() && want.mac_address.is_none();
        if let (true, Some(b)) = (dynamic, self.batches()) {
            if let Some(p) = b.creates.call(want.clone()).await {
                return Ok((p, true));
            }
        } else {
            match self.create_port(want).await {
                Ok(p) => return Ok((p, true)),
                Err(e) if e.is_transient() => warn!(port = %want.name, "creating a Neutron port: {e}; looking it up before trying again"),
                Err(e) => return Err(e),
            }
        }
        let tries = self.inner.cfg.tries.max(1);
        let mut pauses = self.pauses();
        let mut last = None;
        for attempt in 1..=tries {
            if let Some(p) = self.existing(want).await? {
                return Ok((p, false));
            }
            match self.create_port(want).await {
                Ok(p) => return Ok((p, true)),
                Err(e) if e.is_transient() => {
                    warn!(attempt, port = %want.name, "creating a Neutron port: {e}; looking it up before trying again");
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
            tokio::time::sleep(pauses.next().unwrap_or_default()).await;
        }
        if let Some(p) = self.existing(want).await? {
            return Ok((p, false));
        }
        Err(Error::Exhausted { tries, last: Box::new(last.expect("every try failed")) })
    }

    /// The port of `want` if one exists (duplicates beyond the oldest are deleted).
    async fn existing(&self, want: &NewPort) -> Result<Option<Port>, Error> {
        let mut same: Vec<Port> = self.ports_of_device(&want.device_id).await?.into_iter().filter(|p| p.name == want.name).collect();
        same.sort_by(|a, b| (&a.created_at, &a.id).cmp(&(&b.created_at, &b.id)));
        let mut it = same.into_iter();
        let keep = it.next();
        for dup in it {
            warn!(port = %dup.id, name = %dup.name, "deleting a duplicate Neutron port");
            self.delete_port(&dup.id).await?;
        }
        Ok(keep)
    }

    /// Deletes port `id` (absent is fine), retried on transient failures.
    pub async fn delete_port(&self, id: &str) -> Result<(), Error> {
        let path = format!("/v2.0/ports/{}", encode(id));
        let r = self
            .retried("deleting a port", || async {
                let _permit = self.inner.writes.acquire().await.expect("the write semaphore is never closed");
                self.call::<Value>(Method::DELETE, &path, None).await
            })
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(e) if e.status() == Some(404) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Creates a network (setup: tests, the sandbox); `extra` fields merge into the body.
    pub async fn create_network(&self, name: &str, extra: Value) -> Result<Network, Error> {
        let mut net = json!({"name": name});
        merge(&mut net, extra);
        let v: Value = self.call(Method::POST, "/v2.0/networks", Some(&json!({ "network": net }))).await?;
        field(&v, "network", "/v2.0/networks")
    }

    /// Creates a subnet of `network_id` with `cidr` (IPv4, DHCP on); `extra` fields merge into the body.
    pub async fn create_subnet(&self, network_id: &str, cidr: &str, extra: Value) -> Result<Subnet, Error> {
        let mut sub = json!({"network_id": network_id, "cidr": cidr, "ip_version": 4, "enable_dhcp": true});
        merge(&mut sub, extra);
        let v: Value = self.call(Method::POST, "/v2.0/subnets", Some(&json!({ "subnet": sub }))).await?;
        field(&v, "subnet", "/v2.0/subnets")
    }

    /// Replaces the tags of network `id`.
    pub async fn set_network_tags(&self, id: &str, tags: &[&str]) -> Result<(), Error> {
        let path = format!("/v2.0/networks/{}/tags", encode(id));
        let body = json!({ "tags": tags });
        self.retried("tagging a network", || self.call::<Value>(Method::PUT, &path, Some(&body))).await.map(|_| ())
    }
}

/// `e` and its causes (hyper's own message is only "client error (Connect)"; the cause says
/// "connection refused" or "invalid peer certificate: UnknownIssuer").
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}

/// A TLS client configuration trusting nothing.
fn empty_roots() -> rustls::ClientConfig {
    roots_config(rustls::RootCertStore::empty()).expect("ring's default protocol versions")
}

fn roots_config(roots: rustls::RootCertStore) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// A TLS client configuration trusting the CA certificates in PEM file `path`.
fn tls_config(path: &std::path::Path) -> Result<rustls::ClientConfig, String> {
    let pem = std::fs::read(path).map_err(|e| format!("CA file {}: {e}", path.display()))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        let cert = cert.map_err(|e| format!("CA file {}: {e}", path.display()))?;
        roots.add(cert).map_err(|e| format!("CA file {}: {e}", path.display()))?;
    }
    if roots.is_empty() {
        return Err(format!("CA file {} holds no certificate", path.display()));
    }
    roots_config(roots)
}

/// Ports per page of a listing.
pub const PAGE: usize = 500;

/// Seconds since the epoch of an ISO 8601 UTC time as Keystone writes it
/// (`2026-11-30T19:41:46.000000Z`).
fn epoch_seconds(s: &str) -> Option<f64> {
    let s = s.strip_suffix('Z').unwrap_or(s);
    let (date, time) = s.split_once('T')?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>());
    let (y, m, dd) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let mut t = time.splitn(3, ':');
    let (hh, mm, ss) = (t.next()?.parse::<f64>().ok()?, t.next()?.parse::<f64>().ok()?, t.next()?.parse::<f64>().ok()?);
    // Days from the civil date (proleptic Gregorian), H. Hinnant's algorithm.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + dd - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    Some(days as f64 * 86400.0 + hh * 3600.0 + mm * 60.0 + ss)
}

/// `v[key]` decoded.
fn field<T: DeserializeOwned>(v: &Value, key: &str, path: &str) -> Result<T, Error> {
    let decode = |what: String| Error::Decode { method: String::new(), path: path.into(), what };
    let inner = v.get(key).cloned().ok_or_else(|| decode(format!("no {key:?} in the answer")))?;
    serde_json::from_value(inner).map_err(|e| decode(format!("{key}: {e}")))
}

fn merge(into: &mut Value, extra: Value) {
    if let (Some(a), Value::Object(b)) = (into.as_object_mut(), extra) {
        a.extend(b);
    }
}

/// Percent-encoding of a query value or path segment (RFC 3986 unreserved characters kept).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keystone_times() {
        assert_eq!(epoch_seconds("1970-01-01T00:00:00.000000Z"), Some(0.0));
        assert_eq!(epoch_seconds("2026-11-30T19:41:46.000000Z"), Some(1_796_067_706.0));
        assert_eq!(epoch_seconds("2000-02-29T12:00:00.500000Z"), Some(951_825_600.5));
        let (i, e) = (epoch_seconds("2026-11-30T23:59:50.000000Z").unwrap(), epoch_seconds("2026-12-01T00:00:10.000000Z").unwrap());
        assert_eq!(e - i, 20.0);
        assert_eq!(epoch_seconds("yesterday"), None);
    }

    #[test]
    fn keystone_requests() {
        let pw = Auth::Password {
            keystone: "http://127.0.0.1:5000/v3".into(),
            user: "u".into(),
            password: "pw-secret-1".into(),
            project: "kt".into(),
        };
        let (url, body) = pw.request().unwrap();
        assert_eq!(url, "http://127.0.0.1:5000");
        assert_eq!(body["auth"]["scope"]["project"]["name"], "kt");
        assert_eq!(body["auth"]["identity"]["password"]["user"]["domain"]["name"], "Default");
        let ac = Auth::ApplicationCredential { keystone: "http://127.0.0.1:5000".into(), id: "i".into(), secret: "ac-secret-2".into() };
        let (url, body) = ac.request().unwrap();
        assert_eq!(url, "http://127.0.0.1:5000");
        assert!(body["auth"].get("scope").is_none(), "an application credential carries its project");
        let shown = format!("{pw:?} {ac:?}");
        assert!(!shown.contains("pw-secret-1") && !shown.contains("ac-secret-2"), "no secrets in Debug: {shown}");
        assert!(Auth::None.request().is_none());
    }

    #[test]
    fn encodes_query_values() {
        assert_eq!(encode("compute:kubetron"), "compute%3Akubetron");
        assert_eq!(encode("ns/pod a"), "ns%2Fpod%20a");
        assert_eq!(encode("4b7e0a4c-1f7b_x.y~"), "4b7e0a4c-1f7b_x.y~");
    }

    #[test]
    fn http_and_https_only() {
        assert!(Client::new(ClientConfig::new("ftp://neutron:9696")).is_err());
        assert!(Client::new(ClientConfig::new("neutron:9696")).is_err());
        assert!(Client::new(ClientConfig::new("https://neutron:9696")).is_ok());
        let c = Client::new(ClientConfig::new("http://127.0.0.1:9696/")).unwrap();
        assert_eq!(c.inner.cfg.url, "http://127.0.0.1:9696");
        let pauses: Vec<u128> = c.pauses().take(7).map(|d| d.as_millis()).collect();
        assert_eq!(pauses, [200, 400, 800, 1600, 3200, 5000, 5000]);
    }
}

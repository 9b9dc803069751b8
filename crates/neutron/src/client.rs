//! The HTTP client: bounded calls, retries, idempotent port creation.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use tracing::{debug, warn};

use crate::types::{ErrorBody, Network, NewPort, Port, Subnet, DEVICE_OWNER};
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
    http: HttpClient<HttpConnector, Full<Bytes>>,
    writes: Semaphore,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("url", &self.inner.cfg.url).finish()
    }
}

impl Client {
    /// A client of the Neutron at `cfg.url` (plain `http://` for now).
    pub fn new(cfg: ClientConfig) -> Result<Client, Error> {
        if !cfg.url.starts_with("http://") {
            return Err(Error::Transport {
                url: cfg.url.clone(),
                method: String::new(),
                path: String::new(),
                what: "only http:// endpoints are supported so far".into(),
            });
        }
        let http = HttpClient::builder(TokioExecutor::new()).build_http();
        let writes = Semaphore::new(cfg.write_concurrency.max(1));
        Ok(Client { inner: Arc::new(Inner { cfg, http, writes }) })
    }

    /// One exchange: the status and the body.
    async fn exchange(&self, method: &Method, path: &str, body: Option<&Value>) -> Result<(u16, Bytes), Error> {
        let cfg = &self.inner.cfg;
        let transport = |what: String| Error::Transport { url: cfg.url.clone(), method: method.to_string(), path: path.to_string(), what };
        let bytes = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        let req = Request::builder()
            .method(method.clone())
            .uri(format!("{}{path}", cfg.url))
            .header("content-type", "application/json")
            .header("accept", "application/json")
            .body(Full::new(bytes))
            .map_err(|e| transport(e.to_string()))?;
        let answer = async {
            let resp = self.inner.http.request(req).await.map_err(|e| transport(e.to_string()))?;
            let status = resp.status().as_u16();
            let body = resp.into_body().collect().await.map_err(|e| transport(e.to_string()))?.to_bytes();
            Ok((status, body))
        };
        match tokio::time::timeout(cfg.timeout, answer).await {
            Ok(r) => r,
            Err(_) => Err(transport(format!("no answer within {} ms", cfg.timeout.as_millis()))),
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

    /// The port `id`, if it exists.
    pub async fn port(&self, id: &str) -> Result<Option<Port>, Error> {
        let path = format!("/v2.0/ports/{}", encode(id));
        match self.retried("reading a port", || self.call::<Value>(Method::GET, &path, None)).await {
            Ok(v) => field(&v, "port", &path).map(Some),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// kubetron's ports (`device_owner` [`DEVICE_OWNER`]) of device `device_id` (a pod UID).
    pub async fn ports_of_device(&self, device_id: &str) -> Result<Vec<Port>, Error> {
        let path = format!("/v2.0/ports?device_id={}&device_owner={}", encode(device_id), encode(DEVICE_OWNER));
        let v: Value = self.retried("listing a pod's ports", || self.call(Method::GET, &path, None)).await?;
        field(&v, "ports", &path)
    }

    /// Creates a port: one POST within the write bound, never retried (see [`Client::ensure_port`]).
    pub async fn create_port(&self, port: &NewPort) -> Result<Port, Error> {
        let _permit = self.inner.writes.acquire().await.expect("the write semaphore is never closed");
        let body = json!({ "port": port });
        let v: Value = self.call(Method::POST, "/v2.0/ports", Some(&body)).await?;
        field(&v, "port", "/v2.0/ports")
    }

    /// The port of `want` (same `device_id` and `name`), made if there is none; `true` when this
    /// call made it. A transient failure of the create (no answer, 5xx, Neutron's own conflicts)
    /// is followed by a lookup before any second create, so retries never make a second port; if
    /// two exist anyway (a create still running inside Neutron when the lookup ran), the oldest is
    /// kept and the others deleted.
    pub async fn ensure_port(&self, want: &NewPort) -> Result<(Port, bool), Error> {
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
    fn encodes_query_values() {
        assert_eq!(encode("compute:kubetron"), "compute%3Akubetron");
        assert_eq!(encode("ns/pod a"), "ns%2Fpod%20a");
        assert_eq!(encode("4b7e0a4c-1f7b_x.y~"), "4b7e0a4c-1f7b_x.y~");
    }

    #[test]
    fn only_plain_http_so_far() {
        assert!(Client::new(ClientConfig::new("https://neutron:9696")).is_err());
        let c = Client::new(ClientConfig::new("http://127.0.0.1:9696/")).unwrap();
        assert_eq!(c.inner.cfg.url, "http://127.0.0.1:9696");
        let pauses: Vec<u128> = c.pauses().take(7).map(|d| d.as_millis()).collect();
        assert_eq!(pauses, [200, 400, 800, 1600, 3200, 5000, 5000]);
    }
}

//! A real OpenStack Keystone (identity v3) for tests: Debian's `keystone` served by uwsgi on
//! 127.0.0.1 (a free port), sqlite, fernet tokens with a lifetime the test chooses, everything in
//! one state directory, stopped by its process group (uwsgi's master and worker), never by name.
//!
//! Settings it needs here (found by a spike on these machines): uwsgi adds `Connection: close`
//! (else neutron's auth middleware gets 503s), one thread per uwsgi worker with sqlite (else
//! "database is locked"), an absolute `[oslo_policy] policy_dirs` of its own (else every
//! policy-checked call is a 500). `password_hash_rounds = 4` keeps logins cheap (tests only).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use crate::http;
use crate::process::{free_tcp_port, run, GroupLeader};
use crate::Error;

/// The bootstrap admin's password.
const ADMIN_PASSWORD: &str = "kt-admin-pw";

/// Whether Keystone and uwsgi are installed.
pub fn available() -> bool {
    ["/usr/bin/keystone-manage", "/usr/bin/keystone-wsgi-public", "/usr/bin/uwsgi"].iter().all(|p| Path::new(p).exists())
}

/// A running Keystone.
#[derive(Debug)]
pub struct Keystone {
    port: u16,
    leader: GroupLeader,
}

impl Keystone {
    /// Sets Keystone up in `dir` (database, fernet and credential keys, the bootstrap admin in
    /// project `admin`, region `RegionOne`) with tokens valid for `token_lifetime`, serves it and
    /// waits until `GET /v3` answers.
    pub fn start(dir: &Path, token_lifetime: Duration) -> Result<Keystone, Error> {
        for d in ["log", "fernet-keys", "credential-keys", "policy.d"] {
            let p = dir.join(d);
            std::fs::create_dir_all(&p).map_err(|e| Error::Io { path: p, source: e })?;
        }
        let write = |name: &str, text: String| {
            let p = dir.join(name);
            std::fs::write(&p, text).map_err(|e| Error::Io { path: p, source: e })
        };
        write("policy.yaml", "{}\n".into())?;
        let conf = dir.join("keystone.conf");
        write("keystone.conf", keystone_conf(dir, token_lifetime.as_secs().max(1)))?;
        let port = free_tcp_port()?;
        let url = format!("http://127.0.0.1:{port}/v3");
        let c = conf.display().to_string();
        let manage = |args: &[&str]| {
            let mut argv = vec!["--config-file", c.as_str()];
            argv.extend_from_slice(args);
            run("keystone-manage", &argv)
        };
        manage(&["db_sync"])?;
        manage(&["fernet_setup", "--keystone-user", "root", "--keystone-group", "root"])?;
        manage(&["credential_setup", "--keystone-user", "root", "--keystone-group", "root"])?;
        manage(&[
            "bootstrap",
            "--bootstrap-password",
            ADMIN_PASSWORD,
            "--bootstrap-admin-url",
            &url,
            "--bootstrap-public-url",
            &url,
            "--bootstrap-internal-url",
            &url,
            "--bootstrap-region-id",
            "RegionOne",
        ])?;
        let log = dir.join("log/uwsgi.stdout");
        let mut cmd = Command::new("uwsgi");
        cmd.args(["--plugin", "python3", "--http-socket", &format!("127.0.0.1:{port}"), "--wsgi-file", "/usr/bin/keystone-wsgi-public"])
            .args(["--master", "--processes", "1", "--threads", "1", "--die-on-term", "--need-app", "--lazy-apps"])
            .args(["--env", &format!("OS_KEYSTONE_CONFIG_FILES={c}"), "--buffer-size", "65535", "--add-header", "Connection: close"])
            .arg("--chdir")
            .arg(dir);
        let mut leader = GroupLeader::spawn("keystone (uwsgi)", cmd, &log, &dir.join("uwsgi.pid"), Duration::from_secs(10))?;
        leader.wait_ready(Duration::from_secs(120), &log, || match http::call("GET", port, "/v3", &[], None) {
            Ok(a) if a.status == 200 => Ok(()),
            Ok(a) => Err(format!("GET /v3 answered {}", a.status)),
            Err(e) => Err(e.to_string()),
        })?;
        Ok(Keystone { port, leader })
    }

    /// `http://127.0.0.1:PORT` (the identity API is under `/v3`).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// One identity API call with `token` (setup in tests).
    pub fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<&Value>) -> Result<http::Answer, Error> {
        let headers: Vec<(&str, &str)> = token.map(|t| ("X-Auth-Token", t)).into_iter().collect();
        http::call(method, self.port, path, &headers, body)
    }

    /// A token of `user` (domain `Default`) scoped to `project`.
    pub fn token(&self, user: &str, password: &str, project: &str) -> Result<String, Error> {
        let body = json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": user, "domain": {"name": "Default"}, "password": password}}},
                                   "scope": {"project": {"name": project, "domain": {"name": "Default"}}}}});
        let a = self.call("POST", "/v3/auth/tokens", None, Some(&body))?;
        match (a.status, a.header("x-subject-token")) {
            (201, Some(t)) => Ok(t.to_string()),
            _ => Err(Error::NotReady(format!("token of {user}: {} {}", a.status, a.body))),
        }
    }

    /// The bootstrap admin's token (project `admin`).
    pub fn admin_token(&self) -> Result<String, Error> {
        self.token("admin", ADMIN_PASSWORD, "admin")
    }

    /// Makes project `project` (if missing) and user `user` with `password` holding role `role`
    /// on it; returns the user's ID.
    pub fn user(&self, project: &str, user: &str, password: &str, role: &str) -> Result<String, Error> {
        let t = self.admin_token()?;
        let created = |a: http::Answer, what: &str, key: &str| -> Result<String, Error> {
            match a.status {
                201 => a.json()[key]["id"].as_str().map(str::to_string).ok_or_else(|| Error::NotReady(format!("{what}: {}", a.body))),
                _ => Err(Error::NotReady(format!("{what}: {} {}", a.status, a.body))),
            }
        };
        let found = self.call("GET", &format!("/v3/projects?name={project}"), Some(&t), None)?.json();
        let project_id = match found["projects"][0]["id"].as_str() {
            Some(id) => id.to_string(),
            None => created(
                self.call("POST", "/v3/projects", Some(&t), Some(&json!({"project": {"name": project, "domain_id": "default"}})))?,
                "project",
                "project",
            )?,
        };
        let user_body = json!({"user": {"name": user, "domain_id": "default", "password": password, "default_project_id": project_id}});
        let user_id = created(self.call("POST", "/v3/users", Some(&t), Some(&user_body))?, "user", "user")?;
        let roles = self.call("GET", &format!("/v3/roles?name={role}"), Some(&t), None)?.json();
        let role_id = roles["roles"][0]["id"].as_str().ok_or_else(|| Error::NotReady(format!("no role {role}")))?.to_string();
        let a = self.call("PUT", &format!("/v3/projects/{project_id}/users/{user_id}/roles/{role_id}"), Some(&t), None)?;
        if a.status != 204 {
            return Err(Error::NotReady(format!("role {role} for {user}: {} {}", a.status, a.body)));
        }
        Ok(user_id)
    }

    /// An application credential of user `user_id` (made with the user's own `token`): its ID.
    pub fn application_credential(&self, user_id: &str, token: &str, name: &str, secret: &str) -> Result<String, Error> {
        let body = json!({"application_credential": {"name": name, "secret": secret}});
        let a = self.call("POST", &format!("/v3/users/{user_id}/application_credentials"), Some(token), Some(&body))?;
        match a.status {
            201 => a.json()["application_credential"]["id"]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| Error::NotReady(format!("application credential: {}", a.body))),
            _ => Err(Error::NotReady(format!("application credential: {} {}", a.status, a.body))),
        }
    }

    /// Stops uwsgi's process group: SIGTERM, then SIGKILL after 10 s (idempotent; also on drop).
    pub fn stop(&mut self) -> Result<(), Error> {
        self.leader.stop()
    }
}

/// `keystone.conf` (literal paths: oslo.config does not expand variables).
fn keystone_conf(dir: &Path, lifetime_s: u64) -> String {
    let d = dir.display();
    format!(
        "[DEFAULT]
log_file = {d}/log/keystone.log
use_stderr = false

[database]
connection = sqlite:///{d}/keystone.sqlite

[token]
provider = fernet
expiration = {lifetime_s}

[fernet_tokens]
key_repository = {d}/fernet-keys

[fernet_receipts]
key_repository = {d}/fernet-keys

[credential]
key_repository = {d}/credential-keys

[oslo_policy]
policy_file = {d}/policy.yaml
policy_dirs = {d}/policy.d

[identity]
password_hash_rounds = 4

[cache]
enabled = true
backend = dogpile.cache.memory
"
    )
}

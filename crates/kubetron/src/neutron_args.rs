//! The controller's options for the `neutron` backend: where Neutron is, how to authenticate, the
//! hand-off key. Secrets come from files only (mounted Secrets), never from the command line.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

/// How the controller authenticates to Neutron.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthKind {
    /// Neutron's `auth_strategy = noauth` (no Keystone): only for test and lab setups.
    Noauth,
    /// A Keystone v3 user and password, the token scoped to a project.
    Password,
    /// A Keystone v3 application credential.
    ApplicationCredential,
}

#[derive(clap::Args, Clone, Debug)]
pub struct NeutronArgs {
    /// Neutron's API endpoint (`http://HOST:9696`; the part before `/v2.0`).
    #[arg(long, env = "KUBETRON_NEUTRON_URL")]
    pub neutron_url: Option<String>,
    /// How to authenticate: `noauth` must be asked for explicitly.
    #[arg(long, env = "KUBETRON_NEUTRON_AUTH", value_enum, default_value = "password")]
    pub neutron_auth: AuthKind,
    /// Keystone's URL (`http://HOST:5000/v3`).
    #[arg(long, env = "OS_AUTH_URL")]
    pub os_auth_url: Option<String>,
    #[arg(long, env = "OS_USERNAME")]
    pub os_username: Option<String>,
    /// A file holding the password.
    #[arg(long, env = "KUBETRON_OS_PASSWORD_FILE")]
    pub os_password_file: Option<PathBuf>,
    /// The project the password token is scoped to.
    #[arg(long, env = "OS_PROJECT_NAME")]
    pub os_project_name: Option<String>,
    #[arg(long, env = "OS_APPLICATION_CREDENTIAL_ID")]
    pub os_application_credential_id: Option<String>,
    /// A file holding the application credential's secret.
    #[arg(long, env = "KUBETRON_OS_APPLICATION_CREDENTIAL_SECRET_FILE")]
    pub os_application_credential_secret_file: Option<PathBuf>,
    /// The project (ID) ports are made in (`project_id`; needed under noauth). Default: the
    /// token's project.
    #[arg(long, env = "KUBETRON_NEUTRON_PROJECT")]
    pub neutron_project: Option<String>,
    /// CA certificates (PEM) that https:// Neutron and Keystone endpoints must chain to (default:
    /// the system's).
    #[arg(long, env = "KUBETRON_NEUTRON_CA_FILE")]
    pub neutron_ca_file: Option<PathBuf>,
    /// Port creates and deletes in flight at most.
    #[arg(long, env = "KUBETRON_NEUTRON_CONCURRENCY", default_value_t = 8)]
    pub neutron_concurrency: usize,
    /// Bound of one request to Neutron or Keystone, in seconds.
    #[arg(long, default_value_t = 30)]
    pub neutron_timeout_secs: u64,
    /// How long a port whose pod is gone stays before garbage collection deletes it (seconds;
    /// it is deleted on a later collection at least this long after the first that saw it).
    #[arg(long, default_value_t = 60)]
    pub neutron_gc_grace_secs: u64,
    /// The cluster's hand-off key (a file of at least 16 random bytes, the Secret
    /// kubetron-handoff-key that the node agents mount too): the controller signs the Neutron
    /// port IDs it hands to the nodes with it. Required by the neutron backend.
    #[arg(long, env = "KUBETRON_HANDOFF_KEY_FILE")]
    pub handoff_key_file: Option<PathBuf>,
}

fn secret(path: &Option<PathBuf>, flag: &str) -> anyhow::Result<String> {
    let path = path.as_ref().with_context(|| format!("{flag} is required"))?;
    let s = std::fs::read_to_string(path).with_context(|| format!("{flag} {}", path.display()))?;
    Ok(s.trim_end_matches(['\r', '\n']).to_string())
}

fn given<'a>(v: &'a Option<String>, flag: &str) -> anyhow::Result<&'a str> {
    v.as_deref().filter(|s| !s.trim().is_empty()).with_context(|| format!("{flag} is required"))
}

impl NeutronArgs {
    /// The client and the backend settings these options describe (files read, nothing contacted).
    pub fn build(&self) -> anyhow::Result<(neutron::Client, k8s::controller::neutron::NeutronSettings)> {
        let url = given(&self.neutron_url, "--neutron-url (KUBETRON_NEUTRON_URL)")?;
        let mut cfg = neutron::ClientConfig::new(url);
        cfg.timeout = Duration::from_secs(self.neutron_timeout_secs.max(1));
        cfg.write_concurrency = self.neutron_concurrency.max(1);
        cfg.ca_file = self.neutron_ca_file.clone();
        cfg.auth = match self.neutron_auth {
            AuthKind::Noauth => {
                tracing::warn!("Neutron without authentication (--neutron-auth noauth): for test and lab setups only");
                neutron::Auth::None
            }
            AuthKind::Password => neutron::Auth::Password {
                keystone: given(&self.os_auth_url, "--os-auth-url")?.to_string(),
                user: given(&self.os_username, "--os-username")?.to_string(),
                password: secret(&self.os_password_file, "--os-password-file")?,
                project: given(&self.os_project_name, "--os-project-name")?.to_string(),
            },
            AuthKind::ApplicationCredential => neutron::Auth::ApplicationCredential {
                keystone: given(&self.os_auth_url, "--os-auth-url")?.to_string(),
                id: given(&self.os_application_credential_id, "--os-application-credential-id")?.to_string(),
                secret: secret(&self.os_application_credential_secret_file, "--os-application-credential-secret-file")?,
            },
        };
        let key_path =
            self.handoff_key_file.as_ref().context("--handoff-key-file (KUBETRON_HANDOFF_KEY_FILE) is required by the neutron backend")?;
        let key = model::hmac::read_key_file(key_path)?
            .with_context(|| format!("hand-off key {} does not exist (the neutron backend signs every hand-off)", key_path.display()))?;
        let mut settings = k8s::controller::neutron::NeutronSettings::new(Arc::from(key));
        settings.project = self.neutron_project.clone().filter(|p| !p.trim().is_empty());
        settings.gc_grace = Duration::from_secs(self.neutron_gc_grace_secs);
        let client = neutron::Client::new(cfg).context("the Neutron client")?;
        Ok((client, settings))
    }
}

//! Installing kubetron on a node for chained mode (`kubetron install-cni`, the node DaemonSet's
//! init container): the shim binary into the runtime's CNI bin dir, and kubetron's entry into the
//! runtime's primary network configuration, chained after the cluster's default plugin (no Multus).
//!
//! Steps of [`install`], in this order (a config naming a plugin binary that is not there yet would
//! fail every pod start):
//! 1. **Binary**: `<bin_src>` (the `kubetron-cni` shim) is copied to `<bin_dir>/kubetron`: a temp
//!    file in the same directory, fsync, mode 0755, rename over the old one (a runtime never executes
//!    a half-written binary, and a running one keeps its old inode). Skipped when the installed file
//!    is already identical (content and mode).
//! 2. **Primary config** ([`primary_config`]): the file the runtime uses, picked as libcni's
//!    `ConfFiles` + containerd's go-cni (`max_conf_num = 1`) pick it: every non-directory entry of
//!    `<conf_dir>` whose extension is `.conf`, `.conflist` or `.json`, sorted by name (bytes), the
//!    first wins. Our temp files end in [`TMP_SUFFIX`] and are never candidates. None yet (the
//!    default plugin's own installer has not run): wait, polling, up to `wait_timeout`, then
//!    [`InstallError::NoConfig`] naming the directory.
//! 3. **Entry** ([`chain_into`]): [`chained_entry`] (`{"type": "kubetron", "mode": "chained",
//!    "agent_socket": ..., "capabilities": {"io.kubernetes.cri.pod-annotations": true}}`; the runtime
//!    adds `name`, `cniVersion`, `prevResult` and `runtimeConfig`) becomes the last plugin of the
//!    primary's `plugins`. An existing `type: kubetron` entry is replaced where it stands (further
//!    ones are dropped), so running again changes nothing (and writes nothing). Everything else is kept
//!    as a value, key order included (serde_json's `preserve_order`); only the formatting changes.
//!    - A single-plugin `.conf`/`.json` primary cannot hold a chain (containerd loads a `.conf` as one
//!      plugin and refuses one without `type`): it becomes `<stem>.conflist` beside it, with the same
//!      `cniVersion` and `name` and the original object as the first plugin (what libcni's
//!      `ConfListFromConf` makes of it), and the `.conf` is removed. It has to go: `10-x.conf` sorts
//!      before `10-x.conflist` and would stay the primary. The runtime loads the old file until the
//!      removal and the conflist from then on, never a config without the default plugin. If the
//!      default plugin's installer writes its `.conf` again, it is the primary again, and the next run
//!      (or `--watch`) converts it again, overwriting `<stem>.conflist`.
//!    - Refused at once ([`InstallError::Unusable`]): a primary whose `cniVersion` kubetron does not
//!      support (every pod start would fail), an invalid network `name`, no `plugins` list, or no plugin
//!      other than kubetron to chain after. A primary that is not JSON (half-written by another
//!      installer) is read again until `wait_timeout`, then [`InstallError::Unreadable`].
//!
//! Every config write ([`write_config`]) is a temp file + fsync + rename, then a newline appended to
//! the renamed file in place: containerd 1.6 reloads its `conf_dir` on inotify WRITE, RENAME and REMOVE
//! events but ignores CREATE, and a rename *into* the directory is a CREATE to it, so without the
//! append the new file would not be seen until some later event; a file rewritten in place could
//! be read half-written. The append makes the WRITE event on an already complete file. The
//! file's mode is kept (new files 0644).
//!
//! [`uninstall`] removes `type: kubetron`, `mode: chained` entries from every candidate config in
//! `<conf_dir>` (not only the current primary), then the binary (in that order: an entry whose binary
//! is gone fails every pod start). A `.conf` converted to a conflist stays a conflist (with the
//! default plugin alone, what the runtime did with the `.conf`). Our stale temp files are removed.
//!
//! [`watch`]: [`install`], then every `watch_interval` the same steps again (the binary checked by
//! size and mode only, not read each time), until `stop`: a default plugin's installer that rewrites the primary
//! without our entry (or a newly appearing primary) is chained into again. Errors while watching are
//! logged and retried, never fatal.

use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use model::netconf::{is_kubetron, valid_network_name, KubetronNetConf, Mode, Version, CURRENT_VERSION, DEFAULT_AGENT_SOCKET, PLUGIN_TYPE};

use crate::{NetConf, POD_ANNOTATIONS_CAPABILITY};

/// The shim binary in the kubetron image.
pub const DEFAULT_BIN_SRC: &str = "/usr/local/bin/kubetron-cni";
/// The host's `/opt/cni/bin`, as the DaemonSet mounts it.
pub const DEFAULT_BIN_DIR: &str = "/host/opt/cni/bin";
/// The host's `/etc/cni/net.d`, as the DaemonSet mounts it.
pub const DEFAULT_CONF_DIR: &str = "/host/etc/cni/net.d";
/// How long [`install`] waits for the default plugin's config to appear.
pub const DEFAULT_WAIT_TIMEOUT: Duration = Duration::from_secs(300);
/// How often the wait looks again.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// How often [`watch`] checks the installation.
pub const DEFAULT_WATCH_INTERVAL: Duration = Duration::from_secs(5);
/// The extensions of network config files, as libcni and containerd list them.
pub const CONFIG_EXTENSIONS: [&str; 3] = ["conf", "conflist", "json"];
/// The suffix of our temp files (`.<target name>` + this): never a config extension.
pub const TMP_SUFFIX: &str = ".kubetron-tmp";

/// What went wrong, each naming the path.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// A file system operation failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// On what.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// No network config appeared within the wait.
    #[error(
        "no CNI network configuration (*.conf, *.conflist, *.json) in {} after waiting {}s: kubetron chains after the \
         cluster's default network plugin, whose configuration is not there yet (is the default plugin installed, and is \
         this directory the container runtime's CNI conf_dir?)",
        dir.display(),
        waited.as_secs()
    )]
    NoConfig {
        /// The conf dir.
        dir: PathBuf,
        /// How long we waited.
        waited: Duration,
    },
    /// The primary config is not JSON (still after the wait).
    #[error("{} is not a JSON network configuration: {source}", path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// The parse error.
        source: serde_json::Error,
    },
    /// The primary config cannot take kubetron's entry.
    #[error("{}: {msg}", path.display())]
    Unusable {
        /// The file.
        path: PathBuf,
        /// Why.
        msg: String,
    },
    /// The settings themselves are wrong (e.g. `agent_socket` not absolute).
    #[error("{0}")]
    Settings(String),
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> InstallError + 'a {
    move |source| InstallError::Io { op, path: path.to_path_buf(), source }
}

/// What to install where.
#[derive(Debug, Clone)]
pub struct InstallConfig {
    /// The shim binary to install.
    pub bin_src: PathBuf,
    /// The runtime's CNI bin dir; the binary becomes `<bin_dir>/kubetron`.
    pub bin_dir: PathBuf,
    /// The runtime's CNI conf dir.
    pub conf_dir: PathBuf,
    /// The node agent's socket, written into the entry (a path on the host).
    pub agent_socket: String,
    /// How long to wait for the primary config.
    pub wait_timeout: Duration,
    /// How often the wait looks again.
    pub poll_interval: Duration,
    /// How often [`watch`] checks.
    pub watch_interval: Duration,
}

impl Default for InstallConfig {
    fn default() -> Self {
        InstallConfig {
            bin_src: DEFAULT_BIN_SRC.into(),
            bin_dir: DEFAULT_BIN_DIR.into(),
            conf_dir: DEFAULT_CONF_DIR.into(),
            agent_socket: DEFAULT_AGENT_SOCKET.into(),
            wait_timeout: DEFAULT_WAIT_TIMEOUT,
            poll_interval: DEFAULT_POLL_INTERVAL,
            watch_interval: DEFAULT_WATCH_INTERVAL,
        }
    }
}

impl InstallConfig {
    /// The installed binary: `<bin_dir>/kubetron`.
    pub fn bin_dst(&self) -> PathBuf {
        self.bin_dir.join(PLUGIN_TYPE)
    }

    /// The entry [`install`] chains in.
    pub fn entry(&self) -> Value {
        chained_entry(&self.agent_socket)
    }

    /// Checks the entry is one the plugin accepts (as the runtime will pass it, with some list's
    /// name and version).
    pub fn validate(&self) -> Result<(), InstallError> {
        check_entry(&self.entry(), "kubetron-check", CURRENT_VERSION).map_err(InstallError::Settings)
    }
}

/// kubetron's entry in the default network's plugin list.
pub fn chained_entry(agent_socket: &str) -> Value {
    let conf = KubetronNetConf {
        mode: Some(Mode::Chained),
        agent_socket: Some(agent_socket.to_string()),
        capabilities: Some(Map::from_iter([(POD_ANNOTATIONS_CAPABILITY.to_string(), Value::Bool(true))])),
        ..KubetronNetConf::default()
    };
    Value::Object(conf.to_plugin())
}

/// The entry as the runtime will pass it (list `name` and `cniVersion` injected) parses as the
/// plugin's config.
fn check_entry(entry: &Value, name: &str, cni_version: &str) -> Result<(), String> {
    let mut conf = entry.as_object().cloned().unwrap_or_default();
    conf.insert("name".into(), name.into());
    conf.insert("cniVersion".into(), cni_version.into());
    NetConf::from_value(Value::Object(conf)).map(drop).map_err(|e| format!("kubetron's chained entry would be refused: {}", e.msg))
}

fn is_chained_kubetron(plugin: &Value) -> bool {
    is_kubetron(plugin) && plugin.get("mode").and_then(Value::as_str) == Some(Mode::Chained.as_str())
}

/// The extension as Go's `filepath.Ext` sees it: after the last `.` of the name (`.conf` included).
fn extension(name: &OsStr) -> Option<&str> {
    let b = name.as_bytes();
    let dot = b.iter().rposition(|&c| c == b'.')?;
    std::str::from_utf8(&b[dot + 1..]).ok()
}

fn is_conflist(path: &Path) -> bool {
    path.file_name().and_then(extension) == Some("conflist")
}

/// Every network config file of `dir`, sorted as libcni sorts them (by name, bytewise). A missing
/// directory has none.
pub fn config_files(dir: &Path) -> Result<Vec<PathBuf>, InstallError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("reading", dir)(e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err("reading", dir))?;
        let name = entry.file_name();
        // A file gone since the listing has no type: it is simply not a candidate.
        let Ok(ft) = entry.file_type() else { continue };
        if ft.is_dir() || name.as_bytes().ends_with(TMP_SUFFIX.as_bytes()) {
            continue;
        }
        if extension(&name).is_some_and(|e| CONFIG_EXTENSIONS.contains(&e)) {
            names.push(name);
        }
    }
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    Ok(names.into_iter().map(|n| dir.join(n)).collect())
}

/// The runtime's primary network config in `dir`: the first of [`config_files`].
pub fn primary_config(dir: &Path) -> Result<Option<PathBuf>, InstallError> {
    Ok(config_files(dir)?.into_iter().next())
}

/// Writes `bytes` to `path` atomically: a temp file beside it (`.<name>` + [`TMP_SUFFIX`]), fsync,
/// `mode`, rename, fsync of the directory.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), InstallError> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().ok_or_else(|| InstallError::Settings(format!("{} has no file name", path.display())))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(TMP_SUFFIX);
    let tmp = dir.join(tmp_name);
    // A temp file left by an interrupted run.
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err("removing", &tmp)(e)),
    }
    let written = (|| {
        let mut f = OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp).map_err(io_err("creating", &tmp))?;
        f.write_all(bytes).map_err(io_err("writing", &tmp))?;
        // The umask may have narrowed the mode.
        f.set_permissions(fs::Permissions::from_mode(mode)).map_err(io_err("setting the mode of", &tmp))?;
        f.sync_all().map_err(io_err("syncing", &tmp))?;
        fs::rename(&tmp, path).map_err(io_err("renaming into place", path))
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<(), InstallError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err("syncing", dir))
}

/// Writes a network config the way containerd notices it: [`write_atomic`] (the file's current
/// mode, else 0644), then one newline appended in place (the WRITE event; see the module doc).
pub fn write_config(path: &Path, config: &Value) -> Result<(), InstallError> {
    let mode = fs::metadata(path).map(|m| m.permissions().mode() & 0o7777).unwrap_or(0o644);
    let bytes = serde_json::to_vec_pretty(config).expect("a JSON value serializes");
    write_atomic(path, &bytes, mode)?;
    let mut f = OpenOptions::new().append(true).open(path).map_err(io_err("opening", path))?;
    f.write_all(b"\n").map_err(io_err("appending to", path))?;
    f.sync_all().map_err(io_err("syncing", path))
}

/// Copies the binary to `<bin_dir>/kubetron` (see the module doc); false when it was already there,
/// identical.
pub fn install_binary(src: &Path, bin_dir: &Path) -> Result<bool, InstallError> {
    let dst = bin_dir.join(PLUGIN_TYPE);
    let bytes = fs::read(src).map_err(io_err("reading the shim binary", src))?;
    if let Ok(meta) = fs::metadata(&dst) {
        if meta.permissions().mode() & 0o7777 == 0o755 && meta.len() == bytes.len() as u64 {
            let installed = fs::read(&dst).map_err(io_err("reading", &dst))?;
            if installed == bytes {
                return Ok(false);
            }
        }
    }
    fs::create_dir_all(bin_dir).map_err(io_err("creating", bin_dir))?;
    write_atomic(&dst, &bytes, 0o755)?;
    Ok(true)
}

/// Whether `<bin_dir>/kubetron` looks like `src` (same size, mode 0755) without reading either.
fn binary_looks_installed(src: &Path, bin_dir: &Path) -> bool {
    match (fs::metadata(src), fs::metadata(bin_dir.join(PLUGIN_TYPE))) {
        (Ok(s), Ok(d)) => s.len() == d.len() && d.permissions().mode() & 0o7777 == 0o755,
        _ => false,
    }
}

/// What [`chain_into`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chained {
    /// The entry was there already, as it should be: nothing written.
    Unchanged(PathBuf),
    /// The conflist was rewritten with the entry.
    Updated(PathBuf),
    /// A single-plugin config became a conflist with the entry; the old file is gone.
    Converted {
        /// The removed `.conf`/`.json`.
        from: PathBuf,
        /// The new `.conflist`.
        to: PathBuf,
    },
}

impl Chained {
    /// The config that holds the entry now.
    pub fn path(&self) -> &Path {
        match self {
            Chained::Unchanged(p) | Chained::Updated(p) => p,
            Chained::Converted { to, .. } => to,
        }
    }
}

fn read_json(path: &Path) -> Result<Value, InstallError> {
    let bytes = fs::read(path).map_err(io_err("reading", path))?;
    serde_json::from_slice(&bytes).map_err(|source| InstallError::Unreadable { path: path.to_path_buf(), source })
}

/// `cniVersion` and `name` of a config, checked as kubetron's plugin will check them.
fn version_and_name<'a>(path: &Path, obj: &'a Map<String, Value>) -> Result<(&'a str, &'a str), InstallError> {
    let unusable = |msg: String| InstallError::Unusable { path: path.to_path_buf(), msg };
    let version = obj.get("cniVersion").and_then(Value::as_str).ok_or_else(|| unusable("no cniVersion string".into()))?;
    Version::supported(version).map_err(|e| {
        unusable(format!("kubetron cannot be chained into a cniVersion {version} network ({}); every pod start would fail", e))
    })?;
    let name = obj.get("name").and_then(Value::as_str).unwrap_or("");
    if !valid_network_name(name) {
        return Err(unusable(format!("network name {name:?} is not valid")));
    }
    Ok((version, name))
}

/// `plugins` with `entry` in place of the first kubetron entry (later ones dropped), or appended.
fn with_entry(plugins: &[Value], entry: &Value) -> Vec<Value> {
    let mut out = Vec::with_capacity(plugins.len() + 1);
    let mut placed = false;
    for p in plugins {
        if !is_kubetron(p) {
            out.push(p.clone());
        } else if !placed {
            out.push(entry.clone());
            placed = true;
        }
    }
    if !placed {
        out.push(entry.clone());
    }
    out
}

/// Chains `entry` into the config at `path` (see the module doc).
pub fn chain_into(path: &Path, entry: &Value) -> Result<Chained, InstallError> {
    let unusable = |msg: String| InstallError::Unusable { path: path.to_path_buf(), msg };
    let config = read_json(path)?;
    let obj = config.as_object().ok_or_else(|| unusable("not a JSON object".into()))?;
    let (version, name) = version_and_name(path, obj)?;
    check_entry(entry, name, version).map_err(unusable)?;
    if is_conflist(path) {
        let plugins = obj.get("plugins").and_then(Value::as_array).ok_or_else(|| unusable("a .conflist without a plugins list".into()))?;
        if !plugins.iter().any(|p| !is_kubetron(p)) {
            return Err(unusable("no plugin to chain kubetron after: the cluster's default plugin must come first".into()));
        }
        let new_plugins = with_entry(plugins, entry);
        if &new_plugins == plugins {
            return Ok(Chained::Unchanged(path.to_path_buf()));
        }
        let mut new = obj.clone();
        new.insert("plugins".into(), Value::Array(new_plugins));
        write_config(path, &Value::Object(new))?;
        return Ok(Chained::Updated(path.to_path_buf()));
    }
    // A single plugin (.conf, .json).
    match obj.get("type").and_then(Value::as_str) {
        Some(PLUGIN_TYPE) => {
            return Err(unusable("the primary network is kubetron's own; chained mode needs the cluster's default plugin".into()))
        }
        Some(t) if !t.is_empty() => {}
        _ if obj.contains_key("plugins") => {
            return Err(unusable("a plugin list in a file the runtime loads as one plugin (no \"type\"); rename it to .conflist".into()))
        }
        _ => return Err(unusable("no plugin \"type\"".into())),
    }
    let list = json!({"cniVersion": version, "name": name, "plugins": [config.clone(), entry.clone()]});
    let file_name = path.file_name().expect("a config file has a name").as_bytes();
    let stem = &file_name[..file_name.iter().rposition(|&c| c == b'.').expect("a config file has an extension")];
    let mut to_name = stem.to_vec();
    to_name.extend_from_slice(b".conflist");
    let to = path.with_file_name(OsStr::from_bytes(&to_name));
    write_config(&to, &list)?;
    fs::remove_file(path).map_err(io_err("removing the converted", path))?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))?;
    Ok(Chained::Converted { from: path.to_path_buf(), to })
}

/// What [`install`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    /// Whether the binary was (re)written.
    pub binary_updated: bool,
    /// What happened to the primary config.
    pub config: Chained,
}

fn sleep_unless_stopped(d: Duration, stop: &AtomicBool) -> bool {
    let until = Instant::now() + d;
    while !stop.load(Ordering::Relaxed) {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        std::thread::sleep(left.min(Duration::from_millis(100)));
    }
    false
}

/// The binary, then the entry in the primary config, waiting for one up to `wait_timeout`.
pub fn install(cfg: &InstallConfig) -> Result<Installed, InstallError> {
    install_until(cfg, &AtomicBool::new(false))
}

fn install_until(cfg: &InstallConfig, stop: &AtomicBool) -> Result<Installed, InstallError> {
    cfg.validate()?;
    let binary_updated = install_binary(&cfg.bin_src, &cfg.bin_dir)?;
    if binary_updated {
        tracing::info!(src = %cfg.bin_src.display(), dst = %cfg.bin_dst().display(), "installed the CNI shim binary");
    }
    let entry = cfg.entry();
    let start = Instant::now();
    let mut waiting_logged = false;
    loop {
        let expired = start.elapsed() >= cfg.wait_timeout;
        let last_error = match primary_config(&cfg.conf_dir)? {
            Some(path) => match chain_into(&path, &entry) {
                Ok(config) => {
                    log_chained(&config);
                    return Ok(Installed { binary_updated, config });
                }
                // Half-written by another installer, or gone between listing and reading: look again.
                Err(e @ InstallError::Unreadable { .. }) => e,
                Err(InstallError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                    InstallError::NoConfig { dir: cfg.conf_dir.clone(), waited: start.elapsed() }
                }
                Err(e) => return Err(e),
            },
            None => InstallError::NoConfig { dir: cfg.conf_dir.clone(), waited: start.elapsed() },
        };
        if expired {
            return Err(last_error);
        }
        if !waiting_logged {
            tracing::info!(dir = %cfg.conf_dir.display(), "waiting for the default network plugin's configuration: {last_error}");
            waiting_logged = true;
        }
        if !sleep_unless_stopped(cfg.poll_interval.min(cfg.wait_timeout.saturating_sub(start.elapsed())), stop) {
            return Err(last_error);
        }
    }
}

fn log_chained(c: &Chained) {
    match c {
        Chained::Unchanged(p) => tracing::info!(config = %p.display(), "kubetron is chained already"),
        Chained::Updated(p) => tracing::info!(config = %p.display(), "chained kubetron into the primary network configuration"),
        Chained::Converted { from, to } => {
            tracing::info!(from = %from.display(), to = %to.display(), "converted the primary network configuration to a conflist with kubetron chained")
        }
    }
}

/// What [`uninstall`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Uninstalled {
    /// The configs kubetron's entry was removed from.
    pub configs: Vec<PathBuf>,
    /// Whether the binary was removed.
    pub binary_removed: bool,
}

/// Removes kubetron's chained entries from every config of `conf_dir`, then the binary.
pub fn uninstall(cfg: &InstallConfig) -> Result<Uninstalled, InstallError> {
    let mut out = Uninstalled::default();
    for path in config_files(&cfg.conf_dir)? {
        let config = match read_json(&path) {
            Ok(c) => c,
            Err(InstallError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => {
                tracing::warn!("skipped: {e}");
                continue;
            }
        };
        let Some(plugins) = config.get("plugins").and_then(Value::as_array) else { continue };
        if !plugins.iter().any(is_chained_kubetron) {
            continue;
        }
        let kept: Vec<Value> = plugins.iter().filter(|p| !is_chained_kubetron(p)).cloned().collect();
        let mut new = config.clone();
        new["plugins"] = Value::Array(kept);
        write_config(&path, &new)?;
        tracing::info!(config = %path.display(), "removed kubetron's chained entry");
        out.configs.push(path);
    }
    let dst = cfg.bin_dst();
    match fs::remove_file(&dst) {
        Ok(()) => {
            tracing::info!(binary = %dst.display(), "removed the CNI shim binary");
            out.binary_removed = true;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err("removing", &dst)(e)),
    }
    for dir in [&cfg.conf_dir, &cfg.bin_dir] {
        remove_temp_files(dir);
    }
    Ok(out)
}

fn remove_temp_files(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let name = e.file_name();
        if name.as_bytes().starts_with(b".") && name.as_bytes().ends_with(TMP_SUFFIX.as_bytes()) {
            let _ = fs::remove_file(e.path());
        }
    }
}

/// [`install`], then the installation kept until `stop` (see the module doc). Only the first
/// install's error is returned.
pub fn watch(cfg: &InstallConfig, stop: &AtomicBool) -> Result<(), InstallError> {
    match install_until(cfg, stop) {
        // Stopped while waiting for the default plugin's config.
        Err(_) if stop.load(Ordering::Relaxed) => return Ok(()),
        r => {
            r?;
        }
    }
    let entry = cfg.entry();
    while sleep_unless_stopped(cfg.watch_interval, stop) {
        if !binary_looks_installed(&cfg.bin_src, &cfg.bin_dir) {
            match install_binary(&cfg.bin_src, &cfg.bin_dir) {
                Ok(true) => tracing::info!(dst = %cfg.bin_dst().display(), "installed the CNI shim binary again"),
                Ok(false) => {}
                Err(e) => tracing::warn!("watch: {e}"),
            }
        }
        match primary_config(&cfg.conf_dir) {
            Ok(Some(path)) => match chain_into(&path, &entry) {
                Ok(Chained::Unchanged(_)) => {}
                Ok(c) => log_chained(&c),
                Err(e) => tracing::warn!("watch: {e}"),
            },
            Ok(None) => tracing::warn!(dir = %cfg.conf_dir.display(), "watch: no network configuration"),
            Err(e) => tracing::warn!("watch: {e}"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;
    use std::sync::Arc;

    struct Host {
        _tmp: tempfile::TempDir,
        cfg: InstallConfig,
    }

    impl Host {
        fn new() -> Host {
            let tmp = tempfile::tempdir().unwrap();
            let src = tmp.path().join("image/kubetron-cni");
            fs::create_dir_all(src.parent().unwrap()).unwrap();
            fs::write(&src, b"\x7fELF shim v1").unwrap();
            let cfg = InstallConfig {
                bin_src: src,
                bin_dir: tmp.path().join("opt/cni/bin"),
                conf_dir: tmp.path().join("etc/cni/net.d"),
                agent_socket: "/run/kubetron/cni/kubetron.sock".into(),
                wait_timeout: Duration::from_secs(60),
                poll_interval: Duration::from_millis(20),
                watch_interval: Duration::from_millis(20),
            };
            fs::create_dir_all(&cfg.bin_dir).unwrap();
            fs::create_dir_all(&cfg.conf_dir).unwrap();
            Host { _tmp: tmp, cfg }
        }
        fn conf(&self, name: &str) -> PathBuf {
            self.cfg.conf_dir.join(name)
        }
        fn put(&self, name: &str, v: &Value) -> PathBuf {
            let p = self.conf(name);
            fs::write(&p, serde_json::to_vec(v).unwrap()).unwrap();
            p
        }
        fn read(&self, name: &str) -> Value {
            serde_json::from_slice(&fs::read(self.conf(name)).unwrap()).unwrap()
        }
        fn names(&self, dir: &Path) -> Vec<String> {
            let mut v: Vec<String> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
            v.sort();
            v
        }
    }

    fn bridge() -> Value {
        json!({"type": "bridge", "bridge": "kp-cni0", "isGateway": false, "ipMasq": false, "hairpinMode": true,
               "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.244.0.0/24", "gateway": "10.244.0.1"}]]}})
    }

    fn podnet() -> Value {
        json!({"cniVersion": "0.4.0", "name": "kp-podnet", "zz_unknown": {"b": 1, "a": [1.5, "x", null]},
               "plugins": [bridge(), {"type": "portmap", "capabilities": {"portMappings": true}}]})
    }

    fn entry() -> Value {
        chained_entry("/run/kubetron/cni/kubetron.sock")
    }

    #[test]
    fn conflist_gets_the_entry_after_existing_plugins() {
        let h = Host::new();
        let p = h.put("10-kp-podnet.conflist", &podnet());
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
        let r = install(&h.cfg).unwrap();
        assert_eq!(r, Installed { binary_updated: true, config: Chained::Updated(p.clone()) });
        let got = h.read("10-kp-podnet.conflist");
        let mut want = podnet();
        want["plugins"].as_array_mut().unwrap().push(entry());
        assert_eq!(got, want);
        // Unknown fields and key order kept (preserve_order).
        let keys: Vec<&String> = got.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["cniVersion", "name", "zz_unknown", "plugins"]);
        let bridge_keys: Vec<&String> = got["plugins"][0].as_object().unwrap().keys().collect();
        assert_eq!(bridge_keys, ["type", "bridge", "isGateway", "ipMasq", "hairpinMode", "ipam"]);
        // The exact entry, accepted by the plugin's own config parser as the runtime passes it.
        let e = &got["plugins"][2];
        assert_eq!(
            e,
            &json!({"type": "kubetron", "mode": "chained", "agent_socket": "/run/kubetron/cni/kubetron.sock",
                              "capabilities": {"io.kubernetes.cri.pod-annotations": true}})
        );
        let mut as_passed = e.clone();
        as_passed["name"] = got["name"].clone();
        as_passed["cniVersion"] = got["cniVersion"].clone();
        let c = NetConf::from_value(as_passed).unwrap();
        assert_eq!((c.kubetron.mode(), c.kubetron.agent_socket()), (model::netconf::Mode::Chained, "/run/kubetron/cni/kubetron.sock"));
        // Complete JSON then exactly one appended newline; mode kept; no temp file left.
        let bytes = fs::read(&p).unwrap();
        assert!(bytes.ends_with(b"}\n") && !bytes.ends_with(b"\n\n"), "{:?}", String::from_utf8_lossy(&bytes));
        assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o7777, 0o600);
        assert_eq!(h.names(&h.cfg.conf_dir), ["10-kp-podnet.conflist"]);
        assert_eq!(h.names(&h.cfg.bin_dir), ["kubetron"]);
    }

    #[test]
    fn running_again_changes_nothing() {
        let h = Host::new();
        let p = h.put("10-kp-podnet.conflist", &podnet());
        install(&h.cfg).unwrap();
        let (bytes, ino) = (fs::read(&p).unwrap(), fs::metadata(&p).unwrap().ino());
        let r = install(&h.cfg).unwrap();
        assert_eq!(r, Installed { binary_updated: false, config: Chained::Unchanged(p.clone()) });
        assert_eq!(fs::read(&p).unwrap(), bytes);
        assert_eq!(fs::metadata(&p).unwrap().ino(), ino, "not even rewritten (no reload event for the runtime)");
        assert_eq!(h.read("10-kp-podnet.conflist")["plugins"].as_array().unwrap().iter().filter(|p| is_kubetron(p)).count(), 1);
    }

    #[test]
    fn an_existing_kubetron_entry_is_replaced() {
        let h = Host::new();
        let mut c = podnet();
        let old = json!({"type": "kubetron", "mode": "chained", "agent_socket": "/old.sock", "timeout_ms": 5000});
        let plugins = c["plugins"].as_array_mut().unwrap();
        plugins.insert(1, old.clone());
        plugins.push(json!({"type": "kubetron", "mode": "cluster"}));
        h.put("10-kp-podnet.conflist", &c);
        install(&h.cfg).unwrap();
        let got = h.read("10-kp-podnet.conflist");
        let types: Vec<&str> = got["plugins"].as_array().unwrap().iter().map(|p| p["type"].as_str().unwrap()).collect();
        assert_eq!(types, ["bridge", "kubetron", "portmap"], "replaced where it stood, the duplicate dropped");
        assert_eq!(got["plugins"][1], entry());
        assert_eq!(got["plugins"][0], bridge());
    }

    #[test]
    fn a_single_plugin_conf_becomes_a_conflist() {
        let h = Host::new();
        let mut conf = bridge();
        conf["cniVersion"] = "1.0.0".into();
        conf["name"] = "podnet".into();
        let from = h.put("10-podnet.conf", &conf);
        let r = install(&h.cfg).unwrap();
        let to = h.conf("10-podnet.conflist");
        assert_eq!(r.config, Chained::Converted { from: from.clone(), to: to.clone() });
        assert!(!from.exists(), "the .conf would sort first and stay the primary");
        assert_eq!(h.read("10-podnet.conflist"), json!({"cniVersion": "1.0.0", "name": "podnet", "plugins": [conf, entry()]}));
        assert_eq!(primary_config(&h.cfg.conf_dir).unwrap(), Some(to.clone()));
        assert_eq!(install(&h.cfg).unwrap().config, Chained::Unchanged(to));
        // A .json is a single plugin too.
        let h = Host::new();
        h.put("05-x.json", &conf);
        assert!(matches!(install(&h.cfg).unwrap().config, Chained::Converted { .. }));
        assert_eq!(h.names(&h.cfg.conf_dir), ["05-x.conflist"]);
    }

    #[test]
    fn the_primary_is_the_lexically_first_config() {
        let h = Host::new();
        h.put("20-b.conflist", &podnet());
        h.put("10-a.conflist", &podnet());
        h.put("a.conflist", &podnet());
        // Not candidates: other extensions, directories, our temp files.
        fs::write(h.conf("00-readme.txt"), "x").unwrap();
        fs::create_dir(h.conf("01-dir.conflist")).unwrap();
        fs::write(h.conf(".00-x.conflist.kubetron-tmp"), "{").unwrap();
        fs::write(h.conf("05-notes.conflist.bak"), "{").unwrap();
        // Bytewise: '1' < 'A' < 'a'.
        h.put("Z.conflist", &podnet());
        assert_eq!(primary_config(&h.cfg.conf_dir).unwrap(), Some(h.conf("10-a.conflist")));
        let files: Vec<PathBuf> = config_files(&h.cfg.conf_dir).unwrap();
        let names: Vec<&str> = files.iter().map(|p| p.file_name().unwrap().to_str().unwrap()).collect();
        assert_eq!(names, ["10-a.conflist", "20-b.conflist", "Z.conflist", "a.conflist"]);
        install(&h.cfg).unwrap();
        assert_eq!(h.read("10-a.conflist")["plugins"].as_array().unwrap().len(), 3);
        for other in ["20-b.conflist", "Z.conflist", "a.conflist"] {
            assert_eq!(h.read(other), podnet(), "{other} untouched");
        }
        // go's filepath.Ext: a file named ".conf" has the extension .conf and sorts first.
        h.put(".conf", &json!({"cniVersion": "0.4.0", "name": "dot", "type": "bridge"}));
        assert_eq!(primary_config(&h.cfg.conf_dir).unwrap(), Some(h.conf(".conf")));
    }

    #[test]
    fn no_config_is_a_bounded_wait_error() {
        let h = Host::new();
        let cfg = InstallConfig { wait_timeout: Duration::from_millis(200), ..h.cfg.clone() };
        let e = install(&cfg).unwrap_err();
        assert!(matches!(e, InstallError::NoConfig { .. }), "{e:?}");
        let msg = e.to_string();
        assert!(msg.contains(&h.cfg.conf_dir.display().to_string()) && msg.contains("default network plugin"), "{msg}");
        // A missing directory is waited for the same way.
        let cfg = InstallConfig { conf_dir: h.conf("missing"), ..cfg };
        assert!(matches!(install(&cfg).unwrap_err(), InstallError::NoConfig { .. }));
        // A config that is not JSON is read again until the wait ends, then named.
        let p = h.put("10-half.conflist", &podnet());
        fs::write(&p, b"{\"cniVersion\": \"0.4.0\", \"plu").unwrap();
        let cfg = InstallConfig { wait_timeout: Duration::from_millis(200), ..h.cfg.clone() };
        let e = install(&cfg).unwrap_err();
        assert!(matches!(&e, InstallError::Unreadable { path, .. } if path == &p), "{e:?}");
    }

    #[test]
    fn a_config_appearing_during_the_wait_is_chained_into() {
        let h = Host::new();
        let cfg = h.cfg.clone();
        let waiting = std::thread::spawn(move || install(&cfg));
        // Written as an installer would, complete or not: the wait reads it again until it parses.
        let p = h.conf("10-kp-podnet.conflist");
        fs::write(&p, b"{\"cniVersion\"").unwrap();
        fs::write(&p, serde_json::to_vec(&podnet()).unwrap()).unwrap();
        let r = waiting.join().unwrap().unwrap();
        assert_eq!(r.config, Chained::Updated(p));
        assert_eq!(h.read("10-kp-podnet.conflist")["plugins"][2], entry());
    }

    #[test]
    fn unusable_primaries_are_refused_at_once() {
        for (config, name, want) in [
            (json!({"cniVersion": "0.2.0", "name": "n", "plugins": [bridge()]}), "a.conflist", "cniVersion 0.2.0"),
            (json!({"cniVersion": "0.4.0", "name": "n", "plugins": []}), "a.conflist", "no plugin to chain kubetron after"),
            (json!({"cniVersion": "0.4.0", "name": "n", "plugins": [entry()]}), "a.conflist", "no plugin to chain kubetron after"),
            (json!({"cniVersion": "0.4.0", "name": "n"}), "a.conflist", "without a plugins list"),
            (json!({"cniVersion": "0.4.0", "name": "bad name", "plugins": [bridge()]}), "a.conflist", "network name"),
            (json!({"cniVersion": "0.4.0", "name": "n", "type": "kubetron", "nb": "tcp:1.2.3.4:6641"}), "a.conf", "kubetron's own"),
            (json!({"cniVersion": "0.4.0", "name": "n", "plugins": [bridge()]}), "a.conf", "rename it to .conflist"),
        ] {
            let h = Host::new();
            let p = h.put(name, &config);
            let e = install(&h.cfg).unwrap_err();
            assert!(matches!(&e, InstallError::Unusable { path, msg } if path == &p && msg.contains(want)), "{want}: {e:?}");
            assert_eq!(h.read(name), config, "left as it was");
        }
        let h = Host::new();
        let cfg = InstallConfig { agent_socket: "relative.sock".into(), ..h.cfg.clone() };
        let e = install(&cfg).unwrap_err();
        assert!(matches!(&e, InstallError::Settings(m) if m.contains("agent_socket")), "{e:?}");
        assert!(!cfg.bin_dst().exists(), "nothing installed with bad settings");
    }

    #[test]
    fn uninstall_restores_the_plugin_list() {
        let h = Host::new();
        let p = h.put("10-kp-podnet.conflist", &podnet());
        let mut conf = bridge();
        conf["cniVersion"] = "0.4.0".into();
        conf["name"] = "other".into();
        // A second config chained into earlier (when it was the primary).
        let mut other = podnet();
        other["plugins"].as_array_mut().unwrap().insert(1, entry());
        h.put("20-other.conflist", &other);
        install(&h.cfg).unwrap();
        // A standalone kubetron in some list is not ours to remove.
        let mut standalone = podnet();
        standalone["plugins"].as_array_mut().unwrap().push(json!({"type": "kubetron", "nb": "tcp:1.2.3.4:6641"}));
        h.put("30-standalone.conflist", &standalone);
        let r = uninstall(&h.cfg).unwrap();
        assert_eq!(r, Uninstalled { configs: vec![p, h.conf("20-other.conflist")], binary_removed: true });
        assert_eq!(h.read("10-kp-podnet.conflist"), podnet());
        assert_eq!(h.read("20-other.conflist"), podnet());
        assert_eq!(h.read("30-standalone.conflist"), standalone);
        assert!(!h.cfg.bin_dst().exists());
        assert_eq!(uninstall(&h.cfg).unwrap(), Uninstalled::default(), "again: nothing to do");
        // A converted .conf stays a conflist with the default plugin alone.
        let h = Host::new();
        h.put("10-podnet.conf", &conf);
        install(&h.cfg).unwrap();
        fs::write(h.cfg.bin_dir.join(".kubetron.kubetron-tmp"), "stale").unwrap();
        uninstall(&h.cfg).unwrap();
        assert_eq!(h.read("10-podnet.conflist"), json!({"cniVersion": "0.4.0", "name": "other", "plugins": [conf]}));
        assert!(h.names(&h.cfg.bin_dir).is_empty(), "binary and stale temp file gone");
    }

    #[test]
    fn the_binary_is_replaced_atomically_and_skipped_when_identical() {
        let h = Host::new();
        let (src, dst) = (&h.cfg.bin_src, h.cfg.bin_dst());
        fs::write(&dst, b"old").unwrap();
        let held = File::open(&dst).unwrap();
        assert!(install_binary(src, &h.cfg.bin_dir).unwrap());
        assert_eq!(fs::read(&dst).unwrap(), fs::read(src).unwrap());
        assert_eq!(fs::metadata(&dst).unwrap().permissions().mode() & 0o7777, 0o755);
        // Renamed over, not written in place: the old file is intact for whoever had it open.
        assert_eq!(io::read_to_string(&held).unwrap(), "old");
        let ino = fs::metadata(&dst).unwrap().ino();
        assert!(!install_binary(src, &h.cfg.bin_dir).unwrap(), "identical: skipped");
        assert_eq!(fs::metadata(&dst).unwrap().ino(), ino);
        // Same content, wrong mode: rewritten.
        fs::set_permissions(&dst, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(install_binary(src, &h.cfg.bin_dir).unwrap());
        assert_eq!(fs::metadata(&dst).unwrap().permissions().mode() & 0o7777, 0o755);
        // Same size, other content: rewritten.
        fs::write(src, b"\x7fELF shim v2").unwrap();
        assert!(install_binary(src, &h.cfg.bin_dir).unwrap());
        assert_eq!(fs::read(&dst).unwrap(), b"\x7fELF shim v2");
        assert_eq!(h.names(&h.cfg.bin_dir), ["kubetron"], "no temp file left");
        // A missing bin dir is made; a missing source is an error naming it.
        let cfg = InstallConfig { bin_dir: h.cfg.bin_dir.join("sub"), ..h.cfg.clone() };
        assert!(install_binary(src, &cfg.bin_dir).unwrap());
        let e = install_binary(&h.cfg.bin_dir.join("nope"), &h.cfg.bin_dir).unwrap_err();
        assert!(e.to_string().contains("nope"), "{e}");
    }

    #[test]
    fn watch_chains_in_again_after_the_primary_is_rewritten() {
        let h = Host::new();
        let p = h.put("10-kp-podnet.conflist", &podnet());
        let stop = Arc::new(AtomicBool::new(false));
        let (cfg, s) = (h.cfg.clone(), stop.clone());
        let watching = std::thread::spawn(move || watch(&cfg, &s));
        // Tolerant reads: the test's own writes below are not atomic.
        let chained_into =
            |p: &Path| fs::read(p).ok().and_then(|b| serde_json::from_slice::<Value>(&b).ok()).is_some_and(|v| v["plugins"][2] == entry());
        let chained = || chained_into(&p);
        let until = |what: &str, f: &dyn Fn() -> bool| {
            let deadline = Instant::now() + Duration::from_secs(30);
            while !f() {
                assert!(Instant::now() < deadline, "{what}");
                std::thread::sleep(Duration::from_millis(10));
            }
        };
        until("first install", &chained);
        // The default plugin's installer writes its config again, without kubetron.
        write_atomic(&p, &serde_json::to_vec(&podnet()).unwrap(), 0o644).unwrap();
        until("chained in again", &chained);
        // The binary removed by someone: back.
        fs::remove_file(h.cfg.bin_dst()).unwrap();
        until("binary back", &|| h.cfg.bin_dst().exists());
        // A new lexically first config: chained into as well.
        let q = h.put("05-new.conflist", &podnet());
        until("new primary chained", &|| chained_into(&q));
        stop.store(true, Ordering::Relaxed);
        watching.join().unwrap().unwrap();
        assert!(q.exists());
    }
}

//! `scripts/images.sh`, the registry-less images, as a user runs it: the pause and busybox archives it writes
//! have the docker-archive layout (`manifest.json` -> a content-addressed config whose `rootfs.diff_ids` is
//! the sha256 of the one layer tar), hold what the images need (a static `/pause` that exits 0 on SIGTERM; a
//! static `/bin/busybox` whose `/bin/sh` runs), come out byte-identical from two runs, and are imported by a
//! real containerd (`ctr -n k8s.io images import`, then listed by their tags).
//!
//! The kubetron image itself is left out (it needs the release build, minutes when cold); build it by hand
//! with `scripts/images.sh <dir> kubetron`.
//!
//! Needs: gcc + libc6-dev, GNU tar, sha256sum, apt-get + dpkg-deb (busybox-static's .deb, downloaded once into
//! `${KUBETRON_CACHE:-<repo>/.cache}/images/`), and for the import part containerd + ctr (else that part
//! prints why it was skipped). The private containerd runs with its own root, state, socket and TMPDIR under
//! the test's temporary directory and is stopped by its pid.
//! Run: `cargo test -p kubetron --test images`

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const PAUSE: &str = "kubetron.local/pause:1";
const BUSYBOX: &str = "kubetron.local/busybox:1";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("repo root")
}

fn tempdir(what: &str) -> tempfile::TempDir {
    tempfile::Builder::new().prefix(&format!("kubetron-images-{what}-")).tempdir().expect("tempdir")
}

/// Runs `cmd`, panics with its stderr unless it succeeds; returns its stdout.
fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed ({}):\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// `scripts/images.sh <out> <images...>`: tag -> archive, from its stdout (`<tag> <path>` per line).
fn build_images(out: &Path, images: &[&str]) -> BTreeMap<String, PathBuf> {
    let stdout = run(Command::new("bash").arg(repo().join("scripts/images.sh")).arg(out).args(images));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), images.len(), "one line per image on stdout, got:\n{stdout}");
    lines
        .iter()
        .map(|l| {
            let (tag, path) = l.split_once(' ').unwrap_or_else(|| panic!("`<tag> <path>` expected, got {l:?}"));
            let path = PathBuf::from(path);
            assert!(path.is_absolute() && path.starts_with(out), "{path:?} is not an absolute path in {out:?}");
            (tag.to_string(), path)
        })
        .collect()
}

fn sha256(path: &Path) -> String {
    let out = run(Command::new("sha256sum").arg(path));
    let sum = out.split_whitespace().next().expect("sha256sum output").to_string();
    assert_eq!(sum.len(), 64, "sha256sum of {path:?}: {out}");
    sum
}

fn json(path: &Path) -> Value {
    serde_json::from_slice(&fs::read(path).unwrap_or_else(|e| panic!("read {path:?}: {e}"))).unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

/// One image archive, unpacked and checked for the docker-archive layout.
struct Image {
    /// The config's `config` object (Entrypoint, Cmd, Env...).
    config: Value,
    /// The layer, extracted.
    rootfs: PathBuf,
}

/// Unpacks `archive` under `dir` and checks: exactly manifest.json + `<sha>.json` + `<sha>/layer.tar`; one
/// manifest entry with the tag; the config file named by its own sha256; amd64/linux; one diff_id, the sha256
/// of the layer tar, which is also the layer's directory name.
fn unpack(archive: &Path, tag: &str, dir: &Path) -> Image {
    let outer = dir.join("archive");
    fs::create_dir_all(&outer).expect("mkdir");
    let listing = run(Command::new("tar").arg("-tf").arg(archive));
    run(Command::new("tar").arg("-xf").arg(archive).arg("-C").arg(&outer));

    let manifest = json(&outer.join("manifest.json"));
    let entries = manifest.as_array().expect("manifest.json is an array");
    assert_eq!(entries.len(), 1, "one image per archive: {manifest}");
    let entry = &entries[0];
    assert_eq!(entry["RepoTags"], serde_json::json!([tag]), "{manifest}");
    let config_name = entry["Config"].as_str().expect("Config");
    let layers = entry["Layers"].as_array().expect("Layers");
    assert_eq!(layers.len(), 1, "one layer: {manifest}");
    let layer_name = layers[0].as_str().expect("layer path");

    let mut names: Vec<&str> = listing.lines().filter(|n| !n.ends_with('/')).collect();
    names.sort_unstable();
    let mut expected = vec!["manifest.json", config_name, layer_name];
    expected.sort_unstable();
    assert_eq!(names, expected, "archive members of {archive:?}");

    let config_file = outer.join(config_name);
    assert_eq!(format!("{}.json", sha256(&config_file)), config_name, "the config is named by its sha256");
    let layer_tar = outer.join(layer_name);
    let layer_sha = sha256(&layer_tar);
    assert_eq!(layer_name, format!("{layer_sha}/layer.tar"), "the layer's directory is its sha256");

    let config = json(&config_file);
    assert_eq!(config["architecture"], "amd64");
    assert_eq!(config["os"], "linux");
    assert_eq!(config["rootfs"]["type"], "layers");
    assert_eq!(config["rootfs"]["diff_ids"], serde_json::json!([format!("sha256:{layer_sha}")]), "diff_ids = sha256 of the layer");
    let env = config["config"]["Env"].as_array().expect("Env");
    assert!(env.iter().any(|e| e.as_str().is_some_and(|e| e.starts_with("PATH=") && e.contains("/bin"))), "PATH in Env: {env:?}");

    // Entries as `docker save` names them, never absolute, never `..`.
    let members = run(Command::new("tar").arg("-tf").arg(&layer_tar));
    for m in members.lines() {
        assert!(!m.starts_with('/') && !m.split('/').any(|c| c == ".."), "layer member {m:?}");
    }
    let rootfs = dir.join("rootfs");
    fs::create_dir_all(&rootfs).expect("mkdir");
    run(Command::new("tar").arg("-xf").arg(&layer_tar).arg("-C").arg(&rootfs));
    Image { config: config["config"].clone(), rootfs }
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{path:?}: {e}")).permissions().mode()
}

/// A statically linked ELF: no program interpreter.
fn assert_static(path: &Path) {
    let headers = run(Command::new("readelf").arg("-l").arg(path));
    assert!(headers.contains("Elf file type is EXEC") || headers.contains("DYN"), "{path:?} is not an ELF executable");
    assert!(!headers.contains("program interpreter"), "{path:?} is dynamically linked:\n{headers}");
}

fn is_root() -> bool {
    run(Command::new("id").arg("-u")).trim() == "0"
}

/// Polls `cond` every 20 ms for up to `bound`; panics with `what` if it never holds.
fn wait_for(what: &str, bound: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < bound, "timed out after {bound:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The signals process `pid` catches (`SigCgt` of /proc/<pid>/status).
fn caught_signals(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix("SigCgt:")).and_then(|v| u64::from_str_radix(v.trim(), 16).ok()).unwrap_or(0)
}

fn check_pause(image: &Image) {
    assert_eq!(image.config["Entrypoint"], serde_json::json!(["/pause"]));
    let pause = image.rootfs.join("pause");
    assert!(fs::symlink_metadata(&pause).expect("/pause").is_file(), "/pause is a regular file");
    assert_eq!(mode(&pause) & 0o111, 0o111, "/pause is executable");
    assert_static(&pause);

    // It runs until SIGTERM, then exits 0 (once its handlers are in: SIGINT 2, SIGTERM 15, SIGCHLD 17).
    let mut child = Command::new(&pause).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("run /pause");
    let wanted = (1u64 << (2 - 1)) | (1 << (15 - 1)) | (1 << (17 - 1));
    wait_for("/pause to catch SIGINT, SIGTERM, SIGCHLD", Duration::from_secs(30), || caught_signals(child.id()) & wanted == wanted);
    assert!(child.try_wait().expect("try_wait").is_none(), "/pause exited before SIGTERM");
    run(Command::new("kill").args(["-TERM", &child.id().to_string()]));
    let status = child.wait().expect("wait /pause");
    assert_eq!(status.code(), Some(0), "/pause exits 0 on SIGTERM: {status}");
}

fn check_busybox(image: &Image) {
    assert_eq!(image.config["Cmd"], serde_json::json!(["sh"]));
    let r = &image.rootfs;
    let busybox = r.join("bin/busybox");
    assert!(fs::symlink_metadata(&busybox).expect("/bin/busybox").is_file());
    assert_eq!(mode(&busybox) & 0o111, 0o111, "/bin/busybox is executable");
    assert_static(&busybox);
    // One symlink per applet, each to busybox.
    let applets = run(Command::new(&busybox).arg("--list"));
    let applets: Vec<&str> = applets.lines().filter(|a| *a != "busybox").collect();
    assert!(applets.contains(&"sh") && applets.contains(&"ping") && applets.contains(&"ip"), "applets: {applets:?}");
    for a in applets {
        let link = r.join("bin").join(a);
        assert_eq!(fs::read_link(&link).unwrap_or_else(|e| panic!("{link:?}: {e}")), Path::new("busybox"), "{link:?}");
    }
    assert_eq!(mode(&r.join("tmp")) & 0o7777, 0o1777, "/tmp is 1777");
    let passwd = fs::read_to_string(r.join("etc/passwd")).expect("/etc/passwd");
    assert!(passwd.lines().any(|l| l.starts_with("root:x:0:0:")), "{passwd}");
    if is_root() {
        // The image's own /bin/sh, with nothing of the host: chroot into the layer.
        let out = run(Command::new("chroot").arg(r).args(["/bin/sh", "-c", "echo $((6 * 7)) $(id -u)"]));
        assert_eq!(out.trim(), "42 0");
    } else {
        println!("not root: /bin/sh not run inside the busybox rootfs");
    }
}

#[test]
fn pause_and_busybox_archives_have_the_docker_archive_layout_and_are_reproducible() {
    let tmp = tempdir("layout");
    let first = build_images(&tmp.path().join("out1"), &["pause", "busybox"]);
    assert_eq!(first.keys().collect::<Vec<_>>(), vec![BUSYBOX, PAUSE]);
    assert_eq!(first[PAUSE].file_name().unwrap(), "pause.tar");
    assert_eq!(first[BUSYBOX].file_name().unwrap(), "busybox.tar");

    check_pause(&unpack(&first[PAUSE], PAUSE, &tmp.path().join("pause")));
    check_busybox(&unpack(&first[BUSYBOX], BUSYBOX, &tmp.path().join("busybox")));

    // Same inputs, same bytes.
    let second = build_images(&tmp.path().join("out2"), &["busybox", "pause"]);
    for (tag, path) in &first {
        assert_eq!(sha256(path), sha256(&second[tag]), "{tag}: two runs gave different archives");
    }
}

/// A private containerd: its own config, root, state, socket and TMPDIR under `dir`. On drop: SIGTERM by pid
/// (SIGKILL if it lingers), then whatever is still mounted under `dir` is unmounted.
struct Containerd {
    child: Child,
    dir: PathBuf,
    sock: PathBuf,
}

impl Containerd {
    fn start(dir: &Path) -> Containerd {
        let d = dir.display();
        let sock = dir.join("containerd.sock");
        // The CRI plugin is off: it would watch (and create) /etc/cni/net.d; importing needs only content,
        // images and the overlayfs snapshotter.
        let config = format!(
            r#"version = 2
root = "{d}/root"
state = "{d}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "{d}/containerd.sock"
[ttrpc]
  address = "{d}/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/opt"
"#
        );
        fs::create_dir_all(dir.join("tmp")).expect("mkdir");
        fs::write(dir.join("config.toml"), config).expect("write config.toml");
        let log = File::create(dir.join("containerd.log")).expect("log");
        let child = Command::new("containerd")
            .arg("--config")
            .arg(dir.join("config.toml"))
            .env("TMPDIR", dir.join("tmp"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start containerd");
        let mut c = Containerd { child, dir: dir.to_path_buf(), sock };
        let start = Instant::now();
        loop {
            if let Some(status) = c.child.try_wait().expect("try_wait") {
                panic!("containerd exited ({status}):\n{}", fs::read_to_string(dir.join("containerd.log")).unwrap_or_default());
            }
            if c.ctr_status(&["version"]).success() {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(60), "containerd not serving after 60 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        c
    }

    fn ctr(&self) -> Command {
        let mut cmd = Command::new("ctr");
        cmd.arg("--address").arg(&self.sock).args(["--namespace", "k8s.io"]);
        cmd
    }

    fn ctr_status(&self, args: &[&str]) -> std::process::ExitStatus {
        self.ctr().args(args).stdout(Stdio::null()).stderr(Stdio::null()).status().expect("run ctr")
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let start = Instant::now();
        while matches!(self.child.try_wait(), Ok(None)) && start.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(50));
        }
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        // Deepest first: anything containerd left mounted under its directory (normally nothing).
        let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut mounts: Vec<&str> =
            mountinfo.lines().filter_map(|l| l.split(' ').nth(4)).filter(|m| Path::new(m).starts_with(&self.dir)).collect();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            let _ = Command::new("umount").arg(m).status();
        }
    }
}

/// The first of `names` missing from PATH.
fn missing_command(names: &[&'static str]) -> Option<&'static str> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    names.iter().copied().find(|n| !std::env::split_paths(&path).any(|d| d.join(n).is_file()))
}

#[test]
fn pause_and_busybox_archives_import_into_containerd() {
    if let Some(cmd) = missing_command(&["containerd", "ctr"]) {
        println!("skipped: `{cmd}` not installed (Debian package containerd)");
        return;
    }
    if !is_root() {
        println!("skipped: containerd needs root");
        return;
    }
    let tmp = tempdir("ctr");
    let images = build_images(&tmp.path().join("out"), &["pause", "busybox"]);
    let containerd = Containerd::start(&tmp.path().join("containerd"));

    for (tag, archive) in &images {
        run(containerd.ctr().args(["images", "import"]).arg(archive));
        let listed = run(containerd.ctr().args(["images", "ls", "-q"]));
        assert!(listed.lines().any(|l| l == tag), "{tag} not in `ctr images ls` after importing {archive:?}:\n{listed}");
    }
    // Unpacked into the snapshotter too: `images check` says complete, and unpacked.
    let check = run(containerd.ctr().args(["images", "check"]));
    for tag in images.keys() {
        let line = check.lines().find(|l| l.starts_with(tag.as_str())).unwrap_or_else(|| panic!("{tag} not in:\n{check}"));
        assert!(line.contains("complete") && line.trim_end().ends_with("true"), "{tag} not complete and unpacked: {line}");
    }
    drop(containerd);
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    assert!(!mountinfo.contains(tmp.path().to_str().expect("utf-8 path")), "mounts left under {:?}", tmp.path());
}

//! The guest: Debian's cloud kernel and a busybox initramfs, built from Debian packages that are only
//! downloaded and extracted (never installed: busybox-static conflicts with the host's busybox), cached.

use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::VmError;

/// The virtio modules `/init` loads, in dependency order (the .deb has no modules.dep).
pub(crate) const MODULES: &[&str] = &[
    "virtio_ring",
    "virtio",
    "virtio_mmio",
    "virtio_pci_modern_dev",
    "virtio_pci_legacy_dev",
    "virtio_pci",
    "failover",
    "net_failover",
    "virtio_net",
];

/// The guest's `/init` (busybox sh). `vmprobe.nics=N` on the kernel command line says how many NICs to
/// wait for; `vmprobe.ping=IP[,IP]` makes the guest ping peers once its leases are in.
const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
exec >/dev/console 2>&1 </dev/null
up() { cut -d' ' -f1 /proc/uptime; }
arg() { sed -n "s/.*$1=\([^ ]*\).*/\1/p" /proc/cmdline; }
echo "VMPROBE userspace uptime=$(up)"
for m in __MODULES__; do
    [ -e /lib/modules/$m.ko ] && insmod /lib/modules/$m.ko 2>/dev/null
done
nics=$(arg vmprobe.nics); [ -n "$nics" ] || nics=1
i=0; while [ $(ls /sys/class/net | grep -c '^eth') -lt $nics ] && [ $i -lt 1000 ]; do usleep 10000; i=$((i+1)); done
ip link set lo up
for n in /sys/class/net/eth*; do
    [ -e "$n" ] || continue
    d=${n##*/}; ip link set $d up
    echo "VMPROBE nic iface=$d mac=$(cat $n/address) uptime=$(up)"
done
# One DHCP loop per NIC (the port may not be up yet); the script prints the lease.
for n in /sys/class/net/eth*; do
    [ -e "$n" ] || continue
    d=${n##*/}
    ( until udhcpc -i $d -f -q -n -t 20 -T 1 -A 1 -s /udhcpc.sh >/dev/null 2>&1; do echo "VMPROBE dhcp-retry iface=$d uptime=$(up)"; done ) &
done
wait
nc -ll -p 7 -e /bin/cat &
echo "VMPROBE ready uptime=$(up)"
for p in $(arg vmprobe.ping | tr ',' ' '); do
    if ping -c 3 -i 0.2 -W 2 $p >/dev/null 2>&1; then r=ok; else r=fail; fi
    echo "VMPROBE guest-ping dst=$p result=$r uptime=$(up)"
done
while true; do sleep 3600; done
"#;

const UDHCPC: &str = r#"#!/bin/sh
case "$1" in
  deconfig) ip addr flush dev "$interface"; ip link set "$interface" up ;;
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/$mask" dev "$interface"
    [ -n "$mtu" ] && ip link set "$interface" mtu "$mtu"
    [ "$interface" = eth0 ] && [ -n "$router" ] && ip route replace default via "${router%% *}" dev "$interface"
    echo "VMPROBE lease iface=$interface ip=$ip mask=$mask router=${router%% *} mtu=$mtu uptime=$(cut -d' ' -f1 /proc/uptime)" > /dev/console ;;
esac
exit 0
"#;

fn init_script() -> String {
    INIT.replace("__MODULES__", &MODULES.join(" "))
}

/// A bootable guest: an ELF kernel for `-kernel` and a gzip'd newc initramfs.
#[derive(Debug, Clone)]
pub struct GuestImage {
    /// Uncompressed ELF kernel (qemu boots it through its PVH entry).
    pub vmlinux: PathBuf,
    /// `initramfs.cpio.gz`.
    pub initramfs: PathBuf,
    /// The Debian kernel package it came from (`linux-image-<ver>-cloud-amd64`).
    pub kernel_pkg: String,
}

fn run(cmd: &mut Command) -> Result<String, VmError> {
    let label = format!("{cmd:?}");
    let out = cmd.stdin(Stdio::null()).output().map_err(|e| VmError::io(format!("spawn {label}"), e))?;
    if !out.status.success() {
        return Err(VmError::Command { cmd: label, detail: format!("{}: {}", out.status, String::from_utf8_lossy(&out.stderr).trim()) });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `linux-image-<ver>-cloud-amd64`, from what the metapackage depends on today.
fn resolve_kernel_pkg() -> Result<String, VmError> {
    let out = run(Command::new("apt-cache").args(["depends", "linux-image-cloud-amd64"]))?;
    out.lines()
        .filter_map(|l| l.trim().strip_prefix("Depends:"))
        .map(|p| p.trim().to_string())
        .find(|p| p.starts_with("linux-image-") && p.ends_with("-cloud-amd64"))
        .ok_or_else(|| VmError::Guest(format!("apt-cache depends linux-image-cloud-amd64 names no kernel:\n{out}")))
}

fn candidate_version(pkg: &str) -> Result<String, VmError> {
    let out = run(Command::new("apt-cache").args(["show", "--no-all-versions", pkg]))?;
    out.lines()
        .find_map(|l| l.strip_prefix("Version:"))
        .map(|v| v.trim().to_string())
        .ok_or_else(|| VmError::Guest(format!("apt-cache show {pkg}: no Version")))
}

/// FNV-1a 64: a stable content hash for the cache key (not for security).
fn fnv64(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for p in parts {
        for &b in p.iter() {
            h ^= b as u64;
            h = h.wrapping_mul(0x100000001b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// `${KUBETRON_CACHE:-<repo>/.cache}`.
fn cache_root() -> PathBuf {
    match std::env::var_os("KUBETRON_CACHE") {
        Some(c) if !c.is_empty() => PathBuf::from(c),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.cache"),
    }
}

impl GuestImage {
    /// The guest, from the cache (`${KUBETRON_CACHE:-<repo>/.cache}/vm-guest/<kernel-pkg>_<busybox-ver>_<init-hash>/`)
    /// or built into it: under a flock, in a temp dir renamed into place, so concurrent callers build once
    /// and nobody sees half an image. Building needs root (`apt-get download`) and ~30 MB of downloads.
    pub fn ensure() -> Result<GuestImage, VmError> {
        // Both come from the package lists; with none (a fresh container), `apt-get update` once.
        let resolve = || -> Result<(String, String), VmError> { Ok((resolve_kernel_pkg()?, candidate_version("busybox-static")?)) };
        let (kernel_pkg, bb_ver) = match resolve() {
            Ok(r) => r,
            Err(_) => {
                apt_update()?;
                resolve()?
            }
        };
        let init = init_script();
        let hash = fnv64(&[init.as_bytes(), UDHCPC.as_bytes(), MODULES.join(",").as_bytes()]);
        let key = format!("{kernel_pkg}_{}_{:08x}", bb_ver.replace([':', '/', '+', '~'], "."), hash as u32);
        let base = cache_root().join("vm-guest");
        let dir = base.join(&key);
        let img = GuestImage { vmlinux: dir.join("vmlinux"), initramfs: dir.join("initramfs.cpio.gz"), kernel_pkg: kernel_pkg.clone() };
        if img.vmlinux.is_file() && img.initramfs.is_file() {
            return Ok(img);
        }
        std::fs::create_dir_all(&base).map_err(|e| VmError::io(format!("mkdir {}", base.display()), e))?;
        let lock_path = base.join(".lock");
        let lock = File::create(&lock_path).map_err(|e| VmError::io(format!("create {}", lock_path.display()), e))?;
        // SAFETY: flock on an fd we own; released when `lock` is closed.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(VmError::io(format!("flock {}", lock_path.display()), std::io::Error::last_os_error()));
        }
        if img.vmlinux.is_file() && img.initramfs.is_file() {
            return Ok(img);
        }
        let tmp = base.join(format!(".tmp-{}-{key}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(|e| VmError::io(format!("mkdir {}", tmp.display()), e))?;
        let built = build(&tmp, &kernel_pkg, &init);
        match built {
            Ok(()) => {
                let _ = std::fs::remove_dir_all(&dir);
                std::fs::rename(&tmp, &dir).map_err(|e| VmError::io(format!("rename {} -> {}", tmp.display(), dir.display()), e))?;
                eprintln!("testkit::vm: built guest {}", dir.display());
                Ok(img)
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(&tmp);
                Err(e)
            }
        }
    }
}

fn apt_update() -> Result<(), VmError> {
    run(Command::new("apt-get").args(["update", "-q", "-o", "DPkg::Lock::Timeout=600"])).map(|_| ())
}

fn download(dir: &Path, pkgs: &[&str]) -> Result<(), VmError> {
    let go = || run(Command::new("apt-get").args(["download", "-q"]).args(pkgs).current_dir(dir));
    if go().is_err() {
        apt_update()?;
        go()?;
    }
    Ok(())
}

fn find_deb(dir: &Path, prefix: &str) -> Result<PathBuf, VmError> {
    let rd = std::fs::read_dir(dir).map_err(|e| VmError::io(format!("read {}", dir.display()), e))?;
    rd.filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(prefix) && n.ends_with(".deb")))
        .ok_or_else(|| VmError::Guest(format!("no {prefix}*.deb downloaded into {}", dir.display())))
}

fn build(tmp: &Path, kernel_pkg: &str, init: &str) -> Result<(), VmError> {
    let dl = tmp.join("dl");
    std::fs::create_dir_all(&dl).map_err(|e| VmError::io("mkdir dl", e))?;
    download(&dl, &[kernel_pkg, "busybox-static"])?;
    let (kx, bx) = (tmp.join("kpkg"), tmp.join("bbs"));
    run(Command::new("dpkg-deb").arg("-x").arg(find_deb(&dl, &format!("{kernel_pkg}_"))?).arg(&kx))?;
    run(Command::new("dpkg-deb").arg("-x").arg(find_deb(&dl, "busybox-static_")?).arg(&bx))?;

    // vmlinux out of the bzImage.
    let boot = kx.join("boot");
    let vmlinuz = std::fs::read_dir(&boot)
        .map_err(|e| VmError::io(format!("read {}", boot.display()), e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("vmlinuz-")))
        .ok_or_else(|| VmError::Guest(format!("no boot/vmlinuz-* in {kernel_pkg}")))?;
    let bz = std::fs::read(&vmlinuz).map_err(|e| VmError::io(format!("read {}", vmlinuz.display()), e))?;
    let elf = extract_vmlinux(&bz)?;
    std::fs::write(tmp.join("vmlinux"), &elf).map_err(|e| VmError::io("write vmlinux", e))?;

    // busybox: must be static (no PT_INTERP), or the initramfs has no working init.
    let bb = std::fs::read(bx.join("bin/busybox")).map_err(|e| VmError::io("read busybox-static's bin/busybox", e))?;
    if !is_static_elf(&bb) {
        return Err(VmError::Guest("busybox-static's bin/busybox is not a static ELF".into()));
    }

    // Modules, found by name under lib/modules/<kver> (.ko or .ko.xz).
    let kver_dir = first_subdir(&kx.join("lib/modules"))?;
    let mut mods = Vec::new();
    for m in MODULES {
        match find_file(&kver_dir, &[format!("{m}.ko"), format!("{m}.ko.xz")]) {
            Some(p) if p.extension().is_some_and(|e| e == "xz") => {
                let out = Command::new("xz").arg("-dc").arg(&p).output().map_err(|e| VmError::io("spawn xz", e))?;
                if !out.status.success() {
                    return Err(VmError::Command { cmd: format!("xz -dc {}", p.display()), detail: out.status.to_string() });
                }
                mods.push((m.to_string(), out.stdout));
            }
            Some(p) => mods.push((m.to_string(), std::fs::read(&p).map_err(|e| VmError::io(format!("read {}", p.display()), e))?)),
            None => tracing::debug!(module = m, "not a module in this kernel (built in?)"),
        }
    }
    if !mods.iter().any(|(m, _)| m == "virtio_net") && !kernel_has_builtin(&kver_dir, "virtio_net") {
        return Err(VmError::Guest(format!("{kernel_pkg} has no virtio_net module")));
    }

    let mut entries = Vec::new();
    for d in ["bin", "sbin", "dev", "etc", "lib", "lib/modules", "proc", "run", "sys", "tmp", "usr", "usr/bin", "usr/sbin"] {
        entries.push(CpioEntry::dir(d));
    }
    entries.push(CpioEntry::chardev("dev/console", 0o600, 5, 1));
    entries.push(CpioEntry::file("init", 0o755, init.as_bytes().to_vec()));
    entries.push(CpioEntry::file("udhcpc.sh", 0o755, UDHCPC.as_bytes().to_vec()));
    entries.push(CpioEntry::file("bin/busybox", 0o755, bb));
    for (m, data) in mods {
        entries.push(CpioEntry::file(&format!("lib/modules/{m}.ko"), 0o644, data));
    }
    let cpio = cpio_newc(&entries);
    let mut gz = Command::new("gzip")
        .arg("-1")
        .arg("-n")
        .stdin(Stdio::piped())
        .stdout(File::create(tmp.join("initramfs.cpio.gz")).map_err(|e| VmError::io("create initramfs", e))?)
        .spawn()
        .map_err(|e| VmError::io("spawn gzip", e))?;
    gz.stdin.take().expect("piped").write_all(&cpio).map_err(|e| VmError::io("write to gzip", e))?;
    let st = gz.wait().map_err(|e| VmError::io("wait gzip", e))?;
    if !st.success() {
        return Err(VmError::Command { cmd: "gzip -1".into(), detail: st.to_string() });
    }
    for d in ["dl", "kpkg", "bbs"] {
        let _ = std::fs::remove_dir_all(tmp.join(d));
    }
    let _ = std::fs::set_permissions(tmp, std::fs::Permissions::from_mode(0o755));
    Ok(())
}

fn kernel_has_builtin(kver_dir: &Path, m: &str) -> bool {
    std::fs::read_to_string(kver_dir.join("modules.builtin")).is_ok_and(|s| s.lines().any(|l| l.ends_with(&format!("/{m}.ko"))))
}

fn first_subdir(d: &Path) -> Result<PathBuf, VmError> {
    std::fs::read_dir(d)
        .map_err(|e| VmError::io(format!("read {}", d.display()), e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.is_dir())
        .ok_or_else(|| VmError::Guest(format!("nothing under {}", d.display())))
}

fn find_file(dir: &Path, names: &[String]) -> Option<PathBuf> {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).ok()?.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().and_then(|n| n.to_str()).is_some_and(|n| names.iter().any(|w| w == n)) {
                return Some(p);
            }
        }
    }
    None
}

const XZ_MAGIC: &[u8] = &[0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00];
const LZ4_LEGACY_MAGIC: &[u8] = &[0x02, 0x21, 0x4c, 0x18];

/// The ELF kernel inside a bzImage: the payload from the first XZ or LZ4-legacy magic, decompressed by
/// `xz -dc` / `lz4 -dc` (a nonzero exit from trailing data is fine), which must start with `\x7fELF`.
pub(crate) fn extract_vmlinux(bz: &[u8]) -> Result<Vec<u8>, VmError> {
    let find = |m: &[u8]| bz.windows(m.len()).position(|w| w == m);
    let (off, tool) = match (find(XZ_MAGIC), find(LZ4_LEGACY_MAGIC)) {
        (Some(x), Some(l)) => {
            if x < l {
                (x, "xz")
            } else {
                (l, "lz4")
            }
        }
        (Some(x), None) => (x, "xz"),
        (None, Some(l)) => (l, "lz4"),
        (None, None) => return Err(VmError::Guest("no XZ or LZ4-legacy payload in the bzImage".into())),
    };
    let mut child = Command::new(tool)
        .arg("-dc")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| VmError::io(format!("spawn {tool}"), e))?;
    let mut stdin = child.stdin.take().expect("piped");
    let payload = bz[off..].to_vec();
    let writer = std::thread::spawn(move || {
        // The decompressor may stop reading at the end of its stream: a broken pipe is expected.
        let _ = stdin.write_all(&payload);
    });
    let out = child.wait_with_output().map_err(|e| VmError::io(format!("wait {tool}"), e))?;
    let _ = writer.join();
    if !out.stdout.starts_with(b"\x7fELF") {
        return Err(VmError::Guest(format!("{tool} -dc of the bzImage payload at {off} gave no ELF ({} bytes)", out.stdout.len())));
    }
    Ok(out.stdout)
}

/// An ELF64 little-endian executable with no PT_INTERP program header.
pub(crate) fn is_static_elf(b: &[u8]) -> bool {
    if b.len() < 64 || !b.starts_with(b"\x7fELF") || b[4] != 2 || b[5] != 1 {
        return false;
    }
    let u16at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(b[32..40].try_into().unwrap()) as usize;
    let (phentsize, phnum) = (u16at(54), u16at(56));
    (0..phnum).all(|i| {
        let o = phoff + i * phentsize;
        o + 4 <= b.len() && u32::from_le_bytes(b[o..o + 4].try_into().unwrap()) != 3
    })
}

/// One member of a newc cpio archive.
#[derive(Debug, Clone)]
pub struct CpioEntry {
    /// Path inside the archive, without a leading `/`.
    pub name: String,
    /// Full `st_mode` (type bits and permissions).
    pub mode: u32,
    /// Device numbers for device nodes.
    pub rdev: (u32, u32),
    /// File contents (empty for directories and nodes).
    pub data: Vec<u8>,
}

impl CpioEntry {
    /// A directory (0755).
    pub fn dir(name: &str) -> CpioEntry {
        CpioEntry { name: name.into(), mode: 0o040000 | 0o755, rdev: (0, 0), data: Vec::new() }
    }
    /// A regular file.
    pub fn file(name: &str, perm: u32, data: Vec<u8>) -> CpioEntry {
        CpioEntry { name: name.into(), mode: 0o100000 | perm, rdev: (0, 0), data }
    }
    /// A character device node.
    pub fn chardev(name: &str, perm: u32, major: u32, minor: u32) -> CpioEntry {
        CpioEntry { name: name.into(), mode: 0o020000 | perm, rdev: (major, minor), data: Vec::new() }
    }
}

/// A newc ("070701") cpio archive of `entries` and the `TRAILER!!!`, as the kernel's initramfs unpacker reads it.
pub fn cpio_newc(entries: &[CpioEntry]) -> Vec<u8> {
    fn pad4(out: &mut Vec<u8>) {
        while out.len() & 3 != 0 {
            out.push(0);
        }
    }
    fn member(out: &mut Vec<u8>, ino: u32, name: &str, mode: u32, rdev: (u32, u32), data: &[u8]) {
        let nlink = if mode & 0o170000 == 0o040000 { 2 } else { 1 };
        let fields = [ino, mode, 0, 0, nlink, 0, data.len() as u32, 0, 0, rdev.0, rdev.1, name.len() as u32 + 1, 0];
        out.extend_from_slice(b"070701");
        for f in fields {
            out.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        pad4(out);
        out.extend_from_slice(data);
        pad4(out);
    }
    let mut out = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        member(&mut out, i as u32 + 1, &e.name, e.mode, e.rdev, &e.data);
    }
    member(&mut out, 0, "TRAILER!!!", 0, (0, 0), &[]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpio_newc_layout() {
        let a = cpio_newc(&[CpioEntry::dir("bin"), CpioEntry::file("init", 0o755, b"#!/bin/sh\n".to_vec())]);
        assert!(a.starts_with(b"070701"));
        assert_eq!(a.len() % 4, 0);
        // Header of the first member: inode 1, mode 040755, name size 4 ("bin\0").
        assert_eq!(&a[6..14], b"00000001");
        assert_eq!(&a[14..22], format!("{:08x}", 0o040755).as_bytes());
        assert_eq!(&a[94..102], b"00000004");
        assert_eq!(&a[110..114], b"bin\0");
        assert!(a.windows(10).any(|w| w == b"TRAILER!!!"));
        // The system's cpio reads it back, if there is one.
        if let Some(cpio) = super::super::find_in_path("cpio") {
            let mut c = Command::new(cpio).args(["-t", "--quiet"]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
            c.stdin.take().unwrap().write_all(&a).unwrap();
            let out = c.wait_with_output().unwrap();
            assert_eq!(String::from_utf8_lossy(&out.stdout).split_whitespace().collect::<Vec<_>>(), vec!["bin", "init"]);
        }
    }

    #[test]
    fn static_elf_detection() {
        let mut elf = vec![0u8; 64 + 56 * 2];
        elf[..4].copy_from_slice(b"\x7fELF");
        elf[4] = 2;
        elf[5] = 1;
        elf[32..40].copy_from_slice(&64u64.to_le_bytes());
        elf[54..56].copy_from_slice(&56u16.to_le_bytes());
        elf[56..58].copy_from_slice(&2u16.to_le_bytes());
        elf[64..68].copy_from_slice(&1u32.to_le_bytes());
        assert!(is_static_elf(&elf));
        elf[64 + 56..64 + 60].copy_from_slice(&3u32.to_le_bytes());
        assert!(!is_static_elf(&elf), "PT_INTERP means dynamic");
        assert!(!is_static_elf(b"#!/bin/sh"));
    }

    #[test]
    fn init_names_every_module_and_lease_format() {
        let i = init_script();
        assert!(i.contains(&MODULES.join(" ")));
        assert!(!i.contains("__MODULES__"));
        assert!(UDHCPC.contains("VMPROBE lease iface=$interface ip=$ip mask=$mask router="));
    }
}

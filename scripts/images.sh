#!/usr/bin/env bash
# Container images without a registry: docker-archive tarballs that `ctr -n k8s.io images import <file>`
# (containerd) and `docker load` read. Each is ONE uncompressed layer, written deterministically (same
# inputs -> same bytes: sorted entries, mtime 0, uid/gid 0, GNU tar format, umask 022).
#
# Usage: scripts/images.sh <out-dir> [kubetron|pause|busybox ...]     (default: all three)
# Prints one line per image on stdout, in the order asked: `<tag> <absolute path of the .tar>`;
# progress goes to stderr.
#
# - kubetron.local/kubetron:<tag> (<out-dir>/kubetron.tar): the release build
#   (`cargo build --release --locked -p kubetron -p cni --bin kubetron --bin kubetron-cni`), both binaries in
#   /usr/local/bin, the shared libraries they need (ldd, plus the ELF interpreter) at their paths, /etc/passwd
#   and /etc/group with root (0) and nonroot (65532), /tmp 1777, /var/run -> /run. Entrypoint /usr/local/bin/kubetron, no Cmd
#   (the manifests pass the subcommand), no User (the node agent runs as root; deploy/ sets runAsUser 65532
#   for the controller and the webhook). There is no shell in it.
#   <tag> is `<workspace version>-<short commit>` (plus `-dirty` when tracked files differ from the commit),
#   or `<workspace version>` outside git; KUBETRON_IMAGE_TAG=<tag> overrides it (e.g. `dev`).
#   KUBETRON_BIN_DIR=<dir> takes kubetron and kubetron-cni from <dir> instead of building them (e.g. the
#   debug build scripts/test.sh already made); debug info is stripped either way.
# - kubetron.local/pause:1 (<out-dir>/pause.tar): images/pause/pause.c, `gcc -static -O2 -s`, as /pause: the
#   pod sandbox image (containerd's sandbox_image).
# - kubetron.local/busybox:1 (<out-dir>/busybox.tar): the static busybox of Debian's busybox-static package,
#   taken out of its .deb (`apt-get download` + `dpkg-deb -x`; never installed: it conflicts with the busybox
#   package), a /bin symlink per applet, /etc/passwd, /tmp 1777, Cmd ["sh"]. The .deb is cached under
#   ${KUBETRON_CACHE:-<repo>/.cache}/images/, keyed by its version; with no apt lists (offline, no
#   `apt-get update`) the newest cached .deb is used.
#
# Needs: bash, GNU tar, coreutils (sha256sum), gcc + libc6-dev (static libc), binutils (readelf), apt-get and
# dpkg-deb (busybox), cargo (kubetron). Loading: `ctr -n k8s.io images import <out-dir>/kubetron.tar`.
set -euo pipefail
umask 022
export LC_ALL=C # byte order for globs and sorting

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
log() { echo "images: $*" >&2; }
die() {
  echo "images: error: $*" >&2
  exit 1
}

(($# >= 1)) || die "usage: scripts/images.sh <out-dir> [kubetron|pause|busybox ...]"
mkdir -p "$1"
out=$(cd "$1" && pwd)
shift
images=("$@")
((${#images[@]})) || images=(kubetron pause busybox)
for i in "${images[@]}"; do
  case $i in kubetron | pause | busybox) ;; *) die "unknown image '$i' (kubetron, pause, busybox)" ;; esac
done

cache=${KUBETRON_CACHE:-$repo/.cache}/images
work=$(mktemp -d "${TMPDIR:-/tmp}/kubetron-images.XXXXXX")
trap 'rm -rf "$work"' EXIT

PATH_ENV='PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'

# Deterministic tar of the contents of directory $1 into $2: entries named as `docker save` names them (`bin/sh`,
# no `./`), in byte order (the top level from the glob, the rest by --sort=name).
det_tar() {
  local names
  names=$(
    cd "$1"
    shopt -s dotglob nullglob
    printf '%s\n' *
  )
  [[ -n $names ]] || die "empty directory $1"
  mapfile -t names <<<"$names"
  tar --format=gnu --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$1" -cf "$2" -- "${names[@]}"
}

# make_archive <tag> <rootfs dir> <config object JSON> <archive path>
# Layout: manifest.json, <config sha>.json, <layer sha>/layer.tar.
make_archive() {
  local tag=$1 root=$2 config=$3 archive=$4 d layer_sha cfg cfg_sha
  d=$work/archive
  rm -rf "$d"
  mkdir -p "$d"
  det_tar "$root" "$d/layer.tar"
  layer_sha=$(sha256sum "$d/layer.tar" | cut -d' ' -f1)
  mkdir "$d/$layer_sha"
  mv "$d/layer.tar" "$d/$layer_sha/layer.tar"
  cfg='{"architecture":"amd64","os":"linux","created":"1970-01-01T00:00:00Z","config":'$config
  cfg+=',"rootfs":{"type":"layers","diff_ids":["sha256:'$layer_sha'"]}}'
  printf '%s' "$cfg" >"$d/config.json"
  cfg_sha=$(sha256sum "$d/config.json" | cut -d' ' -f1)
  mv "$d/config.json" "$d/$cfg_sha.json"
  printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["%s/layer.tar"]}]' "$cfg_sha" "$tag" "$layer_sha" >"$d/manifest.json"
  det_tar "$d" "$archive.tmp"
  mv -f "$archive.tmp" "$archive"
  log "$tag -> $archive ($(du -k "$archive" | cut -f1) KiB, layer sha256:${layer_sha:0:12})"
  printf '%s %s\n' "$tag" "$archive"
}

is_static() { ! readelf -l "$1" 2>/dev/null | grep -q 'Requesting program interpreter'; }

# /etc/passwd, /etc/group, /etc/nsswitch.conf, /tmp (1777), /root, /run and /var/run -> /run in rootfs $1
# (runtimes name pods' network namespaces /var/run/netns/..., which the node agent opens through its
# /run/netns mount).
base_files() {
  local r=$1
  mkdir -p "$r/etc" "$r/tmp" "$r/root" "$r/run" "$r/var"
  ln -sfn /run "$r/var/run"
  chmod 1777 "$r/tmp"
  chmod 0700 "$r/root"
  printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' 'nonroot:x:65532:65532:nonroot:/nonexistent:/sbin/nologin' \
    'nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin' >"$r/etc/passwd"
  printf '%s\n' 'root:x:0:' 'nonroot:x:65532:' 'nogroup:x:65534:' >"$r/etc/group"
  printf '%s\n' 'passwd: files' 'group: files' 'hosts: files dns' >"$r/etc/nsswitch.conf"
}

kubetron_tag() {
  [[ -n ${KUBETRON_IMAGE_TAG:-} ]] && {
    echo "$KUBETRON_IMAGE_TAG"
    return
  }
  local version hash
  version=$(awk '/^\[workspace\.package\]/ { p = 1; next } /^\[/ { p = 0 } p && $1 == "version" { gsub(/"/, "", $3); print $3; exit }' "$repo/Cargo.toml")
  [[ -n $version ]] || die "no [workspace.package] version in $repo/Cargo.toml"
  if hash=$(git -C "$repo" rev-parse --short=12 HEAD 2>/dev/null); then
    version+="-$hash"
    git -C "$repo" diff --quiet HEAD -- 2>/dev/null || version+="-dirty"
  fi
  echo "$version"
}

image_kubetron() {
  local tag bindir r b lib interp libs=()
  tag=kubetron.local/kubetron:$(kubetron_tag)
  if [[ -n ${KUBETRON_BIN_DIR:-} ]]; then
    bindir=$KUBETRON_BIN_DIR
    log "kubetron: binaries from $bindir"
  else
    log "kubetron: cargo build --release (slow when cold)"
    (cd "$repo" && cargo build --release --locked -p kubetron -p cni --bin kubetron --bin kubetron-cni) >&2
    bindir=${CARGO_TARGET_DIR:-$repo/target}/release
  fi
  r=$work/kubetron
  mkdir -p "$r/usr/local/bin"
  base_files "$r"
  for b in kubetron kubetron-cni; do
    [[ -x $bindir/$b ]] || die "no $bindir/$b"
    install -m 0755 "$bindir/$b" "$r/usr/local/bin/$b"
    # Debug info stays out of the image (a debug build's binaries carry hundreds of MB of it).
    strip --strip-debug "$r/usr/local/bin/$b"
    is_static "$bindir/$b" && continue
    # ldd lines: `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)`, `/lib64/ld-linux-x86-64.so.2 (0x...)`
    # (the interpreter), `linux-vdso.so.1 (0x...)` (the kernel's: no file).
    while read -r lib; do libs+=("$lib"); done < <(ldd "$bindir/$b" | awk '
      /not found/ { print "MISSING:" $1; next }
      $2 == "=>" && $3 ~ /^\// { print $3; next }
      $1 ~ /^\// { print $1 }')
  done
  for lib in "${libs[@]}"; do
    [[ $lib != MISSING:* ]] || die "kubetron: ldd: ${lib#MISSING:} not found"
    [[ -e $r$lib ]] && continue
    mkdir -p "$r$(dirname "$lib")"
    cp -L --preserve=mode "$lib" "$r$lib"
  done
  # The image has no shell and no ldconfig cache: check inside it that the loader finds every library.
  if [[ $(id -u) == 0 ]] && command -v chroot >/dev/null; then
    chroot "$r" /usr/local/bin/kubetron --version >&2 || die "kubetron does not start inside its rootfs"
    for b in kubetron kubetron-cni; do
      is_static "$r/usr/local/bin/$b" && continue
      interp=$(readelf -l "$r/usr/local/bin/$b" | sed -n 's/.*Requesting program interpreter: \(.*\)]/\1/p')
      if chroot "$r" "$interp" --list "/usr/local/bin/$b" | grep -q 'not found'; then
        die "$b: a library is missing from the rootfs"
      fi
    done
  fi
  make_archive "$tag" "$r" '{"Env":["'$PATH_ENV'"],"Entrypoint":["/usr/local/bin/kubetron"],"Labels":{"org.opencontainers.image.title":"kubetron","org.opencontainers.image.version":"'"${tag##*:}"'"}}' "$out/kubetron.tar"
}

image_pause() {
  local r=$work/pause
  mkdir -p "$r"
  log "pause: gcc -static images/pause/pause.c"
  # Compiled from a fixed path so that nothing of the caller's directories can reach the binary.
  mkdir -p "$work/pause-src"
  cp "$repo/images/pause/pause.c" "$work/pause-src/pause.c"
  (cd "$work/pause-src" && gcc -static -O2 -s -o "$r/pause" pause.c) >&2
  chmod 0755 "$r/pause"
  is_static "$r/pause" || die "pause is not static (libc6-dev's libc.a missing?)"
  make_archive kubetron.local/pause:1 "$r" '{"Env":["'$PATH_ENV'"],"Entrypoint":["/pause"]}' "$out/pause.tar"
}

# Prints the path of busybox-static's .deb, from the cache or downloaded into it.
busybox_deb() {
  local version file cached
  version=$(apt-cache policy busybox-static 2>/dev/null | awk '$1 == "Candidate:" { print $2 }')
  mkdir -p "$cache"
  if [[ -z $version || $version == "(none)" ]]; then
    cached=$(find "$cache" -maxdepth 1 -name 'busybox-static_*.deb' | sort -V | tail -n 1)
    [[ -n $cached ]] || die "busybox-static: apt knows no version and none is cached in $cache (run apt-get update)"
    log "busybox: apt knows no busybox-static version; using cached $(basename "$cached")"
    echo "$cached"
    return
  fi
  file=$cache/busybox-static_${version//:/%3a}_amd64.deb
  if [[ ! -s $file ]]; then
    if [[ -s /var/cache/apt/archives/$(basename "$file") ]]; then
      cp /var/cache/apt/archives/"$(basename "$file")" "$file.$$.tmp"
    else
      log "busybox: apt-get download busybox-static=$version"
      mkdir -p "$work/dl"
      (cd "$work/dl" && apt-get download -q -o APT::Sandbox::User=root "busybox-static=$version") >&2 || die "apt-get download busybox-static=$version failed"
      mv "$work"/dl/busybox-static_*.deb "$file.$$.tmp"
    fi
    mv -f "$file.$$.tmp" "$file" # atomic: concurrent runs may race here
  fi
  echo "$file"
}

image_busybox() {
  local deb r=$work/busybox a
  deb=$(busybox_deb)
  log "busybox: from $(basename "$deb")"
  dpkg-deb -x "$deb" "$work/busybox-deb"
  [[ -x $work/busybox-deb/bin/busybox ]] || die "no bin/busybox in $deb"
  is_static "$work/busybox-deb/bin/busybox" || die "busybox of $deb is not static"
  mkdir -p "$r/bin"
  base_files "$r"
  install -m 0755 "$work/busybox-deb/bin/busybox" "$r/bin/busybox"
  for a in $("$r/bin/busybox" --list); do
    [[ $a == busybox || $a == */* ]] || ln -s busybox "$r/bin/$a"
  done
  make_archive kubetron.local/busybox:1 "$r" '{"Env":["'$PATH_ENV'"],"Cmd":["sh"]}' "$out/busybox.tar"
}

for i in "${images[@]}"; do
  "image_$i"
done

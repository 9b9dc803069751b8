#!/usr/bin/env bash
# Obtain Kubernetes binaries for kubetron's tests, built from Debian's `kubernetes` source package.
#
# Usage: scripts/kube-build.sh [NAME...]   NAME: kube-apiserver (the default), kube-scheduler,
#        kube-controller-manager, kubelet, kubectl (any ./cmd/<name> of the source).
# Prints one line per NAME on stdout, in order: the binary's path.
#
# - Source: `apt-get source --download-only kubernetes` with a throw-away apt configuration whose sources are the
#   machine's own Debian sources turned into deb-src entries (the system apt configuration is never modified).
# - Fix: the vendored github.com/modern-go/reflect2 (v1.0.1) crashes with Go >= 1.18 on the first custom-resource
#   create; it is replaced by Debian's golang-github-modern-go-reflect2-dev sources (v1.0.2).
# - Also installs what the Rust harness (crates/daemons/src/kube.rs) runs: etcd-server, openssl, curl.
# - Build: only the ./cmd/<name> asked for and not cached yet, GOFLAGS=-mod=vendor GOPROXY=off, in GOPATH mode (GO111MODULE=off, as upstream's
#   1.20 build does), kube-apiserver after generating pkg/generated/openapi (not shipped in the tarball); kubelet
#   with cgo (as upstream), the rest static. GOCACHE/GOPATH inside the cache directory, removed with the unpacked
#   source after a successful build (ask for every binary in one call: they share most of the build).
# - Cache: ${KUBETRON_CACHE:-<repo>/.cache}/kubernetes/<source version>/<name>
#
# Idempotent: rebuilds only when the binary for the current source version is absent. All progress goes to stderr;
# stdout holds only the binaries' paths. The deb-src indexes are fetched once into the cache (apt/); delete
# that directory to look for a newer source version.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache_root=${KUBETRON_CACHE:-$repo/.cache}
base=$cache_root/kubernetes
aptdir=$base/apt
reflect2_src=/usr/share/gocode/src/github.com/modern-go/reflect2

log() { echo "kube-build.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

need_packages() {
    local missing=() p
    for p in etcd-server golang-go golang-github-modern-go-reflect2-dev dpkg-dev openssl curl; do
        dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    if ((${#missing[@]})); then
        log "installing missing packages: ${missing[*]}"
        [[ $(id -u) == 0 ]] || die "not root; please install: ${missing[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2 ||
            { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2; } ||
            die "could not install ${missing[*]}"
    fi
}

# Write deb-src variants of the system's Debian sources for this release into $aptdir/sources.list.d.
make_apt_config() {
    local codename f out
    codename=$( (. /etc/os-release && echo "${VERSION_CODENAME:-}") ) || true
    [[ -n $codename ]] || die "no VERSION_CODENAME in /etc/os-release"
    mkdir -p "$aptdir/sources.list.d" "$aptdir/lists/partial" "$aptdir/cache/archives/partial"
    rm -f "$aptdir"/sources.list.d/*
    : >"$aptdir/sources.list"
    # One-line format: keep `deb` lines for this release, emitted as `deb-src`.
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -f $f ]] || continue
        awk -v cn="$codename" '
            $1 == "deb" && $0 ~ ("[[:space:]]" cn "([-/][^[:space:]]*)?[[:space:]]") { sub(/^deb/, "deb-src"); print }
        ' "$f" >>"$aptdir/sources.list"
    done
    # deb822 format: keep enabled stanzas of type deb whose suites name this release, with Types: deb-src.
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -f $f ]] || continue
        out=$aptdir/sources.list.d/$(basename "$f")
        awk -v cn="$codename" '
            BEGIN { RS = ""; ORS = "\n\n" }
            {
                n = split($0, lines, "\n"); keep_type = 0; keep_suite = 0; enabled = 1; text = ""
                for (i = 1; i <= n; i++) {
                    l = lines[i]
                    if (l ~ /^[[:space:]]*#/) continue
                    if (l ~ /^Types:/) {
                        if (l ~ /[[:space:]]deb([[:space:]]|$)/) keep_type = 1
                        l = "Types: deb-src"
                    } else if (l ~ /^Suites:/) {
                        if (l ~ ("[[:space:]]" cn "([-/][^[:space:]]*)?([[:space:]]|$)")) keep_suite = 1
                    } else if (l ~ /^Enabled:[[:space:]]*no/) {
                        enabled = 0
                    }
                    text = text l "\n"
                }
                if (keep_type && keep_suite && enabled) print text
            }
        ' "$f" >"$out"
        [[ -s $out ]] || rm -f "$out"
    done
    [[ -s $aptdir/sources.list ]] || compgen -G "$aptdir/sources.list.d/*.sources" >/dev/null ||
        die "no Debian ($codename) sources found in the system apt configuration"
    cat >"$aptdir/apt.conf" <<EOF
Dir::Etc::SourceList "$aptdir/sources.list";
Dir::Etc::SourceParts "$aptdir/sources.list.d";
Dir::State::Lists "$aptdir/lists";
Dir::Cache "$aptdir/cache";
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
APT::Sandbox::User "root";
EOF
}

apt_src() { APT_CONFIG=$aptdir/apt.conf "$@"; }

# Highest source version of `kubernetes` known to the throw-away apt configuration.
source_version() {
    local v best=""
    while read -r v; do
        if [[ -z $best ]] || dpkg --compare-versions "$v" gt "$best"; then best=$v; fi
    done < <(apt_src apt-cache showsrc --only-source kubernetes 2>/dev/null | awk '/^Version:/ { print $2 }')
    echo "$best"
}

# pkg/generated/openapi/zz_generated.openapi.go is not in the source tarball (upstream's `make` generates it):
# build openapi-gen from vendor/ and run it over the packages tagged `+k8s:openapi-gen=`, selected as
# upstream's Makefile.generated_files does (staging/src/* named as vendor/*; code-generator and
# sample-apiserver excluded). Runs inside $GOPATH/src/k8s.io/kubernetes with the Go environment set.
generate_openapi() {
    local vdir=$1 dirs
    [[ -f pkg/generated/openapi/zz_generated.openapi.go ]] && return 0
    log "generating pkg/generated/openapi"
    go build -o "$vdir/openapi-gen" ./vendor/k8s.io/kube-openapi/cmd/openapi-gen >&2
    dirs=$(find -H . \( -path './_*' -o -path './.*' -o -path ./vendor \) -prune -o -type f -name '*.go' -print |
        xargs grep -l '^// *+k8s:' | xargs grep -l '+k8s:openapi-gen=' | xargs -n1 dirname |
        sed 's|^\./staging/src/|vendor/|; s|^\./||' | LC_ALL=C sort -u |
        grep -v -E '^vendor/k8s\.io/(code-generator|sample-apiserver)/' | sed 's|^|k8s.io/kubernetes/|' | paste -sd,)
    [[ -n $dirs ]] || die "no +k8s:openapi-gen packages found"
    "$vdir/openapi-gen" --logtostderr -i "$dirs" -p k8s.io/kubernetes/pkg/generated/openapi \
        -O zz_generated.openapi -h vendor/k8s.io/code-generator/hack/boilerplate.go.txt -o "$GOPATH/src" \
        -r "$vdir/openapi-violations.report" >&2
    [[ -f pkg/generated/openapi/zz_generated.openapi.go ]] || die "openapi-gen wrote no zz_generated.openapi.go"
    rm -f "$vdir/openapi-gen" "$vdir/openapi-violations.report"
}

main() {
    mkdir -p "$base"
    exec 9>"$base/.lock"
    flock 9 # one builder at a time; later callers then find the cached binary

    need_packages
    local version=""
    if [[ -f $aptdir/apt.conf ]]; then version=$(source_version); fi
    if [[ -z $version ]]; then
        log "preparing a throw-away apt configuration with deb-src entries in $aptdir"
        make_apt_config
        apt_src apt-get update -q >&2 || die "apt-get update (deb-src, throw-away config) failed"
        version=$(source_version)
    fi
    [[ -n $version ]] || die "source package kubernetes not found in the deb-src indexes"
    local key=${version//[:\/]/_}
    local vdir=$base/$key name missing=()
    local names=("$@")
    ((${#names[@]})) || names=(kube-apiserver)
    for name in "${names[@]}"; do
        [[ $name =~ ^[a-z0-9-]+$ ]] || die "not a binary name: $name"
        [[ -x $vdir/$name ]] || missing+=("$name")
    done
    if ((${#missing[@]} == 0)); then
        log "cached: kubernetes source $version: ${names[*]}"
        printf '%s\n' "${names[@]/#/$vdir/}"
        return 0
    fi

    log "building ${missing[*]} from Debian source kubernetes $version (~5 min for the first, ~3 min each more, on 2 cores)"
    local dl=$vdir/download work=$vdir/work
    mkdir -p "$dl"
    rm -rf "$work"
    if ! compgen -G "$dl/kubernetes_*.dsc" >/dev/null; then
        (cd "$dl" && apt_src apt-get source --download-only -q "kubernetes=$version" >&2) ||
            die "apt-get source --download-only kubernetes=$version failed"
    fi
    local dsc
    dsc=$(ls "$dl"/kubernetes_*.dsc | head -n1) || die "no .dsc downloaded"
    # apt already checked the files against the signed Sources index.
    dpkg-source --no-check --no-copy -x "$dsc" "$work" >&2 || die "dpkg-source -x $dsc failed"

    local vend=$work/vendor/github.com/modern-go/reflect2
    [[ -d $vend ]] || die "$vend missing in the source tree"
    [[ -f $reflect2_src/reflect2.go ]] || die "$reflect2_src missing (golang-github-modern-go-reflect2-dev)"
    rm -rf "$vend"
    cp -rL "$reflect2_src" "$vend"
    rm -f "$vend"/go.mod "$vend"/go.sum "$vend"/*_test.go

    # Version stamped into the binary: the upstream version (after "+really" when Debian repacked an older one).
    local upstream=${version#*:}
    upstream=${upstream%-*}
    [[ $upstream == *really* ]] && upstream=${upstream##*really}
    upstream=${upstream%%[+~]*}
    local major=${upstream%%.*} minor=${upstream#*.}
    minor=${minor%%.*}
    local ld="-s -w"
    local p
    for p in k8s.io/kubernetes/vendor/k8s.io/component-base/version k8s.io/kubernetes/vendor/k8s.io/client-go/pkg/version; do
        ld+=" -X $p.gitVersion=v$upstream -X $p.gitMajor=$major -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
    done

    # Kubernetes 1.20 builds in GOPATH mode from its vendor/ tree (as its own hack/ scripts do): in module mode,
    # Go >= 1.19 refuses its go.mod ("updates to go.mod needed, disabled by -mod=vendor").
    for name in "${missing[@]}"; do
        local start=$SECONDS
        (
            export GOFLAGS=-mod=vendor GOPROXY=off GOENV=off GOTOOLCHAIN=local CGO_ENABLED=0 GO111MODULE=off
            export GOCACHE=$vdir/gocache GOPATH=$vdir/gopath GOTMPDIR=$vdir/gotmp
            [[ $name == kubelet ]] && export CGO_ENABLED=1
            mkdir -p "$GOTMPDIR" "$GOPATH/src/k8s.io"
            ln -sfn "$work" "$GOPATH/src/k8s.io/kubernetes"
            cd "$GOPATH/src/k8s.io/kubernetes"
            [[ -d ./cmd/$name ]] || die "no ./cmd/$name in the kubernetes source"
            if [[ $name == kube-apiserver ]]; then generate_openapi "$vdir" || exit 1; fi
            go build -ldflags "$ld" -o "$vdir/$name.tmp" "./cmd/$name" >&2
        ) || die "go build ./cmd/$name failed (source kept in $work)"
        mv -f "$vdir/$name.tmp" "$vdir/$name"
        log "built $name in $((SECONDS - start)) s"
    done
    chmod -R u+w "$vdir/gopath" 2>/dev/null || true
    rm -rf "$work" "$vdir/gocache" "$vdir/gopath" "$vdir/gotmp"
    printf '%s\n' "${names[@]/#/$vdir/}"
}

main "$@"

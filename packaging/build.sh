#!/usr/bin/env bash
# packaging/build.sh [VERSION] — build kvmnet's binaries and its .deb/.rpm packages into dist/.
#
#   VERSION  what the binaries report (`kvmnetctl version`, agent GetState); default `git describe`.
#            The package version is derived from it (see pkg_version below).
#
# Environment: DIST (output directory, default dist), NFPM (nfpm binary; default: the one on PATH or in
# $(go env GOPATH)/bin, go-installed at v2.45.2 when missing), AGENT_ARCHES (default "amd64 arm64"),
# CTL_ARCHES (default: the build machine's arch, plus other arches for which a C cross compiler
# <triplet>-gcc and the target's libc are installed: kvmnetctl needs cgo; on Debian 12 amd64,
# gcc-aarch64-linux-gnu + libc6-dev-arm64-cross, which scripts/install-deps.sh installs).
#
# Output: dist/kvmnet-agent_<ver>_<arch>.deb, dist/kvmnet-agent-<ver>.<rpmarch>.rpm (x86_64, aarch64),
# the same for kvmnetctl (which carries every agent package under /usr/share/kvmnet/agent/), dist/VERSION (the package version) and dist/build/ (binaries, man pages,
# completions).
set -euo pipefail

cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin:$(go env GOPATH)/bin"

RAW_VERSION=${1:-$(git describe --tags --always --dirty 2>/dev/null || echo 0.0.0-dev)}
DIST=${DIST:-dist}
BUILD=$DIST/build
NFPM_VERSION=v2.45.2
HOST_ARCH=$(go env GOHOSTARCH)
AGENT_ARCHES=${AGENT_ARCHES:-"amd64 arm64"}

log() { printf 'build.sh [%ss]: %s\n' "$SECONDS" "$*" >&2; }

# pkg_version turns `git describe` output into a version dpkg and rpm both accept and order sensibly:
# no leading "v", starts with a digit, no "-" (rpm forbids it): v1.2.0-5-gabc123-dirty ->
# 1.2.0+5.gabc123.dirty; an untagged tree (abc123-dirty) -> 0.0.0+git.abc123.dirty.
pkg_version() {
	local v=${1#v}
	if [[ ! $v =~ ^[0-9]+\.[0-9]+ ]]; then
		v="0.0.0+git.$v"
	elif [[ $v == *-* ]]; then
		v="${v%%-*}+${v#*-}"
	fi
	v=${v//-/.}
	printf '%s' "$v" | tr -c 'A-Za-z0-9.+~' '.'
}

rpm_arch() {
	case $1 in
	amd64) echo x86_64 ;;
	arm64) echo aarch64 ;;
	*) echo "$1" ;;
	esac
}

# cross_pkgs names the Debian packages that give a cgo cross build for GOARCH $1 its C compiler and the
# target's C library (headers, crt1.o, libc.so): Debian 12, amd64 build machine -> arm64.
cross_pkgs() {
	case $1 in
	amd64) echo "gcc-x86-64-linux-gnu libc6-dev-amd64-cross" ;;
	arm64) echo "gcc-aarch64-linux-gnu libc6-dev-arm64-cross" ;;
	esac
}

# cross_cc prints the C compiler for a cgo build for GOARCH $1, or nothing when none is usable.
# No CGO_CFLAGS: with -tags libvirt_dlopen, libvirt.org/go/libvirt defines LIBVIRT_DLOPEN and includes
# none of libvirt's headers (only <stddef.h> and its own generated declarations), so a cross build needs
# no libvirt-dev at all; adding the build machine's -I/usr/include would mix amd64 glibc headers in.
cross_cc() {
	if [[ $1 == "$HOST_ARCH" ]]; then
		echo "${CC:-gcc}"
		return
	fi
	local triplet cc
	case $1 in
	amd64) triplet=x86_64-linux-gnu ;;
	arm64) triplet=aarch64-linux-gnu ;;
	*) return 0 ;;
	esac
	cc=$(command -v "$triplet-gcc") || return 0
	# A cross gcc without the target's libc development files compiles but cannot link.
	if [[ $("$cc" -print-file-name=crt1.o) != /* ]]; then
		log "$cc has no crt1.o for $1: the target's C library is missing ($(cross_pkgs "$1"))"
		return 0
	fi
	echo "$cc"
}

PKG_VERSION=$(pkg_version "$RAW_VERSION")
log "version $RAW_VERSION, package version $PKG_VERSION"

NFPM=${NFPM:-$(command -v nfpm || true)}
if [[ -z $NFPM ]]; then
	log "nfpm missing: go install github.com/goreleaser/nfpm/v2/cmd/nfpm@$NFPM_VERSION"
	# For the build machine: GOOS/GOARCH from the caller must not cross-compile nfpm itself.
	env -u GOOS -u GOARCH CGO_ENABLED=0 go install "github.com/goreleaser/nfpm/v2/cmd/nfpm@$NFPM_VERSION"
	NFPM=$(go env GOPATH)/bin/nfpm
fi

mkdir -p "$BUILD"
rm -f "$DIST"/kvmnet-agent_*.deb "$DIST"/kvmnet-agent-*.rpm "$DIST"/kvmnetctl_*.deb "$DIST"/kvmnetctl-*.rpm
LDFLAGS="-s -w -X main.version=$RAW_VERSION"

for arch in $AGENT_ARCHES; do
	log "agent linux/$arch (static)"
	CGO_ENABLED=0 GOOS=linux GOARCH=$arch go build -tags grpcnotrace -trimpath -ldflags "$LDFLAGS" \
		-o "$BUILD/agent-$arch/kvmnet-agent" ./agent/cmd/kvmnet-agent
done

if [[ -n ${CTL_ARCHES:-} ]]; then
	ctl_arches=$CTL_ARCHES
else
	ctl_arches=$HOST_ARCH
	for arch in amd64 arm64; do
		if [[ $arch != "$HOST_ARCH" ]]; then
			if [[ -n $(cross_cc "$arch") ]]; then
				ctl_arches="$ctl_arches $arch"
			else
				log "kvmnetctl linux/$arch skipped: cgo needs a C cross compiler and the target's libc (Debian 12: apt-get install $(cross_pkgs "$arch"); scripts/install-deps.sh installs them)"
			fi
		fi
	done
fi
for arch in $ctl_arches; do
	cc=$(cross_cc "$arch")
	if [[ -z $cc ]]; then
		log "kvmnetctl linux/$arch: no C compiler for cgo (Debian 12: apt-get install $(cross_pkgs "$arch"))"
		exit 1
	fi
	log "kvmnetctl linux/$arch (cgo, -tags libvirt_dlopen, CC=$cc)"
	CGO_ENABLED=1 CC=$cc GOOS=linux GOARCH=$arch go build -tags libvirt_dlopen -trimpath -ldflags "$LDFLAGS" \
		-o "$BUILD/ctl-$arch/kvmnetctl" ./controller/cmd/kvmnetctl
done

# Man pages and completions come from the build machine's own kvmnetctl (they do not depend on arch).
DOCS=$BUILD/docs
rm -rf "$DOCS"
mkdir -p "$DOCS/man" "$DOCS/completions"
ctl=$BUILD/ctl-$HOST_ARCH/kvmnetctl
if [[ ! -x $ctl ]]; then
	log "building kvmnetctl for $HOST_ARCH to generate man pages and completions"
	CGO_ENABLED=1 go build -tags libvirt_dlopen -trimpath -ldflags "$LDFLAGS" -o "$ctl" ./controller/cmd/kvmnetctl
fi
"$ctl" man --dir "$DOCS/man"
if ! compgen -G "$DOCS/man/*.1" >/dev/null; then
	log "kvmnetctl man --dir wrote no *.1 page into $DOCS/man"
	exit 1
fi
gzip -9nf "$DOCS"/man/*.1
"$ctl" completion bash >"$DOCS/completions/kvmnetctl.bash"
"$ctl" completion zsh >"$DOCS/completions/_kvmnetctl"
"$ctl" completion fish >"$DOCS/completions/kvmnetctl.fish"

package() { # name arch bindir
	local name=$1 arch=$2 bindir=$3 rarch
	rarch=$(rpm_arch "$arch")
	for packager in deb rpm; do
		local target
		if [[ $packager == deb ]]; then
			target=$DIST/${name}_${PKG_VERSION}_${arch}.deb
		else
			target=$DIST/${name}-${PKG_VERSION}.${rarch}.rpm
		fi
		PKG_ARCH=$arch PKG_VERSION=$PKG_VERSION BIN_DIR=$bindir DOCS_DIR=$DOCS \
			"$NFPM" package --config "packaging/nfpm/$name.yaml" --packager "$packager" --target "$target" >/dev/null
		log "$(du -h "$target" | cut -f1) $target"
	done
}

for arch in $AGENT_ARCHES; do
	package kvmnet-agent "$arch" "$BUILD/agent-$arch"
done
# kvmnetctl ships the agent packages it installs into guests (`kvmnetctl guests install-agent`):
# /usr/share/kvmnet/agent/ holds every agent .deb and .rpm built above.
AGENT_PKG_DIR=$BUILD/agent-pkgs
rm -rf "$AGENT_PKG_DIR"
mkdir -p "$AGENT_PKG_DIR"
cp "$DIST"/kvmnet-agent_*.deb "$DIST"/kvmnet-agent-*.rpm "$AGENT_PKG_DIR"/
export AGENT_PKG_DIR
for arch in $ctl_arches; do
	package kvmnetctl "$arch" "$BUILD/ctl-$arch"
done
printf '%s\n' "$PKG_VERSION" >"$DIST/VERSION"
log "done: $DIST/VERSION = $PKG_VERSION"

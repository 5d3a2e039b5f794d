#!/usr/bin/env bash
# Installs every Debian package and Go tool kvmnet's build, tests, lab and demo need on a fresh
# Debian 12 machine (run as root). Idempotent: a second run only checks.
set -euo pipefail

PKGS=(
  build-essential pkg-config git ca-certificates make
  protobuf-compiler libprotobuf-dev
  libvirt-dev libvirt-daemon libvirt-daemon-driver-qemu libvirt-daemon-config-network libvirt-clients
  qemu-system-x86 qemu-utils
  dnsmasq-base network-manager dbus
  # agent/netstack's netplan backend tests run the real `netplan generate --root-dir` on a temp tree.
  netplan.io
  nftables iptables ufw
  # controller/firewall's firewalld tests run the real daemon in a test namespace on a private bus.
  firewalld
  iproute2 util-linux procps psmisc e2fsprogs mmdebstrap
  rpm dpkg-dev python3 curl iputils-ping dnsutils
  prometheus openssh-server
)
# Daemons that come with those packages and must never serve on this machine: promtool (exporter and
# rule tests) is why prometheus is here, sshd runs only inside test namespaces.
NO_DAEMON_UNITS=(prometheus.service firewalld.service)
# Units masked before their package is installed, so that no maintainer script can start them: a
# firewalld starting in the main namespace would replace this machine's firewall with its own.
MASK_UNITS=(prometheus.service firewalld.service)
# arm64 kvmnetctl packages (cgo, -tags libvirt_dlopen: no libvirt headers needed): the aarch64 C cross
# compiler and arm64 libc. 43.6 MB download, ~1 min to install (packaging/README.md).
if [ "$(dpkg --print-architecture)" = amd64 ]; then
  PKGS+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
fi

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Services must not start on the host: the lab runs every daemon inside its own namespaces.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  # openssh-server only enables ssh.service on a machine that had no sshd before: leave it as it was.
  ssh_was_installed=0
  dpkg-query -W -f='${Status}' openssh-server 2>/dev/null | grep -q "install ok installed" && ssh_was_installed=1
  # Mask by hand (what `systemctl mask` does): it also works without systemd as PID 1 or a bus.
  mkdir -p /etc/systemd/system
  for u in "${MASK_UNITS[@]}"; do
    [ -e "/etc/systemd/system/$u" ] || ln -s /dev/null "/etc/systemd/system/$u"
  done
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
  ((ssh_was_installed)) || NO_DAEMON_UNITS+=(ssh.service ssh.socket)
fi
# policy-rc.d and the masks kept them from starting now; stop and disable them for the next boot
# too. Only the MASK_UNITS stay masked (nobody needs them running here); ssh is merely disabled so
# an admin can turn it back on.
if command -v systemctl >/dev/null; then
  for u in "${NO_DAEMON_UNITS[@]}"; do
    systemctl stop "$u" >/dev/null 2>&1 || true
    systemctl disable "$u" >/dev/null 2>&1 || true
  done
  for u in "${MASK_UNITS[@]}"; do
    systemctl mask "$u" >/dev/null 2>&1 || true
  done
fi
# firewalld's postinst runs `deb-systemd-helper unmask`: re-check that the masks hold.
for u in "${MASK_UNITS[@]}"; do
  [ "$(readlink "/etc/systemd/system/$u" 2>/dev/null)" = /dev/null ] || ln -sfn /dev/null "/etc/systemd/system/$u"
done

# libvirt 9.0 refuses to start its QEMU driver unless these users exist.
for u in libvirt-qemu libvirt-dnsmasq; do
  id "$u" >/dev/null 2>&1 || useradd -r -U -M -s /usr/sbin/nologin "$u"
done
getent group kvm >/dev/null || groupadd -r kvm

export PATH="$PATH:/usr/local/go/bin:$(go env GOPATH)/bin"
command -v staticcheck >/dev/null || go install honnef.co/go/tools/cmd/staticcheck@v0.8.2
echo "install-deps: ok"

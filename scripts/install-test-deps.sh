#!/usr/bin/env bash
# Installs the system packages the tests need: Debian's etcd-server, whose `etcd` binary the
# multi-controller tests start on loopback. Idempotent; needs root (or sudo) and Debian's apt.
set -euo pipefail
if command -v etcd >/dev/null 2>&1; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get install -y --no-install-recommends etcd-server >/dev/null 2>&1 || {
  $SUDO apt-get update >/dev/null
  $SUDO apt-get install -y --no-install-recommends etcd-server >/dev/null
}
command -v etcd >/dev/null

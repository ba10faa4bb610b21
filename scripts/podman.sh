#!/usr/bin/env bash
# Podman as the Docker-compatible engine of Homeport's docker runtime, on this machine.
#
#   eval "$(scripts/podman.sh)"      # prints: export DOCKER_HOST=unix://.../podman.sock
#
# As root with apt: installs podman and runc, writes the containers.conf this kind of machine
# needs (runc, no default ulimits; see docs/runtimes.md), starts `podman system service` on a
# private socket unless it already answers, and builds the Python base image the test and
# example images start FROM (scripts/base-image.sh; reused when present). Progress goes to
# stderr; stdout carries only the export line.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${HOMEPORT_PODMAN_DIR:-/var/tmp/homeport-podman}
SOCK="$DIR/podman.sock"
mkdir -p "$DIR"

if ! command -v podman >/dev/null || ! command -v runc >/dev/null; then
  echo "==> apt-get install podman runc" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq podman runc >/dev/null
fi

# crun fails on this kernel's cgroup layout; podman's default rlimits are refused here.
printf '[containers]\ndefault_ulimits = []\n\n[engine]\nruntime = "runc"\n' > "$DIR/containers.conf"
export CONTAINERS_CONF="$DIR/containers.conf"

answers() { curl -sf --max-time 2 --unix-socket "$SOCK" http://d/_ping >/dev/null 2>&1; }
if ! answers; then
  echo "==> podman system service on $SOCK" >&2
  rm -f "$SOCK"
  nohup podman system service --time=0 "unix://$SOCK" >"$DIR/service.log" 2>&1 &
  echo $! > "$DIR/service.pid"
  for _ in $(seq 1 100); do answers && break; sleep 0.1; done
  answers || { echo "podman system service did not start; see $DIR/service.log" >&2; exit 1; }
fi

scripts/base-image.sh >&2
echo "export DOCKER_HOST=unix://$SOCK CONTAINERS_CONF=$DIR/containers.conf"

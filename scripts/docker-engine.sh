#!/usr/bin/env bash
# A Docker engine, and the base image of docker/postgres, on a Debian machine — idempotent and
# quick when they are already there:
#   1. installs Debian's docker.io (and debootstrap) if missing;
#   2. starts dockerd if no daemon answers (machines without systemd: in the background, with its
#      own pid file and log in /var/log/pgml-kit-dockerd.log);
#   3. makes sure debian:trixie-slim exists: pulled when a registry answers, else built from the
#      Debian archive this machine uses (debootstrap) and imported under that tag, so the
#      Dockerfile stays the one a user with Docker Hub would build.
# Prints the engine's address as its last line: DOCKER_HOST=unix:///var/run/docker.sock
# Needs root (or sudo).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/debian-mirror.sh
. "$here/debian-mirror.sh"

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
# Debian's client: another `docker` (a client without an engine) may come first on PATH.
DOCKER=/usr/bin/docker
SOCKET=/var/run/docker.sock
BASE=debian:trixie-slim
log() { printf '[docker-engine] %s\n' "$*" >&2; }

if [ ! -x "$DOCKER" ] || ! command -v dockerd >/dev/null 2>&1 || ! command -v debootstrap >/dev/null 2>&1; then
  log "installing docker.io and debootstrap"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends docker.io debootstrap >/dev/null
fi

if ! $SUDO "$DOCKER" -H "unix://$SOCKET" info >/dev/null 2>&1; then
  log "starting dockerd"
  if [ -d /run/systemd/system ] && $SUDO systemctl start docker 2>/dev/null; then :; else
    $SUDO sh -c "nohup dockerd --host unix://$SOCKET --pidfile /var/run/docker.pid >/var/log/pgml-kit-dockerd.log 2>&1 &"
  fi
  for _ in $(seq 1 60); do
    $SUDO "$DOCKER" -H "unix://$SOCKET" info >/dev/null 2>&1 && break
    sleep 1
  done
  $SUDO "$DOCKER" -H "unix://$SOCKET" info >/dev/null 2>&1 || { log "dockerd did not start: see /var/log/pgml-kit-dockerd.log"; exit 1; }
fi

if ! $SUDO "$DOCKER" image inspect "$BASE" >/dev/null 2>&1; then
  if timeout 60 $SUDO "$DOCKER" pull -q "$BASE" >/dev/null 2>&1; then
    log "pulled $BASE"
  else
    mirror=$(debian_mirror)
    log "no registry answers: building $BASE from the Debian archive (${mirror%%/*}//…)"
    rootfs=$(mktemp -d)
    $SUDO debootstrap --variant=minbase trixie "$rootfs" "$mirror" >/dev/null
    $SUDO rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    $SUDO tar -C "$rootfs" -c . | $SUDO "$DOCKER" import - "$BASE" >/dev/null
    $SUDO rm -rf "$rootfs"
  fi
fi
log "engine $($SUDO "$DOCKER" version --format '{{.Server.Version}}'), base image $BASE"
echo "DOCKER_HOST=unix://$SOCKET"

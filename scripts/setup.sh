#!/usr/bin/env bash
# Installs what @vlab/image needs on a fresh Debian machine with Node 20 and npm (idempotent):
# pnpm, the workspace's packages, and the Debian tools the builder and its tests use.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v busybox >/dev/null || [ -x /bin/busybox ] || need_apt+=(busybox-static)
# tmux: the CLI tests read the tty progress view through a real pty.
# buildah: the differential suite (test/differential.test.ts) builds every case with it too.
# zstd: the zstd export tests decompress our layers with Debian's CLI.
for tool in crun runc umoci skopeo mksquashfs getfattr newuidmap tmux buildah zstd; do
  command -v "$tool" >/dev/null || case "$tool" in
    mksquashfs) need_apt+=(squashfs-tools) ;;
    getfattr) need_apt+=(attr) ;;
    newuidmap) need_apt+=(uidmap) ;;
    *) need_apt+=("$tool") ;;
  esac
done
[ -x /usr/bin/docker-registry ] || need_apt+=(docker-registry)
# The export suites (test/export-*.test.ts) check each format with its own system's tool:
# Charliecloud's ch-image/ch-run, LXC's lxc-execute, Docker 20.10's dockerd.
[ -x /usr/bin/ch-image ] || need_apt+=(charliecloud-builders)
command -v ch-run >/dev/null || need_apt+=(charliecloud-runtime)
command -v lxc-execute >/dev/null || need_apt+=(lxc)
command -v dockerd >/dev/null || need_apt+=(docker.io)
command -v cc >/dev/null || need_apt+=(gcc libc6-dev)
# vlab-init loads Docker's seccomp profile through libseccomp.
[ -f /usr/include/seccomp.h ] || need_apt+=(libseccomp-dev)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  else
    echo "setup: missing Debian packages (${need_apt[*]}); run as root or: sudo apt-get install ${need_apt[*]}" >&2
  fi
fi

command -v pnpm >/dev/null || npm install -g pnpm@9.15.9 >/dev/null 2>&1
pnpm install --frozen-lockfile --reporter=silent
# The C helpers (vlab-sys, vlab-init): one syscall batch instead of a util-linux process chain.
bash scripts/build-native.sh
# One-file CLI bundle for fast starts (bin/vbuild.js falls back to the sources when it is stale).
pnpm --filter @vlab/image bundle

#!/usr/bin/env bash
# Installs what @vlab/image needs on a fresh Debian machine with Node 20 and npm (idempotent):
# pnpm, the workspace's packages, and the Debian tools the builder and its tests use.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v busybox >/dev/null || [ -x /bin/busybox ] || need_apt+=(busybox-static)
# tmux: the CLI tests read the tty progress view through a real pty.
# buildah: the differential suite (test/differential.test.ts) builds every case with it too.
# podman: test/registry-podman.test.ts pulls and runs what vbuild pushed.
# zstd: the zstd export tests decompress our layers with Debian's CLI.
# pasta (passt): `run --network private` (outbound NAT, -p); slirp4netns: its named alternative.
for tool in crun runc umoci skopeo mksquashfs getfattr newuidmap tmux buildah podman zstd pasta slirp4netns; do
  command -v "$tool" >/dev/null || case "$tool" in
    mksquashfs) need_apt+=(squashfs-tools) ;;
    getfattr) need_apt+=(attr) ;;
    newuidmap) need_apt+=(uidmap) ;;
    pasta) need_apt+=(passt) ;;
    *) need_apt+=("$tool") ;;
  esac
done
[ -x /usr/bin/docker-registry ] || need_apt+=(docker-registry)
# htpasswd: the registry tests' basic-auth registry (test/registry-fixture.ts).
command -v htpasswd >/dev/null || need_apt+=(apache2-utils)
# docker.io: only its daemon, started by test/containers-docker.test.ts and the export suites in a
# temp dir as the oracle.
[ -x /usr/sbin/dockerd ] || need_apt+=(docker.io)
# The export suites (test/export-*.test.ts) check each format with its own system's tool:
# Charliecloud's ch-image/ch-run, LXC's lxc-execute, Docker 20.10's dockerd.
[ -x /usr/bin/ch-image ] || need_apt+=(charliecloud-builders)
command -v ch-run >/dev/null || need_apt+=(charliecloud-runtime)
command -v lxc-execute >/dev/null || need_apt+=(lxc)
command -v cc >/dev/null || need_apt+=(gcc libc6-dev)
# mkfs.ext4: tests make small disks of their own (a loop file; store/testing/thin-disk.ts).
[ -x /sbin/mkfs.ext4 ] || [ -x /usr/sbin/mkfs.ext4 ] || need_apt+=(e2fsprogs)
# vlab-init loads Docker's seccomp profile through libseccomp.
[ -f /usr/include/seccomp.h ] || need_apt+=(libseccomp-dev)
# vlab-isal.node: ISA-L's igzip deflates layers on push and inflates them on pull.
[ -f /usr/include/isa-l/igzip_lib.h ] || need_apt+=(libisal-dev)
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
# Its postinstall (the root package.json's) builds the C helpers (vlab-sys, vlab-init, vlab-mon:
# one syscall batch instead of a util-linux process chain; vlab-mon is a container's monitor).
pnpm install --frozen-lockfile --reporter=silent
# One-file CLI bundle for fast starts (bin/vbuild.js falls back to the sources when it is stale).
pnpm --filter @vlab/image bundle

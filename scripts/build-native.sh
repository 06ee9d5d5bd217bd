#!/usr/bin/env bash
# Builds the small C helpers (see the comment at the top of each for why they exist):
#   packages/overlay/native/bin/vlab-sys     mount(2), umount2(2), xattr reads for the overlay package
#   packages/core/native/bin/vlab-init       the built-in executor's container launcher (links
#                                            libseccomp: without it vlab-init is not built)
#   packages/core/native/bin/vlab-mon        a container's monitor (conmon's role): outlives the CLI
#   packages/core/native/bin/vlab-walk       the build context walk: one fstatat per entry, binary records
#   packages/core/native/bin/vbuild-client   `vbuild` without Node's start-up: hands the command to a
#                                            warm server (src/cli/server.ts), else runs bin/vbuild.js
#   packages/core/native/bin/vlab-fdpass.node  that server's Node-API addon (SCM_RIGHTS, dup2)
#   packages/core/native/bin/vlab-fadvise.node  posix_fadvise for blob writers: a big layer's flushed
#                                            pages leave the page cache (store/writeback.ts)
#   packages/core/native/bin/vlab-no-peerpidfd  test-only (native/testing/, not shipped): runs a
#                                            command as before Linux 6.5 (no SO_PEERPIDFD)
#   packages/overlay/native/bin/vlab-isal.node  ISA-L's igzip: layer gzip on push (~10x zlib's
#                                            speed) and gunzip on pull (3-4x); links libisal:
#                                            without it both stay on zlib
# Without a C compiler nothing is built and both packages fall back to util-linux (slower).
#
# `build-native.sh PKGDIR` builds only the helpers whose sources are in PKGDIR/native: an installed
# package's postinstall runs it so (`pnpm pack` ships a copy as native/build-native.sh), and a
# helper that fails to build there is left out, never an install failure.
set -euo pipefail
if [ $# -gt 0 ]; then
  only="$(cd "$1" && pwd)"
else
  only=""
  cd "$(dirname "$0")/.."
fi
CC="${CC:-cc}"
if ! command -v "$CC" >/dev/null; then
  echo "build-native: no C compiler ($CC): using the util-linux fallbacks" >&2
  exit 0
fi
# The libraries a helper links; one that is missing means the helper is not built.
libs_for() { case "$1" in vlab-init) echo seccomp ;; vlab-isal) echo isal ;; esac; }
header_of() { case "$1" in isal) echo isa-l/igzip_lib.h ;; *) echo "$1.h" ;; esac; }
have_lib() { printf '#include <%s>\nint main(void) { return 0; }\n' "$(header_of "$1")" | "$CC" -x c -o /dev/null - "-l$1" 2>/dev/null; }
for pair in overlay:vlab-sys overlay:vlab-isal core:vlab-init core:vlab-mon core:vlab-walk core:vbuild-client core:vlab-fdpass core:vlab-fadvise core:testing/vlab-no-peerpidfd; do
  pkg="${pair%%:*}" name="${pair##*:}"
  dir="${only:-packages/$pkg}/native"
  # NAME.c and its companions NAME-*.c make one binary.
  [ -f "$dir/$name.c" ] || continue
  srcs=("$dir/$name.c")
  for extra in "$dir/$name"-*.c; do if [ -f "$extra" ]; then srcs+=("$extra"); fi; done
  mkdir -p "$dir/bin"
  out="$dir/bin/$(basename "$name")"
  # A Node-API addon (a shared object Node loads): needs no Node headers (see the file).
  flags=(-O2 -Wall -Wextra -Werror)
  case "$name" in vlab-fdpass | vlab-fadvise | vlab-isal) out="$out.node" flags+=(-shared -fPIC) ;; esac
  libs=()
  for lib in $(libs_for "$name"); do
    if have_lib "$lib"; then libs+=("-l$lib"); continue; fi
    # vlab-init must never run a step without Docker's seccomp filter: no stale binary either.
    case "$name" in
      vlab-init) why="the executor falls back to runc/crun, or VLAB_EXECUTOR=builtin-shell (no seccomp)" ;;
      *) why="layer gzip and gunzip use zlib (slower)" ;;
    esac
    echo "build-native: lib$lib missing (Debian: apt-get install lib$lib-dev): $name not built; $why" >&2
    rm -f "$out"
    continue 2
  done
  # Built aside and renamed: a running build never execs a half-written binary.
  "$CC" "${flags[@]}" -o "$out.tmp.$$" "${srcs[@]}" ${libs[@]+"${libs[@]}"}
  mv -f "$out.tmp.$$" "$out"
done

#!/usr/bin/env bash
# Builds the two small C helpers (see the comment at the top of each for why they exist):
#   packages/overlay/native/bin/vlab-sys     mount(2), umount2(2), xattr reads for the overlay package
#   packages/core/native/bin/vlab-init       the built-in executor's container launcher
# Without a C compiler nothing is built and both packages fall back to util-linux (slower).
set -euo pipefail
cd "$(dirname "$0")/.."
CC="${CC:-cc}"
if ! command -v "$CC" >/dev/null; then
  echo "build-native: no C compiler ($CC): using the util-linux fallbacks" >&2
  exit 0
fi
for pair in overlay:vlab-sys core:vlab-init; do
  pkg="${pair%%:*}" name="${pair##*:}"
  # NAME.c and its companions NAME-*.c make one binary.
  [ -f "packages/$pkg/native/$name.c" ] || continue
  srcs=("packages/$pkg/native/$name.c")
  for extra in "packages/$pkg/native/$name"-*.c; do if [ -f "$extra" ]; then srcs+=("$extra"); fi; done
  mkdir -p "packages/$pkg/native/bin"
  out="packages/$pkg/native/bin/$name"
  # Built aside and renamed: a running build never execs a half-written binary.
  "$CC" -O2 -Wall -Wextra -Werror -o "$out.tmp.$$" "${srcs[@]}"
  mv -f "$out.tmp.$$" "$out"
done

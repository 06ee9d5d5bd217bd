/**
 * Where a compiled helper is (scripts/build-native.sh builds each package's native/*.c into its
 * native/bin/ with the machine's C compiler). First match wins: `$VLAB_NATIVE_DIR/NAME` when set,
 * then the caller's candidates (URLs relative to its module: one for the TypeScript sources, one
 * for the one-file CLI bundle in packages/core/dist). `VLAB_NO_NATIVE=1` hides every helper, so
 * the util-linux fallbacks run (tests use it to cover those).
 */
import type { ChildProcess } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import type { Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const found = new Map<string, string | undefined>();

export function nativeHelper(
  name: 'vlab-sys' | 'vlab-init' | 'vlab-mon' | 'vlab-walk' | 'vlab-isal.node',
  candidates: URL[],
): string | undefined {
  if (process.env.VLAB_NO_NATIVE === '1') return undefined;
  const key = `${name}\0${process.env.VLAB_NATIVE_DIR ?? ''}`;
  if (found.has(key)) return found.get(key);
  const dirs = [
    ...(process.env.VLAB_NATIVE_DIR ? [path.join(process.env.VLAB_NATIVE_DIR, name)] : []),
    ...candidates.map((u) => fileURLToPath(u)),
  ];
  let hit: string | undefined;
  for (const p of dirs) {
    try {
      accessSync(p, constants.X_OK);
      hit = p;
      break;
    } catch {
      /* next */
    }
  }
  found.set(key, hit);
  return hit;
}

/**
 * native/vlab-isal.c (ISA-L's deflate and inflate, one addon for push and pull), from this
 * package's sources or dist/ (`../native/bin`), or from @vlab/image's one-file CLI bundle in its
 * dist/, beside which this package sits (`../../overlay/native/bin`: packages/ in the workspace,
 * node_modules/@vlab/ once installed). Undefined when libisal was missing at build time.
 */
export function isalAddon(): string | undefined {
  return nativeHelper('vlab-isal.node', [
    new URL('../native/bin/vlab-isal.node', import.meta.url),
    new URL('../../overlay/native/bin/vlab-isal.node', import.meta.url),
  ]);
}

/**
 * A helper server must not keep Node alive while idle: ref the child and its stdio pipes while a
 * request is in flight, unref them otherwise (used by vlab-sys's and vlab-init's servers).
 */
export function holdEventLoop(child: ChildProcess, hold: boolean): void {
  for (const s of [child.stdin, child.stdout, child.stderr] as unknown as (Socket | null)[]) {
    if (!s) continue;
    if (hold) s.ref();
    else s.unref();
  }
  if (hold) child.ref();
  else child.unref();
}

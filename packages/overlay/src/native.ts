/**
 * Where a compiled helper is (scripts/build-native.sh builds each package's native/*.c into its
 * native/bin/ with the machine's C compiler). First match wins: `$VLAB_NATIVE_DIR/NAME` when set,
 * then the caller's candidates (URLs relative to its module: one for the TypeScript sources, one
 * for the one-file CLI bundle in packages/core/dist). `VLAB_NO_NATIVE=1` hides every helper, so
 * the util-linux fallbacks run (tests use it to cover those).
 */
import { accessSync, constants } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const found = new Map<string, string | undefined>();

export function nativeHelper(name: 'vlab-sys' | 'vlab-init', candidates: URL[]): string | undefined {
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

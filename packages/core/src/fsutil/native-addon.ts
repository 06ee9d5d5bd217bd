import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * One of packages/core's Node-API addons (native/bin/NAME.node, built by scripts/build-native.sh),
 * found from the sources (src/<dir>/) or from the CLI bundle (dist/); undefined when not built.
 */
export function loadCoreAddon<T>(name: string): T | undefined {
  for (const u of [
    new URL(`../../native/bin/${name}.node`, import.meta.url),
    new URL(`../native/bin/${name}.node`, import.meta.url),
  ]) {
    const p = fileURLToPath(u);
    if (!existsSync(p)) continue;
    const m = { exports: {} as T };
    process.dlopen(m, p);
    return m.exports;
  }
  return undefined;
}

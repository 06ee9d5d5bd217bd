/**
 * Rootless: as `nobody` inside a user+mount namespace (kernel ≥ 5.11) the overlay driver works
 * with `userxattr`; as plain `nobody` (no mount rights) `auto` falls back to the native driver.
 * Both run the same diff → apply round trip (testing/rootless-script.ts).
 */
import { describe, it, expect, afterAll } from 'vitest';
import { promises as fs, existsSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { run } from './sys.ts';

const script = fileURLToPath(new URL('./testing/rootless-script.ts', import.meta.url));
const canSwitch = process.getuid?.() === 0 && existsSync('/usr/bin/setpriv') && existsSync('/usr/bin/unshare');

describe.skipIf(!canSwitch)('rootless (as nobody; skipped unless run as root with setpriv and unshare)', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const d of dirs) await fs.rm(d, { recursive: true, force: true });
  });

  /** nobody must be able to read the checkout (a clone under /root is not): skip, saying why. */
  const readable = async () =>
    (await run('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'test', '-r', script])).code === 0;

  const asNobody = async (userns: boolean) => {
    const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'vlab-rootless-'));
    dirs.push(tmp);
    await fs.chmod(tmp, 0o777);
    const inner = [process.execPath, '--import', 'tsx', script, tmp];
    const cmd = [
      '--reuid=65534',
      '--regid=65534',
      '--clear-groups',
      '--inh-caps=-all',
      'env',
      `HOME=${tmp}`,
      ...(userns ? ['unshare', '--user', '--map-root-user', '--mount'] : []),
      ...inner,
    ];
    const r = await run('setpriv', cmd, { cwd: path.dirname(script) });
    const out = r.stdout.toString().trim().split('\n').pop() ?? '';
    if (r.code !== 0 && !out.startsWith('{')) throw new Error(`rootless run failed (${r.code}): ${r.stderr}`);
    return JSON.parse(out) as { driver: string; realRoot: boolean; names: string[]; same: boolean };
  };

  it('overlay driver with userxattr inside a user namespace', { timeout: 60_000 }, async (ctx) => {
    if (!(await readable())) ctx.skip(); // checkout not readable by nobody
    const r = await asNobody(true);
    expect(r.realRoot).toBe(false);
    expect(r.driver).toBe('overlay');
    expect(r.names).toEqual(['d/', 'd/.wh..wh..opq', 'd/new', '.wh.gone']);
    expect(r.same).toBe(true);
  });

  it('native driver for a user who cannot mount', { timeout: 60_000 }, async (ctx) => {
    if (!(await readable())) ctx.skip(); // checkout not readable by nobody
    const r = await asNobody(false);
    expect(r.driver).toBe('native');
    expect(r.names).toContain('.wh.gone');
    expect(r.same).toBe(true);
  });
});

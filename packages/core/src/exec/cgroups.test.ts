import { describe, expect, it } from 'vitest';
import { detectCgroups, sharesToWeight } from './cgroups.ts';
import { createExecutor } from './index.ts';
import { BuiltinExecutor, initHelper } from './builtin.ts';

describe('cgroups', () => {
  it('detects the layout of this machine', async () => {
    const { version, controllers } = await detectCgroups();
    expect(['v1', 'v2', 'hybrid']).toContain(version);
    if (version !== 'v2') expect(controllers).toEqual(expect.arrayContaining(['memory', 'pids']));
  });
  it('converts cpu shares like docker', () => {
    expect(sharesToWeight(1024)).toBe(39);
    expect(sharesToWeight(2)).toBe(1);
    expect(sharesToWeight(262144)).toBe(10000);
  });
  it('auto picks the built-in executor with vlab-init as root, else runc on v1/hybrid, crun first on pure v2', async () => {
    const { version } = await detectCgroups();
    expect(initHelper(), 'vlab-init is not built: run bash scripts/build-native.sh').toBeDefined();
    const ex = await createExecutor();
    expect(ex.name).toBe('builtin');
    expect((ex as BuiltinExecutor).launcher).toBe('native');
    const oci = await createExecutor({ kind: 'oci' });
    if (version === 'v2') expect(['crun', 'runc']).toContain(oci.name);
    else expect(oci.name).toBe('runc');
    expect((await createExecutor({ kind: 'builtin' })).name).toBe('builtin');
  });
});

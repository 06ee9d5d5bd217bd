import { describe, expect, it } from 'vitest';
import { detectCgroups, sharesToWeight } from './cgroups.ts';
import { createExecutor } from './index.ts';

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
  it('auto picks runc on v1/hybrid and crun first on pure v2', async () => {
    const { version } = await detectCgroups();
    const ex = await createExecutor();
    if (version === 'v2') expect(['crun', 'runc', 'builtin']).toContain(ex.name);
    else expect(['runc', 'builtin']).toContain(ex.name);
    expect((await createExecutor({ kind: 'builtin' })).name).toBe('builtin');
  });
});

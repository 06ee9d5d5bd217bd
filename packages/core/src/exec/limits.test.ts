import { describe, expect, it } from 'vitest';
import { DEFAULT_PIDS_LIMIT, parseSize, runLimits } from './limits.ts';

const root = { root: true, layout: { controllers: ['cpu', 'memory', 'pids'] } };

describe('RUN limits', () => {
  it.each([
    ['1024', 1024],
    ['512m', 512 * 1024 ** 2],
    ['1g', 1024 ** 3],
    ['1.5g', 1.5 * 1024 ** 3],
    ['100k', 102_400],
    ['2MB', 2 * 1024 ** 2],
    ['3 GiB', 3 * 1024 ** 3],
    ['10b', 10],
  ])('parseSize(%s) = %d, as docker (go-units RAMInBytes)', (v, n) => expect(parseSize(v)).toBe(n));

  it.each(['', 'lots', '-1m', '1x', '1e3', 'm'])('parseSize(%j) is E_BAD_ARG', (v) =>
    expect(() => parseSize(v)).toThrow(expect.objectContaining({ code: 'E_BAD_ARG' })),
  );

  it('the default pids limit applies as root where the pids controller exists; -1 and 0 lift it', () => {
    expect(runLimits({}, root)).toEqual({ pids: DEFAULT_PIDS_LIMIT });
    expect(runLimits({ pidsLimit: 64 }, root)).toEqual({ pids: 64 });
    expect(runLimits({ pidsLimit: -1 }, root)).toEqual({});
    expect(runLimits({ pidsLimit: 0 }, root)).toEqual({});
    // Rootless runs have no cgroup: no default there (the executor refuses explicit limits).
    expect(runLimits({}, { root: false, layout: root.layout })).toEqual({});
    expect(runLimits({}, { root: true, layout: { controllers: ['memory'] } })).toEqual({});
  });

  it("memory, cpu quota and period are checked against docker's bounds", () => {
    expect(runLimits({ memory: '64m', cpuQuota: 50_000, cpuPeriod: 100_000, pidsLimit: -1 }, root)).toEqual({
      memory: 64 * 1024 ** 2,
      cpuQuota: 50_000,
      cpuPeriod: 100_000,
    });
    expect(runLimits({ memory: 8 << 20, pidsLimit: -1 }, root)).toEqual({ memory: 8 << 20 });
    for (const bad of [
      { memory: '1m' },
      { memory: 1.5 },
      { cpuQuota: 10 },
      { cpuPeriod: 100 },
      { cpuPeriod: 2_000_000 },
      { pidsLimit: -2 },
      { pidsLimit: 1.5 },
      // Past what the kernel takes (the cfs quota is at most 2^44-1 us, pids.max at most 2^22): E_BAD_ARG, not a runtime error.
      { cpuQuota: 1e20 },
      { cpuQuota: 2 ** 44 },
      { pidsLimit: 1e20 },
      { pidsLimit: 2 ** 22 + 1 },
      { cpuPeriod: 1e20 },
      { memory: 1e20 },
      { memory: '99999999999999999999' },
    ]) {
      expect(() => runLimits(bad, root)).toThrow(expect.objectContaining({ code: 'E_BAD_ARG' }));
    }
  });
});

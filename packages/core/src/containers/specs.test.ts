import { describe, expect, it } from 'vitest';
import { VlabError } from '@vlab/errors';
import { parseMountFlag, parseTmpfsFlag, parseVolumeFlag } from './mount-specs.ts';
import { mergeEnv } from './create.ts';
import { humanDuration } from './format.ts';
import { signalName } from './signals.ts';

const codeOf = (f: () => unknown) => {
  try {
    f();
  } catch (e) {
    return (e as VlabError).code;
  }
  return 'no error';
};

describe('run flag parsing', () => {
  it.each([
    ['/h:/c', { type: 'bind', source: '/h', target: '/c', readonly: false }],
    ['/h:/c:ro', { type: 'bind', source: '/h', target: '/c', readonly: true }],
    ['name:/c', { type: 'volume', source: 'name', target: '/c', readonly: false }],
    ['/c', { type: 'volume', target: '/c', anonymous: true }],
  ])('-v %s', (spec, want) => expect(parseVolumeFlag(spec)).toMatchObject(want));

  it.each(['./h:/c', 'h/x:/c', '/h:c', '/h:/c/../..', '/h:/', 'a:b:c:d', '/h:/c:bogus'])('-v %s is refused', (spec) =>
    expect(['E_VOLUME_PATH', 'E_BAD_ARG']).toContain(codeOf(() => parseVolumeFlag(spec))),
  );

  it('--mount and --tmpfs', () => {
    expect(parseMountFlag('type=bind,src=/a,dst=/b,readonly')).toMatchObject({ type: 'bind', readonly: true });
    expect(parseMountFlag('type=tmpfs,target=/t,tmpfs-size=1m')).toMatchObject({ options: ['size=1m'] });
    expect(parseMountFlag('type=volume,target=/v')).toMatchObject({ anonymous: true });
    expect(codeOf(() => parseMountFlag('type=nfs,target=/x'))).toBe('E_BAD_ARG');
    expect(codeOf(() => parseMountFlag('type=bind,source=rel,target=/x'))).toBe('E_VOLUME_PATH');
    expect(parseTmpfsFlag('/t:size=2m,mode=1777')).toMatchObject({ target: '/t', options: ['size=2m', 'mode=1777'] });
    expect(codeOf(() => parseTmpfsFlag('/t:evil=1'))).toBe('E_BAD_ARG');
  });

  it("env: the run's first, then the image's it did not name (docker's order); K alone from our env or dropped", () => {
    expect(mergeEnv(['A=1', 'B=2', 'C=3'], ['B=x', 'D=4', 'C', 'E', 'B=y'], { E: 'e' })).toEqual([
      'B=y',
      'D=4',
      'E=e',
      'A=1',
    ]);
  });

  it('durations and signals as docker words them', () => {
    expect([500, 1000, 5000, 60_000, 5 * 60_000, 3600_000, 3 * 3600_000].map(humanDuration)).toEqual([
      'Less than a second',
      '1 second',
      '5 seconds',
      'About a minute',
      '5 minutes',
      'About an hour',
      '3 hours',
    ]);
    expect([signalName('term'), signalName('SIGKILL'), signalName('15'), signalName('USR1')]).toEqual([
      'SIGTERM',
      'SIGKILL',
      'SIGTERM',
      'SIGUSR1',
    ]);
    expect(codeOf(() => signalName('SIGNOPE'))).toBe('E_BAD_SIGNAL');
  });
});

import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { stepKey } from './keys.ts';
import { chainIds } from '../image/chain.ts';
import { applyMeta, createdBy, setEnv } from './ops/meta.ts';
import { parse, StageScope } from '@vlab/dockerfile';
import type { ImageConfig } from '../image/types.ts';

const d = (s: string) => `sha256:${createHash('sha256').update(s).digest('hex')}`;

describe('cache keys', () => {
  it('ignore source positions and text, not the instruction', () => {
    const [a] = parse('FROM x\nRUN  echo hi\n').stages[0]!.instructions;
    const [b] = parse('FROM x\n\n\nRUN echo hi\n').stages[0]!.instructions;
    const [c] = parse('FROM x\nRUN echo bye\n').stages[0]!.instructions;
    const k = (inst: unknown, args = {}) => stepKey({ parent: 'p', instruction: inst, args, platform: 'linux/amd64' });
    expect(k(a)).toBe(k(b));
    expect(k(a)).not.toBe(k(c));
    expect(k(a, { X: '1' })).not.toBe(k(a, { X: '2' }));
    expect(stepKey({ parent: 'p1', instruction: a, args: {}, platform: 'linux/amd64' })).not.toBe(k(a));
  });

  it('chain ids follow the OCI definition', () => {
    const [l0, l1, l2] = [d('a'), d('b'), d('c')];
    const c1 = d(`${l0} ${l1}`);
    expect(chainIds([l0, l1, l2])).toEqual([l0, c1, d(`${c1} ${l2}`)]);
  });
});

describe('config instructions', () => {
  const base: ImageConfig = {
    architecture: 'amd64',
    os: 'linux',
    config: { Cmd: ['inherited'] },
    rootfs: { type: 'layers', diff_ids: [] },
    history: [],
  };
  const evalAll = (text: string) => {
    const scope = new StageScope({ globalArgs: {}, buildArgs: {}, baseEnv: {} });
    return parse(`FROM x\n${text}`).stages[0]!.instructions.map((i) => scope.evaluate(i).instruction);
  };

  it('ENV replaces an existing key in place of appending a duplicate', () => {
    expect(setEnv(['A=1', 'B=2'], 'A', '3')).toEqual(['A=3', 'B=2']);
  });

  it('shell-form CMD goes through SHELL; ENTRYPOINT drops an inherited CMD only', () => {
    let img = base;
    const flags = { cmdSet: false };
    for (const i of evalAll('SHELL ["/bin/bash", "-c"]\nENTRYPOINT ["e"]\n')) img = applyMeta(img, i, flags);
    expect(img.config.Cmd).toBeNull();
    for (const i of evalAll('CMD run me\n')) img = applyMeta(img, i, flags);
    expect(img.config.Cmd).toEqual(['/bin/bash', '-c', 'run me']);
  });

  it('history created_by reads like docker history', () => {
    const [env, run] = evalAll('ENV A=1\nRUN echo hi\n');
    expect(createdBy(env!, ['/bin/sh', '-c'])).toBe('ENV A=1');
    expect(createdBy(run!, ['/bin/sh', '-c'])).toBe('RUN /bin/sh -c echo hi # vlab');
  });
});

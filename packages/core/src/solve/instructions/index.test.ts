import { describe, expect, it } from 'vitest';
import { parse } from '@vlab/dockerfile';
import { moduleFor } from './index.ts';
import { copy } from './copy.ts';
import { meta } from './meta.ts';
import { run } from './run.ts';
import { workdir } from './workdir.ts';

describe('instruction modules', () => {
  it('every instruction a stage may hold has its module; FROM is none', () => {
    const df = parse(
      [
        'FROM busybox',
        'ARG A=1',
        'ENV E=1',
        'LABEL l=1',
        'EXPOSE 80',
        'VOLUME /v',
        'USER u',
        'SHELL ["/bin/sh", "-c"]',
        'STOPSIGNAL SIGTERM',
        'HEALTHCHECK NONE',
        'ONBUILD RUN true',
        'MAINTAINER m',
        'CMD ["c"]',
        'ENTRYPOINT ["e"]',
        'WORKDIR /w',
        'RUN true',
        'COPY a b',
        'ADD a b',
      ].join('\n'),
    );
    const kinds = df.stages[0]!.instructions.map((i) => i.kind);
    expect(kinds).toHaveLength(17);
    const byKind = Object.fromEntries(kinds.map((k) => [k, moduleFor(k)]));
    expect(byKind).toMatchObject({ RUN: run, WORKDIR: workdir, COPY: copy, ADD: copy, ENV: meta, ARG: meta });
    expect(kinds.filter((k) => !['RUN', 'WORKDIR', 'COPY', 'ADD'].includes(k)).every((k) => byKind[k] === meta)).toBe(
      true,
    );
    expect(() => moduleFor('FROM')).toThrow(expect.objectContaining({ code: 'E_UNSUPPORTED' }));
  });

  it('config-only steps say so in their key: no lookup, no run', async () => {
    const df = parse('FROM busybox\nENV A=1\nWORKDIR /\nWORKDIR /x\n');
    const [env, root, sub] = df.stages[0]!.instructions;
    const parent = {
      key: 'k',
      layers: [],
      created: '',
      config: {
        architecture: 'amd64',
        os: 'linux',
        config: {},
        rootfs: { type: 'layers' as const, diff_ids: [] },
        history: [],
      },
    };
    const call = (inst: typeof env) => ({ inst, usedArgs: {}, parent, flags: { cmdSet: false } }) as never;
    expect((await meta.cacheKey(undefined, call(env), meta.config(call(env)))).layer).toBe(false);
    expect((await workdir.cacheKey({} as never, call(root), workdir.config(call(root)))).layer).toBe(false);
    expect((await workdir.cacheKey({} as never, call(sub), workdir.config(call(sub)))).layer).toBeUndefined();
    expect(workdir.config(call(sub)).config.WorkingDir).toBe('/x');
  });
});

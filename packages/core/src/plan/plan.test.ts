import { describe, expect, it } from 'vitest';
import { parse, resolveGlobalArgs, selectTarget } from '@vlab/dockerfile';
import { planBuild, type BuildPlan } from './plan.ts';

function plan(text: string, opts: { target?: string; args?: Record<string, string>; named?: string[] } = {}) {
  const df = parse(text);
  const globalArgs = resolveGlobalArgs(df, opts.args ?? {}, {});
  return planBuild(df, selectTarget(df, opts.target), { globalArgs, named: new Set(opts.named ?? []) });
}

/** Vertices as `index: dep via, …` lines, for tables that read like the graph. */
function edges(p: BuildPlan): string[] {
  return p.vertices.map((v) => `${v.stage.index}: ${v.deps.map((d) => `${d.stage} ${d.via}`).join(', ')}`);
}

describe('planBuild', () => {
  it('one stage: one vertex, no edges', () => {
    const p = plan('FROM busybox\nRUN true\n');
    expect(p.target).toBe(0);
    expect(edges(p)).toEqual(['0: ']);
  });

  it('a FROM chain, COPY --from and RUN --mount from= are edges; unused stages are left out', () => {
    const p = plan(
      [
        'FROM busybox AS base',
        'FROM alpine AS unused',
        'FROM base AS tools',
        'RUN true',
        'FROM busybox AS data',
        'FROM busybox',
        'COPY --from=tools /x /x',
        'RUN --mount=type=bind,from=data,target=/d cat /d/f',
        'COPY --from=1 /y /y',
      ].join('\n'),
    );
    expect(p.target).toBe(4);
    expect(edges(p)).toEqual(['0: ', '1: ', '2: 0 FROM', '3: ', '4: 2 COPY --from, 3 RUN --mount from, 1 COPY --from']);
  });

  it('the target selects what is built; transitive deps come in Dockerfile order', () => {
    const text = ['FROM busybox AS a', 'FROM a AS b', 'FROM b AS c', 'FROM busybox AS d', 'COPY --from=c / /'].join(
      '\n',
    );
    expect(edges(plan(text, { target: 'b' }))).toEqual(['0: ', '1: 0 FROM']);
    expect(plan(text).vertices.map((v) => v.stage.name)).toEqual(['a', 'b', 'c', 'd']);
  });

  it('a named context replaces the stage of its name: no edge, recorded as named', () => {
    const p = plan(['FROM busybox AS base', 'FROM base', 'COPY --from=Base /a /a'].join('\n'), { named: ['base'] });
    expect(edges(p)).toEqual(['1: ']);
    expect(p.vertices[0]!.named).toEqual(['base', 'Base']);
  });

  it('FROM through a global ARG; an image name is no edge; a stage reading itself is none', () => {
    const text = [
      'ARG BASE=one',
      'FROM busybox AS one',
      'FROM busybox AS two',
      'FROM $BASE',
      'COPY --from=busybox:1 / /',
    ].join('\n');
    expect(edges(plan(text))).toEqual(['0: ', '2: 0 FROM']);
    expect(edges(plan(text, { args: { BASE: 'two' } }))).toEqual(['1: ', '2: 1 FROM']);
    expect(edges(plan('FROM busybox AS self\nCOPY --from=self /a /b\n'))).toEqual(['0: ']);
  });

  it('an edge is listed once per kind', () => {
    const p = plan(['FROM busybox AS a', 'FROM a', 'COPY --from=a /x /x', 'COPY --from=a /y /y'].join('\n'));
    expect(p.vertices[1]!.deps).toEqual([
      { stage: 0, via: 'FROM', at: { line: 2, column: 1 } },
      { stage: 0, via: 'COPY --from', at: { line: 3, column: 1 } },
    ]);
  });

  it('a stage comes after the stages it reads, even later ones; else in Dockerfile order', () => {
    const p = plan(
      [
        'FROM busybox AS a',
        'COPY --from=c / /',
        'FROM busybox AS b',
        'FROM busybox AS c',
        'FROM a',
        'COPY --from=b / /',
      ].join('\n'),
    );
    expect(p.vertices.map((v) => v.stage.index)).toEqual([1, 2, 0, 3]);
  });

  it('stages that read each other in a circle are E_STAGE_CYCLE at the instruction that closes it', () => {
    const text = [
      'FROM busybox AS a',
      'COPY --from=c /x /x',
      'FROM busybox AS b',
      'RUN --mount=type=bind,from=a,target=/a true',
      'FROM b AS c',
      'FROM c',
    ].join('\n');
    const err = (() => {
      try {
        plan(text);
      } catch (e) {
        return e as { code: string; message: string; location?: { line: number } };
      }
    })();
    expect(err?.code).toBe('E_STAGE_CYCLE');
    expect(err?.message).toContain('circular dependency detected on stage: a (a -> c -> b -> a)');
    expect(err?.location?.line).toBe(4);
  });
});

import { describe, expect, it } from 'vitest';
import { VlabError } from '@vlab/errors';
import { parse, resolveGlobalArgs, resolveStageBase, selectTarget, findStage, StageScope } from './index.ts';
import type { CopyInstruction, Instruction } from './index.ts';

function run(text: string, buildArgs: Record<string, string> = {}, predefined: Record<string, string> = {}) {
  const df = parse(text);
  const globalArgs = resolveGlobalArgs(df, buildArgs, predefined);
  const stage = df.stages[df.stages.length - 1];
  const scope = new StageScope({ globalArgs, buildArgs, baseEnv: { PATH: '/bin' }, predefined });
  const steps = stage.instructions.map((i) => scope.evaluate(i));
  return { df, globalArgs, stage, scope, steps };
}

describe('ARG/ENV scoping', () => {
  it('global ARGs expand FROM only, unless redeclared', () => {
    const text =
      'ARG V=3.19\nARG IMG=alpine:${V}\nFROM --platform=$BUILDPLATFORM ${IMG} AS b\nWORKDIR /$V\nARG V\nWORKDIR /$V\n';
    const { df, globalArgs, steps } = run(text, {}, { BUILDPLATFORM: 'linux/amd64' });
    expect(resolveStageBase(df, df.stages[0], globalArgs)).toEqual({ image: 'alpine:3.19', platform: 'linux/amd64' });
    expect(steps.map((s) => (s.instruction as { path?: string }).path)).toEqual(['/', undefined, '/3.19']);
    expect(steps[2].usedArgs).toEqual({ V: '3.19' });
    expect(steps[0].usedArgs).toEqual({});
  });

  it('--build-arg overrides defaults; undeclared build args are ignored', () => {
    const { steps, scope } = run('FROM a\nARG X=1\nUSER $X:$Y\n', { X: '2', Y: 'nope' });
    expect((steps[1].instruction as { user: string }).user).toBe('2:');
    expect(scope.runEnv()).toEqual({ X: '2', PATH: '/bin' });
  });

  it('ENV shadows ARG, and ENV a=1 b=$a sees the previous a', () => {
    const { steps, scope } = run('FROM a\nARG A=arg\nENV A=env B=$A\nENV C=$A\nLABEL l="$A $B"\n');
    expect((steps[1].instruction as { pairs: unknown }).pairs).toEqual([
      { key: 'A', value: 'env' },
      { key: 'B', value: 'arg' },
    ]);
    expect(steps[1].usedArgs).toEqual({ A: 'arg' });
    expect(steps[2].usedArgs).toEqual({});
    expect((steps[3].instruction as { pairs: unknown }).pairs).toEqual([{ key: 'l', value: 'env arg' }]);
    expect(scope.env()).toEqual({ PATH: '/bin', A: 'env', B: 'arg', C: 'env' });
    expect(scope.runEnv().A).toBe('env');
  });

  it('RUN uses every ARG in scope; proxy args reach RUN without declaration and are not cache inputs', () => {
    const { steps, scope } = run('FROM a\nARG X=1\nARG Y\nRUN echo $X\n', { HTTP_PROXY: 'http://p', Y: 'y' });
    expect(steps[2].usedArgs).toEqual({ X: '1', Y: 'y' });
    expect(scope.runEnv()).toEqual({ HTTP_PROXY: 'http://p', X: '1', Y: 'y', PATH: '/bin' });
  });

  it('platform args need a declaration inside a stage', () => {
    const pre = { TARGETPLATFORM: 'linux/arm64', TARGETARCH: 'arm64' };
    const { steps } = run('FROM a\nWORKDIR /$TARGETARCH\nARG TARGETARCH\nWORKDIR /$TARGETARCH\n', {}, pre);
    expect((steps[0].instruction as { path: string }).path).toBe('/');
    expect((steps[2].instruction as { path: string }).path).toBe('/arm64');
  });

  it('expands COPY sources, flags and heredocs; EXPOSE splits words; RUN mounts', () => {
    const { steps } = run(
      'FROM a\nARG U=1000 P="80 443" D=/dst\nCOPY --chown=$U --from=${U}x <<EOF $D\n"$U" \\$U\nEOF\nEXPOSE $P\nRUN --mount=type=cache,target=/c/$U,id=$U true\n',
    );
    const c = steps[1].instruction as CopyInstruction;
    expect(c).toMatchObject({ chown: '1000', from: '1000x', dest: '/dst' });
    expect(c.heredocs[0].content).toBe('"1000" $U\n');
    expect((steps[2].instruction as { ports: string[] }).ports).toEqual(['80', '443']);
    expect((steps[3].instruction as Extract<Instruction, { kind: 'RUN' }>).mounts[0]).toMatchObject({
      target: '/c/1000',
      id: '1000',
    });
  });

  it('expansion errors are typed and located', () => {
    const df = parse('FROM a\nWORKDIR ${x\n');
    const scope = new StageScope({ globalArgs: {}, buildArgs: {}, baseEnv: {} });
    try {
      scope.evaluate(df.stages[0].instructions[0]);
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(VlabError);
      expect((e as VlabError).code).toBe('E_EXPAND');
      expect((e as VlabError).location?.line).toBe(2);
    }
  });
});

describe('targets', () => {
  const df = parse('FROM a AS Base\nFROM base AS dev\nFROM scratch\n');
  it('selects by name, index, default last', () => {
    expect(selectTarget(df).index).toBe(2);
    expect(selectTarget(df, 'BASE').index).toBe(0);
    expect(selectTarget(df, '1').name).toBe('dev');
    expect(findStage(df, 'nope')).toBeUndefined();
  });
  it('unknown target lists the stages', () => {
    try {
      selectTarget(df, 'prod');
      expect.unreachable();
    } catch (e) {
      expect((e as VlabError).code).toBe('E_UNKNOWN_TARGET');
      expect((e as VlabError).message).toContain('base, dev');
    }
  });
  it('blank base image after expansion is an error', () => {
    const d = parse('ARG IMG\nFROM $IMG\n');
    expect(() => resolveStageBase(d, d.stages[0], resolveGlobalArgs(d, {}))).toThrow(/should not be blank/);
  });
});

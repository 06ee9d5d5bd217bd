import { describe, expect, it } from 'vitest';
import { parseCommand, type CommandSpec } from './flags.ts';
import { BUILD, CHECK } from './build.ts';
import { IMAGE_COMMANDS } from './images.ts';

function sink() {
  let text = '';
  return { out: { write: (s: string) => ((text += s), true) } as unknown as NodeJS.WritableStream, text: () => text };
}

const specs: CommandSpec[] = [BUILD, CHECK, ...Object.values(IMAGE_COMMANDS).map((c) => c.spec)];

describe('flags (node:util parseArgs, docker spelling)', () => {
  it.each(specs.map((s) => [s.name, s] as const))('%s has --help and -h listing its flags', (_name, spec) => {
    for (const h of ['--help', '-h']) {
      const s = sink();
      expect(parseCommand(spec, [h], s.out)).toBeUndefined();
      expect(s.text()).toContain(`Usage:  vbuild ${spec.name} `);
      for (const [flag, f] of Object.entries(spec.flags))
        expect(s.text()).toContain(`${f.short ? `-${f.short}, ` : ''}--${flag}`);
    }
  });

  it('--k v, --k=v, -kv, repeatable flags, --bool=false, -- and - as a positional', () => {
    const p = parseCommand(BUILD, [
      '-tA',
      '--tag=b',
      '-t',
      'c',
      '--no-cache=false',
      '--label',
      'k=v=w',
      '-f',
      '-',
      '--',
      '-',
    ])!;
    expect(p.values.tag).toEqual(['A', 'b', 'c']);
    expect(p.values['no-cache']).toBe(false);
    expect(p.values.label).toEqual(['k=v=w']);
    expect(p.values.file).toBe('-');
    expect(p.positionals).toEqual(['-']);
  });

  it('unknown flags and missing values are E_BAD_ARG in docker words', () => {
    expect(() => parseCommand(BUILD, ['--bogus', '.'])).toThrow(/unknown flag: --bogus\nSee 'vbuild build --help'/);
    expect(() => parseCommand(BUILD, ['.', '-t'])).toThrow(/flag needs an argument: -t, --tag/);
  });
});

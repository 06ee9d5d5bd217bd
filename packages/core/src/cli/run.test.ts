import { describe, expect, it } from 'vitest';
import { splitAtImage, RUN } from './run.ts';

describe('run flags', () => {
  it('flags end at the image', () => {
    expect(splitAtImage(RUN, ['-d', '--name', 'x', '-e', 'A=1', 'busybox', 'sh', '-c', 'ls -l'])).toEqual({
      flags: ['-d', '--name', 'x', '-e', 'A=1'],
      rest: ['busybox', 'sh', '-c', 'ls -l'],
    });
    expect(splitAtImage(RUN, ['-dieA=1', '--rm', 'img', '-x'])).toEqual({
      flags: ['-dieA=1', '--rm'],
      rest: ['img', '-x'],
    });
    expect(splitAtImage(RUN, ['-w', '/x', '--memory=6m', 'img'])).toEqual({
      flags: ['-w', '/x', '--memory=6m'],
      rest: ['img'],
    });
  });
});

import { describe, expect, it } from 'vitest';
import { setEnv } from './meta.ts';

describe('setEnv', () => {
  it('replaces a key that is set in place, as BuildKit (dockerfile2llb addEnv) does; a new key goes last', () => {
    const env = ['PATH=/bin', 'A=1', 'B=2'];
    expect(setEnv(env, 'A', '3')).toEqual(['PATH=/bin', 'A=3', 'B=2']);
    expect(setEnv(env, 'C', '4')).toEqual(['PATH=/bin', 'A=1', 'B=2', 'C=4']);
    expect(setEnv(undefined, 'A', '1')).toEqual(['A=1']);
    expect(env).toEqual(['PATH=/bin', 'A=1', 'B=2']); // not mutated
  });
});

import { describe, expect, it } from 'vitest';
import { parseCacheFrom, parseCacheTo } from './spec.ts';

const code = (f: () => unknown) => {
  try {
    f();
    return 'ok';
  } catch (e) {
    return `${(e as { code: string }).code}: ${(e as Error).message}`;
  }
};

describe('--cache-to / --cache-from', () => {
  it('BuildKit spellings', () => {
    expect(parseCacheTo('type=registry,ref=127.0.0.1:5000/c:main')).toEqual({
      type: 'registry',
      ref: '127.0.0.1:5000/c:main',
      mode: 'min',
    });
    expect(
      parseCacheTo(
        'type=registry,ref=r.io/c:1,mode=max,compression=zstd,ignore-error=true,oci-mediatypes=true,image-manifest=true',
      ),
    ).toEqual({ type: 'registry', ref: 'r.io/c:1', mode: 'max', compression: 'zstd', ignoreError: true });
    expect(parseCacheFrom('type=registry,ref=r.io/c:1')).toEqual({ type: 'registry', ref: 'r.io/c:1' });
    expect(parseCacheFrom('r.io/c:1')).toEqual({ type: 'registry', ref: 'r.io/c:1' }); // buildx's short form
  });

  it.each([
    ['to', 'type=local,dest=/tmp/c', /type=local is not supported: use type=registry/],
    ['to', 'type=gha', /type=gha is not supported/],
    ['to', 'type=registry', /ref=REGISTRY\/REPO:TAG is required/],
    ['to', 'type=registry,ref=r.io/c,mode=all', /mode=all: expected min or max/],
    ['to', 'type=registry,ref=r.io/c,compression=lz4', /compression=lz4: expected gzip or zstd/],
    ['to', 'type=registry,ref=r.io/c,image-manifest=false', /image-manifest=false is not supported/],
    ['to', 'type=registry,ref=r.io/c,ignore-error=maybe', /ignore-error=maybe: expected true or false/],
    ['to', 'type=registry,ref=r.io/c,dest=x', /unknown option "dest" \(type=registry takes ref, mode/],
    ['to', 'type=registry,ref=r.io/c,ref=r.io/d', /"ref" is given twice/],
    ['to', 'type=registry,ref', /"ref" is not key=value/],
    ['from', 'type=registry,ref=r.io/c,mode=max', /unknown option "mode" \(type=registry takes ref\)/],
    ['from', 'type=registry,ref=UPPER/Case', /--cache-from ref=UPPER\/Case: /],
  ])('--cache-%s %s is E_BAD_ARG', (dir, spec, message) => {
    const got = code(() => (dir === 'to' ? parseCacheTo(spec) : parseCacheFrom(spec)));
    expect(got).toMatch(/^E_BAD_ARG: /);
    expect(got).toMatch(message);
  });
});

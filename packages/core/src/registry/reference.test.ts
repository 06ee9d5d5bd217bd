import { describe, expect, it } from 'vitest';
import { familiarName, formatReference, isLoopback, parseReference } from './reference.ts';

// Cases from docker's reference grammar (distribution/reference normalize and reference tests).
describe('parseReference', () => {
  it.each([
    ['busybox', 'docker.io/library/busybox:latest'],
    ['busybox:1.36', 'docker.io/library/busybox:1.36'],
    ['library/busybox', 'docker.io/library/busybox:latest'],
    ['docker.io/busybox', 'docker.io/library/busybox:latest'],
    ['index.docker.io/library/busybox', 'docker.io/library/busybox:latest'],
    ['me/app', 'docker.io/me/app:latest'],
    ['localhost/app', 'localhost/app:latest'],
    ['localhost:5000/app:v1', 'localhost:5000/app:v1'],
    ['127.0.0.1:5000/a/b/c:t', '127.0.0.1:5000/a/b/c:t'],
    ['[::1]:5000/app', '[::1]:5000/app:latest'],
    ['Example.COM/app', 'Example.COM/app:latest'],
    ['registry.example.com/foo_bar/baz-q.x__y', 'registry.example.com/foo_bar/baz-q.x__y:latest'],
    ['a---b/c', 'docker.io/a---b/c:latest'],
    [`busybox@sha256:${'a'.repeat(64)}`, `docker.io/library/busybox@sha256:${'a'.repeat(64)}`],
    [`h:1/x:tag@sha256:${'b'.repeat(64)}`, `h:1/x:tag@sha256:${'b'.repeat(64)}`],
    ['x:' + 'T'.repeat(128), 'docker.io/library/x:' + 'T'.repeat(128)],
  ])('%s → %s', (input, want) => {
    expect(formatReference(parseReference(input))).toBe(want);
  });

  it.each([
    [''],
    [':tag'],
    ['Busybox'],
    ['docker.io/Me/app'],
    ['a/'],
    ['/a'],
    ['a//b'],
    ['a_-b'],
    ['-a'],
    ['a.'],
    ['a:'],
    ['a:-x'],
    ['a:' + 'x'.repeat(129)],
    ['a@sha256:abc'],
    ['a@sha256:' + 'A'.repeat(64)],
    ['a@'],
    ['host:port/x'],
    ['-host.com/x'],
    ['a'.repeat(64)],
    ['x.com/' + 'a'.repeat(256)],
    ['a b'],
  ])('%j is E_BAD_REF', (input) => {
    expect(() => parseReference(input)).toThrow(expect.objectContaining({ code: 'E_BAD_REF' }));
  });

  it('keeps the port, splits the tag after the last slash only', () => {
    expect(parseReference('127.0.0.1:5000/app')).toEqual({
      domain: '127.0.0.1:5000',
      path: 'app',
      tag: 'latest',
      digest: undefined,
    });
  });

  it('names pulled images in the familiar form', () => {
    expect(familiarName(parseReference('docker.io/library/busybox'))).toBe('busybox:latest');
    expect(familiarName(parseReference('me/app:2'))).toBe('me/app:2');
    expect(familiarName(parseReference('127.0.0.1:5000/x'))).toBe('127.0.0.1:5000/x:latest');
  });

  it('treats only loopback hosts as plain-http candidates', () => {
    expect(['localhost:5000', '127.0.0.1:1', '[::1]:5', 'localhost'].map(isLoopback)).toEqual([true, true, true, true]);
    expect(['docker.io', '10.0.0.1:5000', 'localhost.example.com'].map(isLoopback)).toEqual([false, false, false]);
  });
});

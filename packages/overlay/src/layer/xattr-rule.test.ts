import { describe, expect, it } from 'vitest';
import { isLayerXattr } from './xattr-rule.ts';

describe('isLayerXattr', () => {
  it.each([
    ['user.mime', true],
    ['security.capability', true],
    ['system.posix_acl_access', true],
    ['trusted.overlay.opaque', false],
    ['user.overlay.redirect', false],
    ['security.selinux', false],
  ])('%s → %s', (name, want) => expect(isLayerXattr(name)).toBe(want));
});

/**
 * Xattrs no layer carries, in either direction (diff writes none, apply sets none): overlayfs's own
 * metadata (a layer must not forge whiteouts, opaque dirs or redirects) and the SELinux label (the
 * host's policy labels the store's files; an image must not choose them).
 */
const FOREIGN_XATTR = /^((trusted|user)\.overlay\.|security\.selinux$)/;

export function isLayerXattr(name: string): boolean {
  return !FOREIGN_XATTR.test(name);
}

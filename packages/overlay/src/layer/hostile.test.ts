/**
 * Hostile and odd layer tars: every row is refused with a typed error or contained — nothing is
 * ever written outside the target directory. Rows are built here (tar-stream writes whatever we
 * ask), plus every archive of /work/shared/corpus/layers.
 */
import { describe, it, expect, beforeEach, afterEach } from 'vitest';
import { promises as fs, existsSync, readdirSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import tarStream from 'tar-stream';
import { isVlabError } from '@vlab/errors';
import { apply } from './apply.ts';
import { encodeHeader, END_OF_ARCHIVE, type TarEntry } from './tar-format.ts';

type E = { name: string; type?: 'file' | 'directory' | 'symlink' | 'link' | 'character-device' | 'fifo'; linkname?: string; data?: string; size?: number; pax?: Record<string, string> };

async function pack(entries: E[]): Promise<Buffer> {
  const p = tarStream.pack();
  const parts: Buffer[] = [];
  p.on('data', (c: unknown) => { parts.push(c as Buffer); });
  const done = new Promise<void>((r) => { p.on('end', () => r()); });
  for (const e of entries) {
    await new Promise<void>((res, rej) => p.entry({ name: e.name, type: e.type ?? 'file', linkname: e.linkname, mode: 0o644, pax: e.pax, devmajor: 1, devminor: 3 }, e.data ?? '', (err) => (err ? rej(err) : res())));
  }
  p.finalize();
  await done;
  return Buffer.concat(parts);
}

const raw = (h: Partial<TarEntry>, body = Buffer.alloc(0)) =>
  Buffer.concat([encodeHeader({ name: 'f', type: 'file', mode: 0o644, uid: 0, gid: 0, size: body.length, mtime: 0, linkname: '', devmajor: 0, devminor: 0, xattrs: new Map(), ...h }), body, Buffer.alloc((512 - (body.length % 512)) % 512)]);

/** Change a header block's typeflag and fix its checksum. */
function reflag(b: Buffer, flag: string): Buffer {
  b.write(flag, 156, 'ascii');
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += b[i];
  b.write(sum.toString(8).padStart(6, '0') + '\u0000 ', 148, 'binary');
  return b;
}

type Row = { name: string; tar: () => Promise<Buffer>; expect: 'refused' | 'contained'; code?: string; check?: (root: string) => Promise<void>; opts?: { allowDevices?: boolean } };

const rows: Row[] = [
  { name: 'dot-dot file', tar: () => pack([{ name: '../evil', data: 'x' }]), expect: 'refused', code: 'E_LAYER_UNSAFE' },
  { name: 'nested dot-dot', tar: () => pack([{ name: 'a/../../evil', data: 'x' }]), expect: 'refused', code: 'E_LAYER_UNSAFE' },
  { name: 'absolute path', tar: () => pack([{ name: '/evil', data: 'x' }]), expect: 'refused', code: 'E_LAYER_UNSAFE' },
  { name: 'PAX path with ..', tar: () => pack([{ name: 'ok', data: 'x', pax: { path: '../../evil' } }]), expect: 'refused', code: 'E_LAYER_UNSAFE' },
  { name: 'symlink out (relative) then written through', tar: () => pack([{ name: 'l', type: 'symlink', linkname: '../outside' }, { name: 'l/evil', data: 'x' }]), expect: 'refused', code: 'E_LAYER_UNSAFE' },
  { name: 'symlink to / then written through (contained, chroot semantics)', tar: () => pack([{ name: 'l', type: 'symlink', linkname: '/' }, { name: 'l/outside/evil', data: 'x' }]), expect: 'contained', check: async (r) => expect(await fs.readFile(path.join(r, 'outside/evil'), 'utf8')).toBe('x') },
  { name: 'symlink chain escaping', tar: () => pack([{ name: 'a', type: 'symlink', linkname: 'b/../..' }, { name: 'b', type: 'directory' }, { name: 'a/evil', data: 'x' }]), expect: 'refused', code: 'E_LAYER_UNSAFE' },
  { name: 'file replaces symlink (never followed)', tar: () => pack([{ name: 'l', type: 'symlink', linkname: '../outside/sentinel' }, { name: 'l', data: 'x' }]), expect: 'contained', check: async (r) => expect((await fs.lstat(path.join(r, 'l'))).isFile()).toBe(true) },
  { name: 'hard link to outside (..)', tar: () => pack([{ name: 'h', type: 'link', linkname: '../outside/sentinel' }]), expect: 'refused', code: 'E_LAYER_UNSAFE' },
  { name: 'hard link to absolute path', tar: () => pack([{ name: 'h', type: 'link', linkname: '/etc/passwd' }]), expect: 'refused', code: 'E_LAYER_UNSAFE' },
  { name: 'hard link through an escaping symlink', tar: () => pack([{ name: 'l', type: 'symlink', linkname: '../outside' }, { name: 'h', type: 'link', linkname: 'l/sentinel' }]), expect: 'refused', code: 'E_LAYER_UNSAFE' },
  { name: 'hard link to a missing file', tar: () => pack([{ name: 'h', type: 'link', linkname: 'nope' }]), expect: 'refused', code: 'E_LAYER_INVALID' },
  { name: 'whiteout outside', tar: () => pack([{ name: '../.wh.sentinel' }]), expect: 'refused', code: 'E_LAYER_UNSAFE' },
  { name: 'whiteout through escaping symlink', tar: () => pack([{ name: 'l', type: 'symlink', linkname: '../outside' }, { name: 'l/.wh.sentinel' }]), expect: 'refused', code: 'E_LAYER_UNSAFE' },
  { name: 'empty whiteout name', tar: () => pack([{ name: '.wh.' }]), expect: 'refused', code: 'E_LAYER_UNSAFE' },
  { name: 'device node when devices are not allowed', tar: () => pack([{ name: 'null', type: 'character-device' }]), expect: 'refused', code: 'E_LAYER_UNSAFE', opts: { allowDevices: false } },
  { name: 'absurd size', tar: async () => Buffer.concat([raw({ size: 2 ** 40 })]), expect: 'refused', code: 'E_LAYER_UNSAFE' },
  { name: 'absurd PAX size record', tar: () => pack([{ name: 'f', data: 'x', pax: { size: String(2 ** 45) } }]), expect: 'refused', code: 'E_LAYER_UNSAFE' },
  { name: 'huge PAX header', tar: async () => reflag(raw({ name: 'PaxHeaders/f', type: 'file', size: 50 * 2 ** 20 }), 'x'), expect: 'refused', code: 'E_LAYER_UNSAFE' },
  { name: 'huge GNU long name', tar: async () => reflag(raw({ name: '././@LongLink', type: 'file', size: 50 * 2 ** 20 }), 'L'), expect: 'refused', code: 'E_LAYER_UNSAFE' },
  { name: 'unknown entry type', tar: async () => Buffer.concat([reflag(raw({ name: 'q' }), 'Z'), END_OF_ARCHIVE]), expect: 'refused', code: 'E_LAYER_UNSUPPORTED' },
  { name: 'truncated inside a file', tar: async () => raw({ size: 4096 }, Buffer.alloc(100)).subarray(0, 700), expect: 'refused', code: 'E_LAYER_INVALID' },
  { name: 'bad checksum', tar: async () => { const b = raw({}); b[0] ^= 1; return b; }, expect: 'refused', code: 'E_LAYER_INVALID' },
  { name: 'forged overlay xattr dropped', tar: async () => Buffer.concat([raw({ name: 'd', type: 'dir', xattrs: new Map([['trusted.overlay.opaque', Buffer.from('y')], ['trusted.overlay.redirect', Buffer.from('/x')]]) }), END_OF_ARCHIVE]), expect: 'contained' },
  { name: 'NUL in PAX path', tar: async () => Buffer.concat([raw({ name: 'a\0b' }), END_OF_ARCHIVE]), expect: 'refused', code: 'E_LAYER_UNSAFE' },
  { name: 'overlong component', tar: () => pack([{ name: 'n'.repeat(300), data: 'x' }]), expect: 'refused', code: 'E_LAYER_UNSAFE' },
];

const corpus = '/work/shared/corpus/layers';
const tarRs = path.join(corpus, 'tar-rs');
if (existsSync(tarRs)) {
  for (const f of readdirSync(tarRs).filter((n) => n.endsWith('.tar')).sort()) {
    rows.push({ name: `corpus tar-rs/${f}`, tar: () => fs.readFile(path.join(tarRs, f)), expect: /sparse/.test(f) ? 'refused' : 'contained' });
  }
}

async function listAll(d: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (r: string) => {
    for (const e of await fs.readdir(path.join(d, r), { withFileTypes: true })) {
      out.push(path.join(r, e.name));
      if (e.isDirectory() && !e.isSymbolicLink()) await walk(path.join(r, e.name));
    }
  };
  await walk('');
  return out.sort();
}

describe('hostile layer tars are refused or contained', () => {
  let sandbox: string;
  let root: string;
  beforeEach(async () => {
    sandbox = await fs.mkdtemp(path.join(os.tmpdir(), 'vlab-hostile-'));
    root = path.join(sandbox, 'root');
    await fs.mkdir(root);
    await fs.mkdir(path.join(sandbox, 'outside'));
    await fs.writeFile(path.join(sandbox, 'outside', 'sentinel'), 'keep');
  });
  afterEach(async () => { await fs.rm(sandbox, { recursive: true, force: true }); });

  it.each(rows.map((r) => [r.name, r] as const))('%s', async (_n, row) => {
    for (const whiteouts of ['overlay', 'oci'] as const) {
      const before = await listAll(sandbox);
      let err: unknown;
      try {
        await apply(Readable.from([await row.tar()]), root, { whiteouts, ...row.opts });
      } catch (e) { err = e; }
      if (row.expect === 'refused') {
        expect(isVlabError(err), `expected a VlabError, got ${String(err)}`).toBe(true);
        if (row.code) expect((err as { code: string }).code).toBe(row.code);
      } else {
        if (err) expect(isVlabError(err), String(err)).toBe(true); // contained may still refuse
        await row.check?.(root);
      }
      // nothing outside root changed
      const after = (await listAll(sandbox)).filter((p) => !p.startsWith('root'));
      expect(after).toEqual(before.filter((p) => !p.startsWith('root')));
      expect(await fs.readFile(path.join(sandbox, 'outside', 'sentinel'), 'utf8')).toBe('keep');
      await fs.rm(root, { recursive: true, force: true });
      await fs.mkdir(root);
    }
  });
});

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
import { bareEntry, encodeHeader, END_OF_ARCHIVE, padding, type TarEntry } from './tar-format.ts';
import { readXattrsTree } from '../sys.ts';

type E = {
  name: string;
  type?: 'file' | 'directory' | 'symlink' | 'link' | 'character-device' | 'fifo';
  linkname?: string;
  data?: string;
  size?: number;
  pax?: Record<string, string>;
};

async function pack(entries: E[]): Promise<Buffer> {
  const p = tarStream.pack();
  const parts: Buffer[] = [];
  p.on('data', (c: unknown) => {
    parts.push(c as Buffer);
  });
  const done = new Promise<void>((r) => {
    p.on('end', () => r());
  });
  for (const e of entries) {
    await new Promise<void>((res, rej) =>
      p.entry(
        {
          name: e.name,
          type: e.type ?? 'file',
          linkname: e.linkname,
          mode: 0o644,
          pax: e.pax,
          devmajor: 1,
          devminor: 3,
        },
        e.data ?? '',
        (err) => (err ? rej(err) : res()),
      ),
    );
  }
  p.finalize();
  await done;
  return Buffer.concat(parts);
}

const raw = (h: Partial<TarEntry>, body = Buffer.alloc(0)) =>
  Buffer.concat([
    encodeHeader({ ...bareEntry('f', 'file', 0o644), size: body.length, ...h }),
    body,
    Buffer.alloc(padding(body.length)),
  ]);

/** Change a header block's typeflag and fix its checksum. */
function reflag(b: Buffer, flag: string): Buffer {
  b.write(flag, 156, 'ascii');
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += b[i];
  b.write(sum.toString(8).padStart(6, '0') + '\u0000 ', 148, 'binary');
  return b;
}

type Ctx = { outside: string };
type Row = {
  name: string;
  tar: (ctx: Ctx) => Promise<Buffer>;
  only?: 'overlay' | 'oci';
  expect: 'refused' | 'contained';
  code?: string;
  check?: (root: string, ctx: Ctx) => Promise<void>;
  opts?: { allowDevices?: boolean };
};

/** What is at `p`, read only when it is a regular file (a fifo would block). */
async function kind(p: string): Promise<string> {
  const st = await fs.lstat(p);
  return st.isFile()
    ? `file ${await fs.readFile(p, 'utf8')}`
    : st.isFIFO()
      ? 'fifo'
      : st.isDirectory()
        ? 'dir'
        : 'other';
}
const tarOf = (...blocks: Buffer[]) => Buffer.concat([...blocks, END_OF_ARCHIVE]);
const dirE = (name: string, h: Partial<TarEntry> = {}) => raw({ name, type: 'dir', mode: 0o755, ...h });
const symE = (name: string, to: string) => raw({ name, type: 'symlink', linkname: to });
const fifoE = (name: string) => raw({ name, type: 'fifo' });
const linkE = (name: string, to: string) => raw({ name, type: 'link', linkname: to });
const fileE = (name: string, data = 'x', h: Partial<TarEntry> = {}) => raw({ name, ...h }, Buffer.from(data));
// a valid VFS_CAP_REVISION_2 blob (cap_net_raw+ep): the kernel refuses malformed ones
const cap = Buffer.from('0100000200200000000000000000000000000000', 'hex');
const hostile = { mode: 0o6777, uid: 4242, gid: 4242, mtime: 12345 };

/**
 * Hole 1 of issue 10: apply defers directory metadata, device nodes, fifos, whiteouts, hard links
 * to them and xattrs to the end of the layer. `p -> <outside>` planted after them must not carry any
 * of it out of the root (outside's listing, modes, owners, mtimes and xattrs are compared below).
 */
const deferred: Row[] = [
  {
    name: 'dir chown/chmod/utimes through a later symlink',
    tar: async ({ outside }) => tarOf(dirE('p/'), dirE('p/d/', hostile), symE('p', outside)),
    expect: 'contained',
  },
  {
    name: 'device node through a later symlink',
    tar: async ({ outside }) =>
      tarOf(dirE('p/'), raw({ name: 'p/null', type: 'char', devmajor: 1, devminor: 3 }), symE('p', outside)),
    expect: 'contained',
    opts: { allowDevices: true },
  },
  {
    name: 'fifo through a later symlink',
    tar: async ({ outside }) => tarOf(dirE('p/'), fifoE('p/fifo'), symE('p', outside)),
    expect: 'contained',
  },
  {
    name: 'fifo replacing a host file through a later symlink',
    tar: async ({ outside }) => tarOf(dirE('p/'), fifoE('p/sentinel'), symE('p', outside)),
    expect: 'contained',
  },
  {
    name: 'overlay whiteout (0/0 device) through a later symlink',
    tar: async ({ outside }) => tarOf(dirE('p/'), fileE('p/.wh.sentinel', ''), symE('p', outside)),
    expect: 'contained',
  },
  {
    name: 'user xattr through a later symlink',
    tar: async ({ outside }) =>
      tarOf(
        dirE('p/'),
        fileE('p/sentinel', 'x', { xattrs: new Map([['user.vlab', Buffer.from('evil')]]) }),
        symE('p', outside),
      ),
    expect: 'contained',
  },
  {
    name: 'security.capability through a later symlink',
    tar: async ({ outside }) =>
      tarOf(
        dirE('p/'),
        fileE('p/sentinel', 'x', { xattrs: new Map([['security.capability', cap]]) }),
        symE('p', outside),
      ),
    expect: 'contained',
  },
  {
    name: 'dir xattr through a later symlink',
    tar: async ({ outside }) =>
      tarOf(dirE('p/'), dirE('p/d/', { xattrs: new Map([['user.vlab', Buffer.from('evil')]]) }), symE('p', outside)),
    expect: 'contained',
  },
  {
    name: 'opaque-dir marker through a later symlink',
    tar: async ({ outside }) => tarOf(dirE('p/'), dirE('p/d/'), fileE('p/d/.wh..wh..opq', ''), symE('p', outside)),
    expect: 'contained',
  },
  {
    name: 'hard link to a deferred node through a later symlink',
    tar: async ({ outside }) => tarOf(dirE('p/'), fifoE('p/sentinel'), linkE('h', 'p/sentinel'), symE('p', outside)),
    expect: 'contained',
  },
  {
    name: 'hard link to a deferred node after the symlink',
    tar: async ({ outside }) => tarOf(dirE('p/'), fifoE('p/sentinel'), symE('p', outside), linkE('h', 'p/sentinel')),
    expect: 'refused',
    code: 'E_LAYER_INVALID',
  },
  {
    name: 'symlink planted under a renamed parent',
    tar: async ({ outside }) => tarOf(dirE('p/'), dirE('p/q/'), dirE('p/q/d/', hostile), symE('p/q', outside)),
    expect: 'contained',
  },
  {
    name: 'file written through an absolute symlink to the scratch dir stays in the root',
    tar: async ({ outside }) => tarOf(symE('l', outside), fileE('l/sentinel', 'evil')),
    expect: 'contained',
    check: async (r, { outside }) => expect(await fs.readFile(path.join(r, outside, 'sentinel'), 'utf8')).toBe('evil'),
  },
  // a later entry replaces a deferred one: the last entry wins, as with tar
  {
    name: 'later file replaces a deferred fifo',
    tar: async () => tarOf(fifoE('a'), fileE('a', 'x')),
    expect: 'contained',
    check: async (r) => expect(await kind(path.join(r, 'a'))).toBe('file x'),
  },
  {
    name: 'later dir replaces a deferred fifo',
    tar: async () => tarOf(fifoE('a'), dirE('a/'), fileE('a/f')),
    expect: 'contained',
    check: async (r) => expect(await fs.readFile(path.join(r, 'a/f'), 'utf8')).toBe('x'),
  },
  {
    name: 'hard link keeps a deferred fifo that is replaced later',
    tar: async () => tarOf(fifoE('a'), linkE('h', 'a'), fileE('a', 'x')),
    expect: 'contained',
    check: async (r) => {
      expect(await kind(path.join(r, 'h'))).toBe('fifo');
      expect(await kind(path.join(r, 'a'))).toBe('file x');
    },
  },
  {
    name: 'dir metadata of a replaced dir is dropped',
    tar: async () => tarOf(dirE('a/', hostile), fileE('a', 'x')),
    expect: 'contained',
    check: async (r) => expect((await fs.lstat(path.join(r, 'a'))).mode & 0o7777).toBe(0o644),
  },
];

const rows: Row[] = [
  ...deferred,
  { name: 'whiteout of ..', tar: () => pack([{ name: 'a/.wh...' }]), expect: 'refused', code: 'E_LAYER_UNSAFE' },
  {
    name: 'device node (allowed) stays in the root',
    tar: () => pack([{ name: 'null', type: 'character-device' }]),
    expect: 'contained',
    opts: { allowDevices: true },
    check: async (r) => expect((await fs.lstat(path.join(r, 'null'))).isCharacterDevice()).toBe(true),
  },
  {
    name: 'dot-dot file',
    tar: () => pack([{ name: '../evil', data: 'x' }]),
    expect: 'refused',
    code: 'E_LAYER_UNSAFE',
  },
  {
    name: 'nested dot-dot',
    tar: () => pack([{ name: 'a/../../evil', data: 'x' }]),
    expect: 'refused',
    code: 'E_LAYER_UNSAFE',
  },
  { name: 'absolute path', tar: () => pack([{ name: '/evil', data: 'x' }]), expect: 'refused', code: 'E_LAYER_UNSAFE' },
  {
    name: 'PAX path with ..',
    tar: () => pack([{ name: 'ok', data: 'x', pax: { path: '../../evil' } }]),
    expect: 'refused',
    code: 'E_LAYER_UNSAFE',
  },
  {
    name: 'symlink out (relative) then written through',
    tar: () =>
      pack([
        { name: 'l', type: 'symlink', linkname: '../outside' },
        { name: 'l/evil', data: 'x' },
      ]),
    expect: 'refused',
    code: 'E_LAYER_UNSAFE',
  },
  {
    name: 'symlink to / then written through (contained, chroot semantics)',
    tar: () =>
      pack([
        { name: 'l', type: 'symlink', linkname: '/' },
        { name: 'l/outside/evil', data: 'x' },
      ]),
    expect: 'contained',
    check: async (r) => expect(await fs.readFile(path.join(r, 'outside/evil'), 'utf8')).toBe('x'),
  },
  {
    name: 'symlink chain escaping',
    tar: () =>
      pack([
        { name: 'a', type: 'symlink', linkname: 'b/../..' },
        { name: 'b', type: 'directory' },
        { name: 'a/evil', data: 'x' },
      ]),
    expect: 'refused',
    code: 'E_LAYER_UNSAFE',
  },
  {
    name: 'file replaces symlink (never followed)',
    tar: () =>
      pack([
        { name: 'l', type: 'symlink', linkname: '../outside/sentinel' },
        { name: 'l', data: 'x' },
      ]),
    expect: 'contained',
    check: async (r) => expect((await fs.lstat(path.join(r, 'l'))).isFile()).toBe(true),
  },
  {
    name: 'hard link to outside (..)',
    tar: () => pack([{ name: 'h', type: 'link', linkname: '../outside/sentinel' }]),
    expect: 'refused',
    code: 'E_LAYER_UNSAFE',
  },
  {
    name: 'hard link to absolute path',
    tar: () => pack([{ name: 'h', type: 'link', linkname: '/etc/passwd' }]),
    expect: 'refused',
    code: 'E_LAYER_UNSAFE',
  },
  {
    name: 'hard link through an escaping symlink',
    tar: () =>
      pack([
        { name: 'l', type: 'symlink', linkname: '../outside' },
        { name: 'h', type: 'link', linkname: 'l/sentinel' },
      ]),
    expect: 'refused',
    code: 'E_LAYER_UNSAFE',
  },
  {
    name: 'hard link to a missing file',
    tar: () => pack([{ name: 'h', type: 'link', linkname: 'nope' }]),
    expect: 'refused',
    code: 'E_LAYER_INVALID',
  },
  {
    name: 'whiteout outside',
    tar: () => pack([{ name: '../.wh.sentinel' }]),
    expect: 'refused',
    code: 'E_LAYER_UNSAFE',
  },
  {
    name: 'whiteout through escaping symlink',
    tar: () => pack([{ name: 'l', type: 'symlink', linkname: '../outside' }, { name: 'l/.wh.sentinel' }]),
    expect: 'refused',
    code: 'E_LAYER_UNSAFE',
  },
  { name: 'empty whiteout name', tar: () => pack([{ name: '.wh.' }]), expect: 'refused', code: 'E_LAYER_UNSAFE' },
  {
    name: 'device node when devices are not allowed',
    tar: () => pack([{ name: 'null', type: 'character-device' }]),
    expect: 'refused',
    code: 'E_LAYER_UNSAFE',
    opts: { allowDevices: false },
  },
  {
    name: 'absurd size',
    tar: async () => Buffer.concat([raw({ size: 2 ** 40 })]),
    expect: 'refused',
    code: 'E_LAYER_UNSAFE',
  },
  {
    name: 'absurd PAX size record',
    tar: () => pack([{ name: 'f', data: 'x', pax: { size: String(2 ** 45) } }]),
    expect: 'refused',
    code: 'E_LAYER_UNSAFE',
  },
  {
    name: 'huge PAX header',
    tar: async () => reflag(raw({ name: 'PaxHeaders/f', type: 'file', size: 50 * 2 ** 20 }), 'x'),
    expect: 'refused',
    code: 'E_LAYER_UNSAFE',
  },
  {
    name: 'huge GNU long name',
    tar: async () => reflag(raw({ name: '././@LongLink', type: 'file', size: 50 * 2 ** 20 }), 'L'),
    expect: 'refused',
    code: 'E_LAYER_UNSAFE',
  },
  {
    name: 'unknown entry type',
    tar: async () => Buffer.concat([reflag(raw({ name: 'q' }), 'Z'), END_OF_ARCHIVE]),
    expect: 'refused',
    code: 'E_LAYER_UNSUPPORTED',
  },
  {
    name: 'truncated inside a file',
    tar: async () => raw({ size: 4096 }, Buffer.alloc(100)).subarray(0, 700),
    expect: 'refused',
    code: 'E_LAYER_INVALID',
  },
  {
    name: 'bad checksum',
    tar: async () => {
      const b = raw({});
      b[0] ^= 1;
      return b;
    },
    expect: 'refused',
    code: 'E_LAYER_INVALID',
  },
  {
    name: 'forged overlay xattr dropped',
    tar: async () =>
      Buffer.concat([
        raw({
          name: 'd',
          type: 'dir',
          xattrs: new Map([
            ['trusted.overlay.opaque', Buffer.from('y')],
            ['trusted.overlay.redirect', Buffer.from('/x')],
          ]),
        }),
        END_OF_ARCHIVE,
      ]),
    expect: 'contained',
  },
  {
    name: 'NUL in PAX path',
    tar: async () => Buffer.concat([raw({ name: 'a\0b' }), END_OF_ARCHIVE]),
    expect: 'refused',
    code: 'E_LAYER_UNSAFE',
  },
  {
    name: 'overlong component',
    tar: () => pack([{ name: 'n'.repeat(300), data: 'x' }]),
    expect: 'refused',
    code: 'E_LAYER_UNSAFE',
  },
];

const corpus = '/work/shared/corpus/layers';
const tarRs = path.join(corpus, 'tar-rs');
if (existsSync(tarRs)) {
  for (const f of readdirSync(tarRs)
    .filter((n) => n.endsWith('.tar'))
    .sort()) {
    rows.push({
      name: `corpus tar-rs/${f}`,
      tar: () => fs.readFile(path.join(tarRs, f)),
      expect: /sparse/.test(f) ? 'refused' : 'contained',
    });
  }
}

/** Everything outside the root, as text: type, mode, owner, size, mtime, device and xattrs of each path (no file is opened: a planted fifo would block). */
async function snapshot(sandbox: string): Promise<string[]> {
  const out: string[] = [];
  const xattrs = await readXattrsTree(sandbox);
  const walk = async (rel: string) => {
    for (const e of (await fs.readdir(path.join(sandbox, rel), { withFileTypes: true })).sort((a, b) =>
      a.name < b.name ? -1 : 1,
    )) {
      const r = path.join(rel, e.name);
      if (r === 'root') continue;
      const st = await fs.lstat(path.join(sandbox, r));
      const xa = [...(xattrs.get(path.join(sandbox, r)) ?? new Map<string, Buffer>())]
        .map(([k, v]) => `${k}=${v.toString('hex')}`)
        .sort();
      out.push(
        `${r} ${st.mode.toString(8)} ${st.uid}:${st.gid} ${st.isFile() ? st.size : ''} ${st.mtimeMs} ${st.rdev} ${xa.join(',')}`,
      );
      if (st.isDirectory()) await walk(r);
    }
  };
  await walk('');
  return out;
}

describe('hostile layer tars are refused or contained', () => {
  let sandbox: string;
  let root: string;
  let outside: string;
  beforeEach(async () => {
    sandbox = await fs.mkdtemp(path.join(os.tmpdir(), 'vlab-hostile-'));
    root = path.join(sandbox, 'root');
    outside = path.join(sandbox, 'outside');
    await fs.mkdir(root);
    await fs.mkdir(outside);
    await fs.mkdir(path.join(outside, 'd'), { mode: 0o750 });
    await fs.writeFile(path.join(outside, 'sentinel'), 'keep');
    await fs.utimes(path.join(outside, 'd'), 1000, 1000);
    await fs.utimes(outside, 1000, 1000);
  });
  afterEach(async () => {
    await fs.rm(sandbox, { recursive: true, force: true });
  });

  // deferred rows run with vlab-sys making the nodes and xattrs, and with its tar/setfattr fallback
  const runs = (row: Row) =>
    ['overlay', 'oci'].flatMap((w) =>
      (deferred.includes(row) ? ['', '1'] : ['']).map((noNative) => [w as 'overlay' | 'oci', noNative] as const),
    );
  afterEach(() => {
    delete process.env.VLAB_NO_NATIVE;
  });

  it.each(rows.map((r) => [r.name, r] as const))('%s', async (_n, row) => {
    for (const [whiteouts, noNative] of runs(row)) {
      if (noNative) process.env.VLAB_NO_NATIVE = noNative;
      else delete process.env.VLAB_NO_NATIVE;
      const before = await snapshot(sandbox);
      let err: unknown;
      try {
        await apply(Readable.from([await row.tar({ outside })]), root, { whiteouts, ...row.opts });
      } catch (e) {
        err = e;
      }
      if (row.expect === 'refused') {
        expect(isVlabError(err), `expected a VlabError, got ${String(err)}`).toBe(true);
        if (row.code) expect((err as { code: string }).code).toBe(row.code);
      } else {
        expect(err, String(err)).toBeUndefined();
        await row.check?.(root, { outside });
      }
      // nothing outside root changed: not a name, mode, owner, time or xattr
      expect(await snapshot(sandbox)).toEqual(before);
      expect(await fs.readFile(path.join(outside, 'sentinel'), 'utf8')).toBe('keep');
      await fs.rm(root, { recursive: true, force: true });
      await fs.mkdir(root);
    }
  });
});

/** One PAX header block ('x' or 'g') with `records` as its payload. */
function paxBlock(flag: 'x' | 'g', records: Buffer): Buffer {
  return Buffer.concat([
    reflag(raw({ name: 'PaxHeaders/f', size: records.length }), flag),
    records,
    Buffer.alloc((512 - (records.length % 512)) % 512),
  ]);
}
/** PAX records `key=value` (the length prefix counts itself). */
function paxRecords(n: number, key: (i: number) => string, value = 'v'): Buffer {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const body = ` ${key(i)}=${value}\n`;
    let len = body.length + 1;
    while (String(len).length + body.length !== len) len = String(len).length + body.length;
    out.push(`${len}${body}`);
  }
  return Buffer.from(out.join(''));
}
const MB13 = 13 * 2 ** 20;
/** Blocks from `next` until the archive holds 13 MB, then one small file. */
function flood(next: () => Buffer): Buffer {
  const blocks: Buffer[] = [];
  for (let n = 0; n < MB13;) {
    const b = next();
    blocks.push(b);
    n += b.length;
  }
  return tarOf(...blocks, fileE('after'));
}

describe('PAX headers are bounded (issue 10, hole 12): a 13 MB layer of them is refused or read in well under a second', () => {
  let root: string;
  beforeEach(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'vlab-pax-'));
  });
  afterEach(async () => {
    await fs.rm(root, { recursive: true, force: true });
  });

  let uniq = 0;
  const distinct = (flag: 'x' | 'g') => () =>
    paxBlock(
      flag,
      paxRecords(500, () => `vlab.k${uniq++}`),
    );
  const cases: { name: string; tar: () => Buffer; code?: string }[] = [
    {
      name: 'consecutive x headers with distinct keys before one entry',
      tar: () => flood(distinct('x')),
      code: 'E_LAYER_UNSAFE',
    },
    {
      name: 'consecutive g headers with distinct keys (ignored, as Docker and containerd do)',
      tar: () => flood(distinct('g')),
    },
    {
      name: 'x headers with distinct xattrs before one entry',
      tar: () =>
        flood(() =>
          paxBlock(
            'x',
            paxRecords(500, () => `SCHILY.xattr.user.k${uniq++}`),
          ),
        ),
      code: 'E_LAYER_UNSAFE',
    },
    {
      name: 'entries each with a 1 MiB header of tiny records',
      tar: () => {
        const b = paxBlock(
          'x',
          paxRecords(170_000, () => 'a'),
        );
        return tarOf(...Array.from({ length: 13 }, (_, i) => Buffer.concat([b, fileE(`f${i}`)])));
      },
    },
  ];
  it.each(cases.map((c) => [c.name, c] as const))(
    '%s',
    async (_n, c) => {
      const tar = c.tar();
      expect(tar.length).toBeGreaterThan(10 * 2 ** 20);
      // CPU time, not wall time: a loaded CI machine stretches the wall clock, a quadratic parser
      // burns seconds of CPU either way.
      const cpu0 = process.cpuUsage();
      const err = await apply(Readable.from([tar]), root, { whiteouts: 'overlay' }).then(
        () => undefined,
        (e: unknown) => e,
      );
      const used = process.cpuUsage(cpu0);
      const ms = (used.user + used.system) / 1000;
      if (c.code) {
        expect(isVlabError(err), String(err)).toBe(true);
        expect((err as { code: string }).code).toBe(c.code);
        expect((err as Error).message).toMatch(/limit/);
      } else expect(err).toBeUndefined();
      expect(ms).toBeLessThan(1000);
    },
    20_000,
  );

  it('refuses more xattrs on one entry than the kernel allows (XATTR_LIST_MAX)', async () => {
    const tar = tarOf(
      paxBlock(
        'x',
        paxRecords(20_000, (i) => `SCHILY.xattr.user.k${i}`),
      ),
      fileE('f'),
    );
    await expect(apply(Readable.from([tar]), root, { whiteouts: 'overlay' })).rejects.toMatchObject({
      code: 'E_LAYER_INVALID',
    });
  });
});

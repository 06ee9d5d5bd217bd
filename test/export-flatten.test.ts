/**
 * Flattening (export/flatten.ts) against umoci's own unpack of the same image: every path, its
 * type, mode, owner, size, device, link target, hard-link grouping and user xattrs are equal.
 * Then `--format rootfs-tar` holds the same tree (unpacked with GNU tar), byte-identical twice.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { exec, umociUnpack } from './helpers.ts';
import { exportSuite, featureContext, missingTool, runCli, skipReason, treeListing } from './export-helpers.ts';

const noTools = missingTool('umoci', 'getfattr', 'setfattr');
const skip = skipReason(noTools, 'flatten vs umoci');

const suite = exportSuite(
  skip,
  'vlab-flat-',
  { tag: 'flat:1', context: () => featureContext(), build: ['--progress=plain'], env: { SOURCE_DATE_EPOCH: '1000' } },
  120_000,
);

const sha = (f: string) => createHash('sha256').update(fs.readFileSync(f)).digest('hex');

describe.skipIf(skip)('flattening', () => {
  it('rootfs-dir equals what umoci unpacks from the same image', async () => {
    const dir = path.join(suite.out, 'rootfs');
    const r = await runCli(suite.root, ['save', '--format', 'rootfs-dir', '-o', dir, 'flat:1']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const umoci = await umociUnpack(suite.root, 'flat:1');
    try {
      const mine = treeListing(dir);
      expect(mine).toEqual(treeListing(umoci));
      // The listing really holds what the layers did (so equal listings are not two empty ones).
      const by = (p: string) => mine.find((l) => l.startsWith(`${p} `));
      expect(by('keep/gone')).toBeUndefined();
      expect(by('d/sub')).toBeUndefined();
      expect(by('d')).toMatch(/^d d 1777 0 0 /);
      expect(by('keep/stay')).toBe('keep/stay f 4750 12 34 5    ');
      expect(by('h3')).toMatch(/ h1 $/);
      expect(by('b2')).toMatch(/^b2 f 644 0 0 2 {4}$/); // b1 was replaced: b2 keeps the old content alone
      expect(by('dev-null')).toMatch(/^dev-null c 644 0 0 {2}259 /);
      expect(by('fifo')).toMatch(/^fifo p /);
      expect(by('d/link')).toMatch(/ \.\.\/keep\/stay {2}$/);
      expect(by('x/dir/attr')).toMatch(/user\.vlab=0x666c6174$/);
      expect(fs.readFileSync(path.join(dir, 'file'), 'utf8')).toBe('written by the Dockerfile\n');
    } finally {
      await exec('rm', ['-rf', path.dirname(umoci)]);
    }
  });

  it('rootfs-tar holds the same tree, and the same image gives the same bytes', async () => {
    const a = path.join(suite.out, 'a.tar');
    const b = path.join(suite.out, 'b.tar');
    for (const f of [a, b]) {
      const r = await runCli(suite.root, ['save', '--format', 'rootfs-tar', '-o', f, 'flat:1'], {
        SOURCE_DATE_EPOCH: '1000',
      });
      expect(r.code, r.stderr).toBe(0);
    }
    expect(sha(a)).toBe(sha(b));
    const x = path.join(suite.out, 'x');
    await fsp.mkdir(x);
    await exec('tar', ['--xattrs', '--xattrs-include=*', '--numeric-owner', '-xpf', a, '-C', x]);
    expect(treeListing(x)).toEqual(treeListing(path.join(suite.out, 'rootfs')));
    // a second export onto an existing file is refused, not merged or overwritten
    const again = await runCli(suite.root, ['save', '--format', 'rootfs-tar', '-o', a, 'flat:1']);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/exists.*E_OUTPUT|E_OUTPUT/);
  });
});

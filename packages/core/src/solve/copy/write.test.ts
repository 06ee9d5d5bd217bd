/**
 * writeCopyInto's last pass (directory mtimes) after the archives of the same ADD: an archive
 * may replace a directory the plan copied with a link or a file; that directory's mtime is then
 * no one's to set (skipped), the others' still are. Real kernel.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { writeCopyInto } from './write.ts';
import type { CopyPlan, PlanEntry } from './plan.ts';

let top: string;
beforeAll(async () => {
  top = await fsp.mkdtemp(path.join(os.tmpdir(), 'vlab-write-'));
});
afterAll(async () => {
  await fsp.rm(top, { recursive: true, force: true });
});

const dir = (p: string, mtime = 1_000_000): PlanEntry => ({
  path: p,
  type: 'dir',
  mode: 0o755,
  uid: 0,
  gid: 0,
  mtime,
  size: 0,
  linkname: '',
  opaque: false,
  unchanged: false,
});

it('ADD dir/ a.tar /: a copied directory the archive replaces with a link is skipped by the mtime pass', async () => {
  const root = path.join(top, 'root');
  await fsp.mkdir(root);
  const src = path.join(top, 'tar-src');
  await fsp.mkdir(src);
  await fsp.symlink('elsewhere', path.join(src, 'a'));
  await fsp.writeFile(path.join(src, 'b'), 'file now');
  const archive = path.join(top, 'a.tar');
  execFileSync('tar', ['-C', src, '-cf', archive, 'a', 'b']);
  const st = fs.statSync(archive);
  // more directories than the writer keeps open: the replaced ones are opened again by name
  const entries = [dir('a'), dir('b'), dir('z', 2_000_000)];
  for (let i = 0; i < 140; i++) entries.push(dir(`a/d${i}`), dir(`b/d${i}`));
  const plan: CopyPlan = {
    entries,
    extracts: [{ archive, srcStat: { dev: st.dev, ino: st.ino, size: st.size }, format: 'tar', dest: '/' }],
  };
  await writeCopyInto(root, plan);
  expect(fs.readlinkSync(path.join(root, 'a'))).toBe('elsewhere');
  expect(fs.readFileSync(path.join(root, 'b'), 'utf8')).toBe('file now');
  expect(fs.statSync(path.join(root, 'z')).mtimeMs).toBe(2_000_000_000);
});

import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { copyFromContainer, copyToContainer } from './cp.ts';

describe('cp in-root (docker cp rules)', () => {
  let tmp: string, root: string, host: string, marker: string;
  beforeEach(async () => {
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'vlab-cp-'));
    root = path.join(tmp, 'root');
    host = path.join(tmp, 'host');
    marker = path.join(tmp, 'marker'); // a host dir the container must never reach
    for (const d of [root, host, marker, `${root}/etc`, `${root}/tmp`, `${root}/app/sub`])
      await fs.mkdir(d, { recursive: true });
    await fs.writeFile(`${marker}/secret`, 'host secret');
    await fs.writeFile(`${root}/etc/passwd`, 'root:x:0:0::/root:/bin/sh\n');
    await fs.writeFile(`${root}/app/run.sh`, '#!/bin/sh\n', { mode: 0o755 });
    await fs.writeFile(`${root}/app/sub/data`, 'data');
    await fs.symlink(marker, `${root}/app/evil`); // absolute: in the container it is <root><marker>
    await fs.symlink(marker, `${root}/evil`);
    await fs.symlink('../../../../../../../../' + marker, `${root}/evil-rel`);
    await fs.symlink('/tmp', `${root}/tmplink`);
  });
  afterEach(async () => fs.rm(tmp, { recursive: true, force: true }));

  const tree = async (dir: string): Promise<string[]> => {
    const out: string[] = [];
    for (const e of (await fs.readdir(dir, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const p = path.join(dir, e.name);
      out.push(e.isSymbolicLink() ? `${e.name} -> ${await fs.readlink(p)}` : e.isDirectory() ? `${e.name}/` : e.name);
      if (e.isDirectory()) out.push(...(await tree(p)).map((x) => `${e.name}/${x}`));
    }
    return out;
  };

  it('container → host: a file, a dir into a dir, dir/. contents; links copied as links, modes kept', async () => {
    await copyFromContainer(root, '/etc/passwd', `${host}/pw`);
    expect(await fs.readFile(`${host}/pw`, 'utf8')).toContain('root:x');
    await copyFromContainer(root, '/app', host);
    expect(await tree(`${host}/app`)).toEqual(['evil -> ' + marker, 'run.sh', 'sub/', 'sub/data']);
    expect((await fs.stat(`${host}/app/run.sh`)).mode & 0o777).toBe(0o755);
    await fs.mkdir(`${host}/c`);
    await copyFromContainer(root, '/app/.', `${host}/c`);
    expect(await tree(`${host}/c`)).toEqual(['evil -> ' + marker, 'run.sh', 'sub/', 'sub/data']);
    await copyFromContainer(root, '/app/sub', `${host}/new`);
    expect(await tree(`${host}/new`)).toEqual(['data']);
  });

  it('hostile: a symlink to a host dir never reads or writes it', async () => {
    for (const p of ['/evil/secret', '/evil-rel/secret', '/app/evil/secret']) {
      const e = await copyFromContainer(root, p, `${host}/x`).catch((x) => x);
      expect(e.code, p).toBe('E_CP_NOT_FOUND');
    }
    // the link itself comes out as a link: its target is not read
    await copyFromContainer(root, '/evil', `${host}/l`);
    expect((await fs.lstat(`${host}/l`)).isSymbolicLink()).toBe(true);
    await fs.writeFile(`${host}/f`, 'from host');
    for (const d of ['/evil/', '/evil/secret', '/evil-rel/secret', '/app/evil/x']) {
      const e = await copyToContainer(root, `${host}/f`, d).catch((x) => x);
      expect(e.code, d).toBe('E_CP_DEST');
    }
    expect(await tree(marker)).toEqual(['secret']);
    expect(await fs.readFile(`${marker}/secret`, 'utf8')).toBe('host secret');
    // an in-root link is followed in the root, as the container sees it
    await copyToContainer(root, `${host}/f`, '/tmplink');
    expect(await fs.readFile(`${root}/tmp/f`, 'utf8')).toBe('from host');
  });

  it('host → container: files owned by root, a symlink at the target replaced, not followed', async () => {
    await fs.mkdir(`${host}/d/e`, { recursive: true });
    await fs.writeFile(`${host}/d/e/x`, 'x', { mode: 0o640 });
    await fs.symlink('/nowhere', `${host}/d/ln`);
    await copyToContainer(root, `${host}/d`, '/');
    expect(await tree(`${root}/d`)).toEqual(['e/', 'e/x', 'ln -> /nowhere']);
    const st = await fs.stat(`${root}/d/e/x`);
    expect([st.uid, st.gid, st.mode & 0o777]).toEqual([0, 0, 0o640]);
    // /app/evil is a link to the host marker dir: the copy replaces the link itself
    await fs.writeFile(`${host}/evil`, 'replaced');
    await copyToContainer(root, `${host}/evil`, '/app/');
    expect(await fs.readFile(`${root}/app/evil`, 'utf8')).toBe('replaced');
    expect(await tree(marker)).toEqual(['secret']);
    expect((await copyToContainer(root, `${host}/missing`, '/').catch((x) => x)).code).toBe('E_CP_NOT_FOUND');
  });
});

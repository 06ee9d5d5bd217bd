import fsp from 'node:fs/promises';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildWithEvents, exec, freshStore, removeStore, repo, umociUnpack } from './helpers.ts';

let root: string;
beforeAll(async () => {
  root = await freshStore();
});
afterAll(async () => {
  await removeStore(root);
});

describe('examples/multistage', () => {
  it('builds the stages the final image needs, in parallel, and skips the unused one', async () => {
    const { result, events } = await buildWithEvents({
      context: path.join(repo, 'examples/multistage'),
      tags: ['multi:latest'],
      root,
    });
    const started = events.filter((e) => e.type === 'step-start').map((e) => (e as { name: string }).name);
    expect(started.some((n) => n.includes('never built'))).toBe(false);
    // docs and tool run side by side: tool's first step starts before docs' last step ends.
    const t = (pred: (e: (typeof events)[number]) => boolean) => events.findIndex(pred);
    const toolStart = t((e) => e.type === 'step-start' && (e as { stage: string }).stage === 'tool');
    const docsDone = events
      .map((e, i) => ({ e, i }))
      .filter(({ e }) => e.type === 'step-done' && (e as { stage: string }).stage === 'docs')
      .pop()!.i;
    expect(toolStart).toBeLessThan(docsDone);
    expect(result.config.config.Entrypoint).toEqual(['/usr/local/bin/tool']);
    const rootfs = await umociUnpack(root, 'multi:latest');
    expect(await fsp.readFile(path.join(rootfs, 'usr/share/doc/NOTES.TXT'), 'utf8')).toBe(
      'MULTI-STAGE BUILDS KEEP THE FINAL IMAGE SMALL\n',
    );
    expect((await fsp.stat(path.join(rootfs, 'usr/local/bin/tool'))).mode & 0o777).toBe(0o755);
  });
});

// In the workspace @vlab/image resolves to its TypeScript sources (the `source` condition in
// NODE_OPTIONS), so the example runs through tsx here; test/package.test.ts runs it with plain node
// from a packed install.
describe('examples/embed', () => {
  it('builds through the API with events on the host tool logger', async () => {
    const { stdout } = await exec(
      'node',
      [
        '--import',
        'tsx',
        path.join(repo, 'examples/embed/embed.mjs'),
        path.join(repo, 'examples/embed'),
        'embedded:latest',
      ],
      {
        env: { ...process.env, VLAB_ROOT: root },
        cwd: repo,
      },
    );
    expect(stdout).toContain('[mytool] building [stage-0 1/1] RUN echo');
    expect(stdout).toMatch(/\[mytool\] built embedded:latest sha256:[a-f0-9]{64}/);
  });

  it('Ctrl-C (SIGINT) aborts the build cleanly', async () => {
    const ctx = await fsp.mkdtemp(path.join(root, 'ctx-'));
    await fsp.writeFile(path.join(ctx, 'Dockerfile'), 'FROM busybox\nRUN sleep 60\n');
    const child = spawn('node', ['--import', 'tsx', path.join(repo, 'examples/embed/embed.mjs'), ctx], {
      env: { ...process.env, VLAB_ROOT: root },
      cwd: repo,
    });
    let out = '';
    let sent = false;
    child.stdout.on('data', (d) => {
      out += d;
      if (!sent && out.includes('building')) {
        sent = true; // one Ctrl-C: a second one kills the process, as in any CLI
        child.kill('SIGINT');
      }
    });
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    const code = await new Promise<number | null>((r) => child.on('close', r)); // 'close': after stdio is drained
    expect(out).toContain('interrupted');
    expect(err).toMatch(/ABORT/);
    expect(code).toBe(1);
    expect(await fsp.readFile('/proc/self/mountinfo', 'utf8')).not.toContain(root);
  });
});

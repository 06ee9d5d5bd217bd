/**
 * A long-lived process running @vlab/image's build() in-process (like a daemon): the bench sends
 * {context, tag, root} over IPC, gets back wall time, this process's peak RSS for that build
 * (VmHWM, reset before each build) and how many steps ran vs came from the cache.
 */
import { promises as fs } from 'node:fs';
import { build } from '@vlab/image';

interface Req {
  id: number;
  context: string;
  tag: string;
  root: string;
  noCache?: boolean;
}

process.on('message', async (m: Req) => {
  await fs.writeFile('/proc/self/clear_refs', '5').catch(() => undefined);
  let ran = 0;
  let cached = 0;
  const steps: number[] = [];
  const t0 = performance.now();
  try {
    await build({
      context: m.context,
      tags: [m.tag],
      root: m.root,
      network: 'none',
      noCache: m.noCache,
      onEvent: (e) => {
        if (e.type === 'step-done') {
          if (e.cached) cached++;
          else ran++;
          if (!e.cached && /\] RUN /.test(e.name)) steps.push(e.durationMs / 1000);
        }
      },
    });
    const wall = (performance.now() - t0) / 1000;
    process.send!({ id: m.id, ok: true, wall, rss: await hwm(), ran, cached, steps });
  } catch (e) {
    const wall = (performance.now() - t0) / 1000;
    process.send!({ id: m.id, ok: false, wall, error: String((e as Error).message ?? e).slice(0, 300) });
  }
});

async function hwm(): Promise<number> {
  const s = await fs.readFile('/proc/self/status', 'utf8');
  return Number(/VmHWM:\s+(\d+)/.exec(s)?.[1] ?? 0) * 1024;
}
process.send!({ id: 0, ready: true });

import { describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { buildProbe } from './probe.ts';

const run = async (args: string[]) => {
  const p = await buildProbe();
  if (!p) return undefined;
  return promisify(execFile)(p, args).then(
    (r) => ({ code: 0, out: r.stdout }),
    (e) => ({ code: e.code as number, out: e.stdout as string }),
  );
};

describe('probe', () => {
  it('reports success and the errno of a failure', async (ctx) => {
    const ok = await run(['open', '/dev/null', 'w']);
    if (!ok) return ctx.skip();
    expect(ok).toEqual({ code: 0, out: 'ok\n' });
    expect(await run(['open', '/nonexistent-vlab-probe', 'r'])).toEqual({ code: 1, out: 'denied ENOENT\n' });
    expect((await run(['nonsense']))?.code).toBe(2);
  });
});

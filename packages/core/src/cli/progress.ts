import type { BuildEvent } from '../solve/events.ts';

export type ProgressMode = 'auto' | 'tty' | 'plain' | 'json' | 'quiet';

/** Renders build events: plain lines for logs, one JSON object per line, or a live tty view. */
export function createRenderer(mode: ProgressMode, out: NodeJS.WriteStream = process.stderr): (e: BuildEvent) => void {
  const m = mode === 'auto' ? (out.isTTY ? 'tty' : 'plain') : mode;
  if (m === 'quiet') return () => undefined;
  if (m === 'json') return (e) => out.write(`${JSON.stringify(e)}\n`);
  if (m === 'tty') return ttyRenderer(out);
  return plainRenderer(out);
}

function secs(ms: number): string {
  return `${(ms / 1000).toFixed(1)}s`;
}

function plainRenderer(out: NodeJS.WriteStream): (e: BuildEvent) => void {
  const num = new Map<string, number>();
  let n = 0;
  const id = (s: string) => {
    if (!num.has(s)) num.set(s, ++n);
    return `#${num.get(s)}`;
  };
  return (e) => {
    switch (e.type) {
      case 'step-start':
        out.write(`${id(e.id)} ${e.name}\n`);
        break;
      case 'step-cached':
        out.write(`${id(e.id)} CACHED\n`);
        break;
      case 'step-miss':
        out.write(`${id(e.id)} cache miss: ${e.reason}\n`);
        break;
      case 'step-log':
        for (const line of e.data.split('\n').filter(Boolean)) out.write(`${id(e.id)} ${line}\n`);
        break;
      case 'step-done':
        out.write(`${id(e.id)} DONE ${secs(e.durationMs)}\n`);
        break;
      case 'step-error':
        out.write(`${id(e.id)} ERROR: ${e.message}\n`);
        break;
      case 'warning':
        out.write(`WARN: ${e.message}${e.location ? ` (${e.location.file}:${e.location.line})` : ''}\n`);
        break;
      case 'build-done':
        out.write(`writing image ${e.imageId} done (manifest ${e.digest}) in ${secs(e.durationMs)}\n`);
        break;
    }
  };
}

/** BuildKit-like: one line per step with its timing and CACHED, and the last lines of RUN output live. */
function ttyRenderer(out: NodeJS.WriteStream): (e: BuildEvent) => void {
  const steps: { id: string; name: string; state: string; started: number; ms?: number; tail: string[] }[] = [];
  let drawn = 0;
  const draw = () => {
    if (drawn) out.write(`\x1b[${drawn}A\x1b[J`);
    const lines: string[] = [];
    for (const s of steps) {
      const t = s.ms !== undefined ? secs(s.ms) : secs(Date.now() - s.started);
      lines.push(`${s.state === 'cached' ? '\x1b[34m' : s.state === 'error' ? '\x1b[31m' : ''} => ${s.state === 'cached' ? 'CACHED ' : ''}${s.name}`.padEnd(70) + ` ${t}\x1b[0m`);
      if (s.state === 'running') for (const l of s.tail.slice(-6)) lines.push(`\x1b[2m => => ${l.slice(0, 100)}\x1b[0m`);
    }
    out.write(`${lines.join('\n')}\n`);
    drawn = lines.length;
  };
  return (e) => {
    const find = (id: string) => steps.find((s) => s.id === id);
    if (e.type === 'step-start') steps.push({ id: e.id, name: e.name, state: 'running', started: e.time, tail: [] });
    else if (e.type === 'step-cached') find(e.id)!.state = 'cached';
    else if (e.type === 'step-log') find(e.id)?.tail.push(...e.data.split('\n').filter(Boolean));
    else if (e.type === 'step-done') {
      const s = find(e.id)!;
      s.ms = e.durationMs;
      if (s.state === 'running') s.state = 'done';
    } else if (e.type === 'step-error') find(e.id)!.state = 'error';
    else if (e.type === 'build-done') {
      draw();
      out.write(` => writing image ${e.imageId} done ${secs(e.durationMs)}\n`);
      return;
    } else return;
    draw();
  };
}

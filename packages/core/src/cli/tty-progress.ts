/**
 * The live tty view, as BuildKit's progressui reads: a `[+] Building 3.2s (4/6)` header (steps
 * finished / seen, total time; `FINISHED` at the end), one line per step with its time, ticking
 * while it runs (BuildKit's 150 ms ticker); finished steps blue, failed ones red and `ERROR`,
 * stopped ones (a sibling stage failed) yellow and `CANCELED`, running ones in the default colour; the last lines of a step's output under it while it runs, and for a moment
 * after it ends, so a short step's output can be read before it goes.
 */
import { stepCanceled, type BuildEvent, type LayerProgress } from '../index.ts';

const TICK_MS = 150;
/** How long a finished step's output stays under it. */
export const LINGER_MS = 2000;
const TAIL_LINES = 6;
const BLUE = '\x1b[34m';
const RED = '\x1b[31m';
const YELLOW = '\x1b[33m';
const DIM = '\x1b[2m';
const RESET = '\x1b[0m';

interface Step {
  id: string;
  name: string;
  state: 'running' | 'done' | 'cached' | 'error' | 'canceled';
  started: number;
  ended?: number;
  tail: string[];
}

/** `pull 0de7e2ab2f5a  1.2MB / 2.1MB  3.4MB/s` (or its final state). */
export function layerLine(e: LayerProgress, elapsedMs: number): string {
  const mb = (n: number) => `${(n / 1e6).toFixed(1)}MB`;
  const head = `${e.action} ${e.digest.slice(7, 19)}`;
  if (e.status === 'downloading' || e.status === 'uploading' || e.status === 'retrying') {
    const rate = elapsedMs > 0 ? `  ${mb((e.bytes * 1000) / elapsedMs)}/s` : '';
    return `${head}  ${mb(e.bytes)} / ${mb(e.total)}${rate}${e.status === 'retrying' ? '  retrying' : ''}`;
  }
  return `${head}  ${FINAL[e.action][e.status]}  ${mb(e.total)}`;
}

const FINAL = {
  pull: { done: 'Pull complete', exists: 'Already exists', mounted: 'Mounted' },
  push: { done: 'Pushed', exists: 'Layer already exists', mounted: 'Mounted from another repository' },
} as const;

const LABEL: Record<Step['state'], string> = {
  running: '',
  done: '',
  cached: 'CACHED ',
  error: 'ERROR ',
  canceled: 'CANCELED ',
};

const secs = (ms: number) => `${(Math.max(0, ms) / 1000).toFixed(1)}s`;
/** Cut to `w` columns: a wrapped line would break the cursor-up redraw. */
const fit = (s: string, w: number) => (s.length > w ? `${s.slice(0, Math.max(0, w - 3))}...` : s);

/** Takes a build's events; `end()` once the build is over (a failed build sends no `build-done`). */
export type Renderer = ((e: BuildEvent) => void) & { end(): void };

export function ttyRenderer(out: NodeJS.WriteStream, now: () => number = Date.now): Renderer {
  const steps: Step[] = [];
  const warnings: string[] = [];
  let begun: number | undefined;
  let drawn = 0;
  let timer: ReturnType<typeof setInterval> | undefined;
  let stopped = false;
  let result: string | undefined;

  const frame = (final: boolean): string[] => {
    const width = Math.max(40, (out.columns || 80) - 1);
    const t = now();
    const finished = steps.filter((s) => s.state !== 'running').length;
    const lines = [
      `${fit(`[+] Building ${secs(t - (begun ?? t))} (${finished}/${steps.length})${final ? ' FINISHED' : ''}`, width)}`,
    ];
    const row = (label: string, time: string, color: string) =>
      `${color}${fit(label, width - time.length - 1).padEnd(width - time.length - 1)} ${time}${color ? RESET : ''}`;
    for (const s of steps) {
      const color = s.state === 'error' ? RED : s.state === 'canceled' ? YELLOW : s.state === 'running' ? '' : BLUE;
      const label = LABEL[s.state];
      lines.push(row(` => ${label}${s.name}`, secs((s.ended ?? t) - s.started), color));
      const lingering = s.state === 'done' && !final && t - (s.ended ?? t) < LINGER_MS;
      if (s.state === 'running' || s.state === 'error' || lingering) {
        for (const l of s.tail.slice(-TAIL_LINES)) lines.push(`${DIM}${fit(` => => # ${l}`, width)}${RESET}`);
      }
    }
    if (result) lines.push(row(` => ${result}`, '', BLUE));
    return lines;
  };
  const draw = (final = false) => {
    if (stopped) return;
    const lines = frame(final);
    out.write(`${drawn ? `\x1b[${drawn}A\x1b[J` : ''}${lines.join('\n')}\n`);
    drawn = lines.length;
  };
  const stop = () => {
    if (timer) clearInterval(timer);
    timer = undefined;
    draw(true);
    stopped = true;
    if (warnings.length)
      out.write(
        `${YELLOW} ${warnings.length} warning${warnings.length === 1 ? '' : 's'} found:${RESET}\n${warnings.map((w) => ` - ${w}\n`).join('')}`,
      );
  };
  const find = (id: string) => steps.find((s) => s.id === id);

  const render = (e: BuildEvent) => {
    if (stopped) return;
    begun ??= e.time;
    switch (e.type) {
      case 'build-start':
        begun = e.time;
        timer ??= setInterval(() => draw(), TICK_MS);
        timer.unref?.();
        return;
      case 'step-start':
        steps.push({ id: e.id, name: e.name, state: 'running', started: e.time, tail: [] });
        break;
      case 'step-cached':
        if (find(e.id)) find(e.id)!.state = 'cached';
        break;
      case 'step-log':
        find(e.id)?.tail.push(...e.data.split('\n').filter(Boolean));
        break;
      case 'step-done': {
        const s = find(e.id);
        if (!s) return;
        s.ended = s.started + e.durationMs;
        if (s.state === 'running') s.state = 'done';
        break;
      }
      case 'step-error': {
        const s = find(e.id);
        if (s) Object.assign(s, { state: stepCanceled(e) ? 'canceled' : 'error', ended: e.time });
        break; // the siblings this failure stops report next: the final frame waits for end()
      }
      case 'layer-progress': {
        // one line per blob, as docker pull/push show them: bytes, rate, then the final state
        const id = `${e.action}:${e.digest}`;
        let s = find(id);
        if (!s) {
          s = { id, name: '', state: 'running', started: e.time, tail: [] };
          steps.push(s);
        }
        if (e.status !== 'downloading' && e.status !== 'uploading' && e.status !== 'retrying') {
          s.state = 'done';
          s.ended = e.time;
        }
        s.name = layerLine(e, e.time - s.started);
        break;
      }
      case 'warning':
        warnings.push(`${e.message}${e.location ? ` (${e.location.file}:${e.location.line})` : ''}`);
        return;
      case 'build-done':
        result = `writing image ${e.imageId} done`;
        stop();
        return;
      default:
        return;
    }
    draw();
  };
  return Object.assign(render, { end: () => stopped || stop() });
}

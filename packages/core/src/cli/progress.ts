import { BUILD_EVENT_VERSION, stepCanceled, type BuildEvent } from '../index.ts';
import { layerLine, ttyRenderer, type Renderer } from './tty-progress.ts';

export type { Renderer };

export type ProgressMode = 'auto' | 'tty' | 'plain' | 'json' | 'quiet';

/** Renders build events: plain lines for logs, one JSON object per line, or a live tty view. */
export function createRenderer(mode: ProgressMode, out: NodeJS.WriteStream = process.stderr): Renderer {
  const m = mode === 'auto' ? (out.isTTY ? 'tty' : 'plain') : mode;
  if (m === 'tty') return ttyRenderer(out);
  const end = () => undefined; // line modes have nothing to finish
  if (m === 'quiet') return Object.assign(() => undefined, { end });
  // Each line carries the event union's version, so a consumer can tell which shape it reads.
  if (m === 'json')
    return Object.assign(
      (e: BuildEvent) => void out.write(`${JSON.stringify({ version: BUILD_EVENT_VERSION, ...e })}\n`),
      {
        end,
      },
    );
  return Object.assign(plainRenderer(out), { end });
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
        out.write(`${id(e.id)} CACHED${e.from ? ` (registry cache ${e.from})` : ''}\n`);
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
        out.write(stepCanceled(e) ? `${id(e.id)} CANCELED\n` : `${id(e.id)} ERROR: ${e.message}\n`);
        break;
      case 'warning':
        out.write(`WARN: ${e.message}${e.location ? ` (${e.location.file}:${e.location.line})` : ''}\n`);
        break;
      case 'layer-progress':
        if (e.status !== 'downloading' && e.status !== 'uploading') out.write(`${layerLine(e, 0)}\n`);
        break;
      case 'cache-import':
        out.write(
          e.hits || e.layersPulled
            ? `importing cache ${e.ref}: ${e.hits} of ${e.entries} entries used, ${e.layersPulled} layers pulled (${e.bytesPulled} bytes)\n`
            : `importing cache ${e.ref}: ${e.entries} entries\n`,
        );
        break;
      case 'cache-export':
        out.write(
          `exporting cache ${e.ref} (mode=${e.mode}): ${e.entries} entries, ${e.layers} layers, ${e.layersPushed} pushed (${e.bytesPushed} bytes)\n`,
        );
        break;
      case 'build-done':
        out.write(`writing image ${e.imageId} done (manifest ${e.digest}) in ${secs(e.durationMs)}\n`);
        break;
    }
  };
}

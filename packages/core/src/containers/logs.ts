/**
 * Reading a container's json-lines log (written by its monitor): log.jsonl.1 (the rotated part)
 * then log.jsonl; `tail` keeps the last N entries; `follow` goes on reading what is appended
 * (across a rotation) until the container is no longer running and everything was read.
 */
import fsp from 'node:fs/promises';
import path from 'node:path';
import { sleep } from '../exec/cgroups.ts';
import type { LogEntry } from './types.ts';

function parseLines(text: string): LogEntry[] {
  const out: LogEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    try {
      out.push(JSON.parse(line) as LogEntry);
    } catch {
      /* a line cut by a crash: skipped */
    }
  }
  return out;
}

export async function readLogs(dir: string, opts: { tail?: number } = {}): Promise<LogEntry[]> {
  const parts = await Promise.all(
    ['log.jsonl.1', 'log.jsonl'].map((f) => fsp.readFile(path.join(dir, f), 'utf8').catch(() => '')),
  );
  const all = parseLines(parts.join(''));
  return opts.tail !== undefined && opts.tail >= 0 ? all.slice(Math.max(0, all.length - opts.tail)) : all;
}

/**
 * Prints the log as readLogs, then what is appended while `isRunning()` says so; returns once it
 * has ended and the rest is read, or when `signal` fires.
 */
export async function followLogs(
  dir: string,
  opts: {
    tail?: number;
    onEntry: (e: LogEntry) => void;
    isRunning: () => Promise<boolean>;
    signal?: AbortSignal;
  },
): Promise<void> {
  const file = path.join(dir, 'log.jsonl');
  // what exists now, then everything after this offset of this inode
  const first = await fsp.stat(file).catch(() => undefined);
  for (const e of await readLogs(dir, { tail: opts.tail })) opts.onEntry(e);
  let ino = first?.ino;
  let offset = first?.size ?? 0;
  let partial = '';
  for (;;) {
    if (opts.signal?.aborted) return;
    const running = await opts.isRunning();
    const st = await fsp.stat(file).catch(() => undefined);
    if (st && (st.ino !== ino || st.size < offset)) {
      // rotated: the rest of the old file is log.jsonl.1
      if (ino !== undefined) await readFrom(path.join(dir, 'log.jsonl.1'), offset, ino);
      ino = st.ino;
      offset = 0;
    }
    if (st && st.size > offset) await readFrom(file, offset, st.ino);
    if (!running) return;
    await sleep(100);
  }

  async function readFrom(f: string, from: number, inode: number): Promise<void> {
    const fh = await fsp.open(f, 'r').catch(() => undefined);
    if (!fh) return;
    try {
      const st = await fh.stat();
      if (st.ino !== inode || st.size <= from) return;
      const buf = Buffer.alloc(st.size - from);
      await fh.read(buf, 0, buf.length, from);
      if (f === file) offset = st.size;
      const text = partial + buf.toString('utf8');
      const cut = text.lastIndexOf('\n') + 1;
      partial = text.slice(cut);
      for (const e of parseLines(text.slice(0, cut))) opts.onEntry(e);
    } finally {
      await fh.close();
    }
  }
}

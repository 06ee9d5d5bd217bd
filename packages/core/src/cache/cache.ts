import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { assertDigest } from '../store/blobs.ts';
import { writeAtomic, writeAtomicSmall } from '../store/store.ts';
import type { BuildCache, CacheRecord, FileList, StepInputs } from './types.ts';

export type { BuildCache, CacheRecord, FileList, StepInputs };

/** The build cache (the `BuildCache` contract of types.ts) as a directory of JSON files, one per key. */
export class DirBuildCache implements BuildCache {
  /** The dirs made already (a mkdir per step was a thread-pool round trip). */
  private readonly made = new Set<string>();
  constructor(private readonly dir: string) {}

  /** `file`'s dir made (synchronously, once per process: µs). */
  private dirFor(file: string): void {
    const d = path.dirname(file);
    if (this.made.has(d)) return;
    fs.mkdirSync(d, { recursive: true });
    this.made.add(d);
  }

  private file(kind: 'records' | 'inputs', key: string): string {
    assertDigest(key);
    return path.join(this.dir, kind, key.replace(/^sha256:/, ''));
  }

  async get(key: string): Promise<CacheRecord | undefined> {
    const text = await fsp.readFile(this.file('records', key), 'utf8').catch(() => undefined);
    if (!text) return undefined;
    try {
      return JSON.parse(text) as CacheRecord;
    } catch {
      return undefined;
    }
  }

  async put(rec: CacheRecord): Promise<void> {
    const f = this.file('records', rec.key);
    this.dirFor(f);
    writeAtomicSmall(f, JSON.stringify(rec)); // a few hundred bytes: synchronous
  }

  async remove(key: string): Promise<void> {
    await fsp.rm(this.file('records', key), { force: true });
  }

  async keys(): Promise<string[]> {
    const names = await fsp.readdir(path.join(this.dir, 'records')).catch(() => [] as string[]);
    return names.filter((n) => /^[a-f0-9]{64}$/.test(n)).map((n) => `sha256:${n}`);
  }

  async lastInputs(slot: string): Promise<StepInputs | undefined> {
    const text = await fsp.readFile(this.file('inputs', slot), 'utf8').catch(() => undefined);
    if (!text) return undefined;
    try {
      return JSON.parse(text) as StepInputs;
    } catch {
      return undefined; // a torn or corrupt file: the miss reason becomes "not built before"
    }
  }

  async saveInputs(slot: string, inputs: StepInputs): Promise<void> {
    const f = this.file('inputs', slot);
    this.dirFor(f);
    // one piece (under 64 KiB, a RUN's): synchronous; a COPY's may name 200,000 files: streamed
    const pieces = inputsJson(inputs);
    const first = pieces.next();
    const second = pieces.next();
    if (second.done) writeAtomicSmall(f, first.value as string);
    else
      await writeAtomic(
        f,
        (function* () {
          yield first.value as string;
          yield second.value;
          yield* pieces;
        })(),
      );
  }
}

/**
 * JSON.stringify(inputs), in pieces of about 64 KiB: a COPY of 200,000 files names each one, and
 * the whole text at once (with the Buffer it is written from) was the step's memory peak.
 */
export function* inputsJson(inputs: StepInputs): Generator<string> {
  const { files, ...head } = inputs;
  let out = `${JSON.stringify(head).slice(0, -1)},"files":{`;
  let sep = '';
  for (const [k, v] of fileList(files).entries()) {
    out += `${sep}${JSON.stringify(k)}:${JSON.stringify(v)}`;
    sep = ',';
    if (out.length > 1 << 16) {
      yield out;
      out = '';
    }
  }
  yield `${out}}}`;
}

/** Human reason for a miss, comparing with what this Dockerfile location was last built from. */
export function missReason(prev: StepInputs | undefined, now: StepInputs): string {
  if (!prev) return 'not built before';
  if (prev.instruction !== now.instruction) return 'instruction changed';
  for (const k of new Set([...Object.keys(prev.args), ...Object.keys(now.args)])) {
    if (prev.args[k] !== now.args[k]) return `build arg ${k} changed`;
  }
  const changed: string[] = [];
  const [before, after] = [fileList(prev.files), fileList(now.files)];
  for (const [k, v] of before.entries()) if (after.get(k) !== v) changed.push(k);
  for (const [k] of after.entries()) if (before.get(k) === undefined) changed.push(k);
  if (changed.length) {
    const shown = changed.sort().slice(0, 3).join(', ');
    return `file${changed.length > 1 ? 's' : ''} changed: ${shown}${changed.length > 3 ? ` (+${changed.length - 3} more)` : ''}`;
  }
  if (prev.parentKey !== now.parentKey) return 'previous step changed';
  return 'cache record missing (pruned or --no-cache)';
}

/** Either form of a step's files as a FileList (a record's own properties only). */
export function fileList(files: StepInputs['files']): FileList {
  if (typeof files.entries === 'function' && typeof files.get === 'function') return files as FileList;
  const rec = files as Record<string, string>;
  return { entries: () => Object.entries(rec), get: (k) => (Object.hasOwn(rec, k) ? rec[k] : undefined) };
}

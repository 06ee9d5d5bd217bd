/** List a layer tar's entries (names and headers) — for tests, tools and UnionView over tars. */
import type { Readable } from 'node:stream';
import { ByteReader, readTar, type TarEntry } from './tar-format.ts';

export async function listLayer(tar: Readable | NodeJS.ReadableStream): Promise<(TarEntry & { data?: Buffer })[]> {
  const out: (TarEntry & { data?: Buffer })[] = [];
  const r = new ByteReader(tar as AsyncIterable<Buffer>, () => {});
  for await (const e of readTar(r)) {
    if (e.header.type === 'file' && e.header.size <= 1 << 20) {
      const parts: Buffer[] = [];
      for await (const c of e.body()) parts.push(c);
      out.push({ ...e.header, data: Buffer.concat(parts) });
    } else out.push(e.header);
  }
  return out;
}

export async function extractNames(tar: Readable | NodeJS.ReadableStream): Promise<string[]> {
  return (await listLayer(tar)).map((e) => e.name);
}

/** A layer tar's entry headers, one at a time (file bodies are read past, never held): for tools. */
export async function* layerHeaders(tar: Readable | NodeJS.ReadableStream): AsyncGenerator<TarEntry> {
  const r = new ByteReader(tar as AsyncIterable<Buffer>, () => {});
  for await (const e of readTar(r)) {
    for await (const chunk of e.body()) void chunk;
    yield e.header;
  }
}

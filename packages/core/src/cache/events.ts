/**
 * What the registry cache code reports (part of the build's event union, solve/events.ts): the
 * cache imports and exports, warnings, and each layer's transfer.
 */
import type { LayerProgress } from '../registry/events.ts';

/**
 * A registry cache (--cache-from) read: once when read (hits, layers and bytes 0), once before
 * `build-done` with what the build used of it and the compressed bytes it pulled from it.
 */
export interface CacheImportEvent {
  type: 'cache-import';
  ref: string;
  entries: number;
  hits: number;
  layersPulled: number;
  bytesPulled: number;
  time: number;
}

/** A registry cache written (--cache-to): its entries and layers after the merge, and what was uploaded. */
export interface CacheExportEvent {
  type: 'cache-export';
  ref: string;
  mode: 'min' | 'max';
  entries: number;
  layers: number;
  layersPushed: number;
  bytesPushed: number;
  time: number;
}

export type CacheEventSink = (
  e: CacheImportEvent | CacheExportEvent | LayerProgress | { type: 'warning'; message: string; time: number },
) => void;

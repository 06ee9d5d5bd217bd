/** Per-layer transfer progress of a pull or push (rendered like build events: tty, plain, json). */
export interface LayerProgress {
  type: 'layer-progress';
  /** The image reference being pulled or pushed (normalised). */
  ref: string;
  /** The blob's digest as the registry names it (compressed); short ids are its first 12 hex digits. */
  digest: string;
  action: 'pull' | 'push';
  /**
   * `downloading`/`uploading` while bytes move; `done` when stored or uploaded; `exists` when the
   * store (pull) or the registry (push) had it; `mounted` when the registry took it from another repo.
   */
  status: 'downloading' | 'uploading' | 'done' | 'exists' | 'mounted' | 'retrying';
  bytes: number;
  total: number;
  time: number;
}

export type TransferSink = (e: LayerProgress) => void;

/** A sink that reports at most every `ms` per blob while bytes move (final states always). */
export function throttled(sink: TransferSink | undefined, ms = 100): TransferSink {
  if (!sink) return () => undefined;
  const last = new Map<string, number>();
  return (e) => {
    if (e.status === 'downloading' || e.status === 'uploading') {
      const prev = last.get(e.digest) ?? 0;
      if (e.time - prev < ms && e.bytes < e.total) return;
      last.set(e.digest, e.time);
    }
    sink(e);
  };
}

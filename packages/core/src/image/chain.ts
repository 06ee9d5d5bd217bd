import { createHash } from 'node:crypto';

/**
 * OCI ChainID: ChainID(L0..Ln) = sha256(ChainID(L0..Ln-1) + " " + DiffID(Ln)). The name of a
 * committed snapshot, so the store (leases), the layer manager and gc agree on it.
 */
export function chainIds(diffIds: string[]): string[] {
  const out: string[] = [];
  for (const d of diffIds) {
    const prev = out[out.length - 1];
    out.push(prev ? nextChainId(prev, d) : d);
  }
  return out;
}

/**
 * Kept for the process (a pure function of its input): every RUN step computes the chain of its
 * whole stack two or three times, so at depth 100 the hashes alone were half a millisecond a step.
 * Two levels, not one `${prev} ${diffId}` key: the ids are the same string objects each time, whose
 * hashes V8 keeps, where a key made anew would be hashed (and allocated) on every lookup.
 */
const chainMemo = new Map<string, Map<string, string>>();
let chainMemoSize = 0;
const CHAIN_MEMO_MAX = 1 << 14;

function nextChainId(prev: string, diffId: string): string {
  let next = chainMemo.get(prev);
  let id = next?.get(diffId);
  if (id === undefined) {
    id = `sha256:${createHash('sha256').update(`${prev} ${diffId}`).digest('hex')}`;
    if (chainMemoSize >= CHAIN_MEMO_MAX) {
      chainMemo.clear();
      chainMemoSize = 0;
      next = undefined;
    }
    if (!next) chainMemo.set(prev, (next = new Map()));
    next.set(diffId, id);
    chainMemoSize++;
  }
  return id;
}

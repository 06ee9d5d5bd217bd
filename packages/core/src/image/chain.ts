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
 */
const chainMemo = new Map<string, string>();
const CHAIN_MEMO_MAX = 1 << 14;

function nextChainId(prev: string, diffId: string): string {
  const input = `${prev} ${diffId}`;
  let id = chainMemo.get(input);
  if (id === undefined) {
    id = `sha256:${createHash('sha256').update(input).digest('hex')}`;
    if (chainMemo.size >= CHAIN_MEMO_MAX) chainMemo.clear();
    chainMemo.set(input, id);
  }
  return id;
}

/** Layers transfer a few at a time (the registry module's one import site of p-limit). */
import pLimit from 'p-limit';

export const DEFAULT_PARALLEL = 3;

/** `fn` over `items`, at most `n` at once; rejects with the first failure once all have settled. */
export async function eachLimited<T, R>(items: T[], n: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const limit = pLimit(Math.max(1, n));
  return allSettled(items.map((it, i) => limit(() => fn(it, i))));
}

/** Every promise's value; rejects with the first failure once all have settled (none left running). */
export async function allSettled<R>(ps: Promise<R>[]): Promise<R[]> {
  const settled = await Promise.allSettled(ps);
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) throw failed.reason;
  return settled.map((s) => (s as PromiseFulfilledResult<R>).value);
}

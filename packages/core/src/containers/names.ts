/** Container ids and names as docker makes them: 64 hex digits, a 12-digit short form, adjective_name. */
import { randomBytes, randomInt } from 'node:crypto';
import { VlabError } from '@vlab/errors';

export function newId(): string {
  return randomBytes(32).toString('hex');
}

export function shortId(id: string): string {
  return id.slice(0, 12);
}

/** docker's rule (daemon/names): a letter or digit, then letters, digits, `_`, `.`, `-`. */
const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;

export function checkName(name: string): string {
  const n = name.startsWith('/') ? name.slice(1) : name;
  if (!NAME_RE.test(n) || n.length > 128)
    throw new VlabError(
      'E_BAD_ARG',
      `invalid container name "${name}": only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed, at least 2 characters`,
    );
  if (/^[0-9a-f]{64}$/.test(n))
    throw new VlabError('E_BAD_ARG', `invalid container name "${name}": it looks like an id`);
  return n;
}

const ADJECTIVES = `
  agile amber bold brave bright calm clever cosmic crisp curious daring eager earnest fancy fervent
  gentle happy hardy honest jolly keen kind lively lucid mellow merry modest nimble noble patient
  placid proud quiet quirky rapid serene sharp sleepy steady sunny swift tender tidy vivid warm wise
  witty zealous
`
  .trim()
  .split(/\s+/);
const NAMES = `
  agnesi babbage bohr boole cantor curie darwin dijkstra euclid euler faraday fermat feynman gauss
  galois hamming hopper hypatia kepler knuth lamarr lovelace maxwell meitner mendel napier newton
  noether pascal planck ramanujan riemann ritchie sagan shannon thompson torvalds turing volta wiles
`
  .trim()
  .split(/\s+/);

/** A random `adjective_name`; after collisions docker appends a digit, so do we (`attempt` > 0). */
export function randomName(attempt = 0): string {
  const n = `${ADJECTIVES[randomInt(ADJECTIVES.length)]}_${NAMES[randomInt(NAMES.length)]}`;
  return attempt > 0 ? `${n}${randomInt(10)}` : n;
}

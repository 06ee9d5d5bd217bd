/** Test helpers: random filesystem operations (fast-check) and a runner that skips impossible ones. */
import fc from 'fast-check';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { run } from '../sys.ts';

const NAMES = ['a', 'b', 'c', 'dd', 'x'.repeat(120)];
const pathArb = fc.array(fc.constantFrom(...NAMES), { minLength: 1, maxLength: 3 }).map((p) => p.join('/'));
export const opArb = fc.oneof(
  fc.record({ op: fc.constant('write' as const), p: pathArb, data: fc.uint8Array({ maxLength: 3000 }) }),
  fc.record({ op: fc.constant('append' as const), p: pathArb }),
  fc.record({ op: fc.constant('mkdir' as const), p: pathArb }),
  fc.record({ op: fc.constant('rm' as const), p: pathArb }),
  fc.record({ op: fc.constant('rename' as const), p: pathArb, q: pathArb }),
  fc.record({
    op: fc.constant('chmod' as const),
    p: pathArb,
    mode: fc.constantFrom(0o644, 0o4755, 0o2711, 0o1777, 0o600, 0o000),
  }),
  fc.record({ op: fc.constant('chown' as const), p: pathArb, uid: fc.constantFrom(0, 1000, 65534, 3000000) }),
  fc.record({ op: fc.constant('link' as const), p: pathArb, q: pathArb }),
  fc.record({
    op: fc.constant('symlink' as const),
    p: pathArb,
    target: fc.constantFrom('a', '../b', '/etc/passwd', 'y'.repeat(150)),
  }),
  fc.record({
    op: fc.constant('xattr' as const),
    p: pathArb,
    name: fc.constantFrom('user.k', 'security.capability', 'trusted.t'),
  }),
  fc.record({ op: fc.constant('special' as const), p: pathArb, kind: fc.constantFrom('p', 'c', 'b') }),
  fc.record({ op: fc.constant('touch' as const), p: pathArb }),
  fc.record({ op: fc.constant('recreate' as const), p: pathArb }),
);
export type Op = typeof opArb extends fc.Arbitrary<infer T> ? T : never;
// a v2 file capability (cap_net_raw+ep): binary, not UTF-8
export const CAP = Buffer.from('0000000201200000000000000000000000000000', 'hex');

export async function perform(root: string, ops: Op[]): Promise<void> {
  const P = (p: string) => path.join(root, p);
  for (const o of ops) {
    try {
      if (o.op === 'write' || o.op === 'append') {
        // opening a fifo for writing blocks until a reader comes; devices are not files to write
        const st = await fs.lstat(P(o.p)).catch(() => undefined);
        if (st && !st.isFile() && !st.isDirectory()) continue;
      }
      switch (o.op) {
        case 'write':
          await fs.writeFile(P(o.p), o.data);
          break;
        case 'append':
          await fs.appendFile(P(o.p), 'more');
          break;
        case 'mkdir':
          await fs.mkdir(P(o.p));
          break;
        case 'rm':
          await fs.rm(P(o.p), { recursive: true });
          break;
        case 'rename':
          await fs.rename(P(o.p), P(o.q));
          break;
        case 'chmod':
          await fs.chmod(P(o.p), o.mode);
          break;
        case 'chown':
          await fs.lchown(P(o.p), o.uid, o.uid + 1);
          break;
        case 'link':
          await fs.link(P(o.p), P(o.q));
          break;
        case 'symlink':
          await fs.symlink(o.target, P(o.p));
          break;
        case 'xattr':
          await run('setfattr', [
            '-h',
            '-n',
            o.name,
            '-v',
            o.name === 'security.capability' ? `0x${CAP.toString('hex')}` : 'v1',
            P(o.p),
          ]);
          break;
        case 'special':
          await run('mknod', [P(o.p), o.kind, ...(o.kind === 'p' ? [] : ['1', '7'])]);
          break;
        case 'touch':
          await fs.utimes(P(o.p), 1_500_000_000, 1_500_000_000);
          break;
        case 'recreate':
          await fs.rm(P(o.p), { recursive: true });
          await fs.mkdir(P(o.p));
          await fs.writeFile(P(`${o.p}/n`), 'new');
          break;
      }
    } catch {
      /* ops that make no sense on the current tree are skipped */
    }
  }
}

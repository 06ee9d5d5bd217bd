/**
 * Entitlements (BuildKit's `--allow`): what a Dockerfile may ask for only when the user who runs
 * the build grants it on the command line. The Dockerfile is untrusted; the command line is not.
 */
import { VlabError } from '@vlab/errors';
import type { RunInstruction } from '@vlab/dockerfile';

export const ENTITLEMENTS = ['network.host', 'security.insecure'] as const;
export type Entitlement = (typeof ENTITLEMENTS)[number];

/**
 * The granted set. A build-wide `--network host` is the user's own choice for every RUN, so it
 * also grants `network.host` to a `RUN --network=host`. Unknown names are E_BAD_ARG.
 */
export function grantedEntitlements(
  allow: readonly string[] = [],
  network?: 'none' | 'host',
): ReadonlySet<Entitlement> {
  const out = new Set<Entitlement>();
  for (const a of allow) {
    if (!(ENTITLEMENTS as readonly string[]).includes(a)) {
      throw new VlabError('E_BAD_ARG', `unknown entitlement "${a}" for --allow (valid: ${ENTITLEMENTS.join(', ')})`);
    }
    out.add(a as Entitlement);
  }
  if (network === 'host') out.add('network.host');
  return out;
}

/**
 * Throws E_ENTITLEMENT when the RUN asks for what was not granted, before the cache is looked
 * at (a cached step asks for the same). A granted `--security=insecure` (all capabilities, no
 * seccomp, in BuildKit) is E_UNSUPPORTED: vbuild has no insecure mode.
 */
export function checkRunEntitlements(inst: RunInstruction, granted: ReadonlySet<Entitlement>): void {
  const need = (e: Entitlement, flag: string) => {
    if (!granted.has(e)) {
      throw new VlabError(
        'E_ENTITLEMENT',
        `RUN ${flag} needs the ${e} entitlement, which only the command line can grant: build with --allow ${e} (API: allow: ['${e}'])`,
        {
          details: { entitlement: e },
        },
      );
    }
  };
  if (inst.network === 'host') need('network.host', '--network=host');
  if (inst.security === 'insecure') {
    need('security.insecure', '--security=insecure');
    throw new VlabError(
      'E_UNSUPPORTED',
      'RUN --security=insecure (all capabilities, no seccomp) is not supported by vbuild: drop the flag, or build this step with BuildKit',
    );
  }
}

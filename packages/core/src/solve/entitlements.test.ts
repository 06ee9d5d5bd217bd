import { describe, expect, it } from 'vitest';
import { parse, type RunInstruction } from '@vlab/dockerfile';
import { checkRunEntitlements, grantedEntitlements } from './entitlements.ts';

const run = (line: string) => parse(`FROM x\n${line}\n`).stages[0]!.instructions[0] as RunInstruction;

describe('entitlements', () => {
  it('RUN --network=host needs network.host: from --allow, or from a build-wide --network host', () => {
    const r = run('RUN --network=host true');
    expect(() => checkRunEntitlements(r, grantedEntitlements())).toThrow(
      expect.objectContaining({ code: 'E_ENTITLEMENT', message: expect.stringContaining('--allow network.host') }),
    );
    expect(() => checkRunEntitlements(r, grantedEntitlements(['network.host']))).not.toThrow();
    expect(() => checkRunEntitlements(r, grantedEntitlements([], 'host'))).not.toThrow();
    expect(() => checkRunEntitlements(r, grantedEntitlements([], 'none'))).toThrow(
      expect.objectContaining({ code: 'E_ENTITLEMENT' }),
    );
    for (const ok of [
      'RUN true',
      'RUN --network=none true',
      'RUN --network=default true',
      'RUN --security=sandbox true',
    ]) {
      expect(() => checkRunEntitlements(run(ok), grantedEntitlements())).not.toThrow();
    }
  });

  it('RUN --security=insecure needs security.insecure, and is then E_UNSUPPORTED', () => {
    const r = run('RUN --security=insecure true');
    expect(() => checkRunEntitlements(r, grantedEntitlements(['network.host']))).toThrow(
      expect.objectContaining({ code: 'E_ENTITLEMENT', message: expect.stringContaining('--allow security.insecure') }),
    );
    expect(() => checkRunEntitlements(r, grantedEntitlements(['security.insecure']))).toThrow(
      expect.objectContaining({ code: 'E_UNSUPPORTED' }),
    );
  });

  it('an unknown entitlement is E_BAD_ARG', () => {
    expect(() => grantedEntitlements(['network.hostt'])).toThrow(expect.objectContaining({ code: 'E_BAD_ARG' }));
  });
});

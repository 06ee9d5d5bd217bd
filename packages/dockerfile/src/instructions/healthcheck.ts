/** HEALTHCHECK NONE | HEALTHCHECK [--interval=… --timeout=… --start-period=… --start-interval=… --retries=N] CMD … */
import type { HealthcheckInstruction } from '../types.ts';
import { base, fail, stringArgs, type BuildContext } from './common.ts';
import { parseFlags, str } from './flags.ts';

const UNIT: Record<string, number> = { ns: 1, us: 1e3, µs: 1e3, μs: 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };

/** Go's time.ParseDuration, in nanoseconds; undefined when invalid. */
export function parseGoDuration(s: string): number | undefined {
  if (s === '0') return 0;
  const m = /^([-+]?)((?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+)$/.exec(s);
  if (!m) return undefined;
  let total = 0;
  for (const part of m[2].matchAll(/(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/g)) {
    total += Number(part[1]) * UNIT[part[2]];
  }
  return Math.round(m[1] === '-' ? -total : total);
}

export function buildHealthcheck(ctx: BuildContext): HealthcheckInstruction {
  const flags = parseFlags(ctx, 'HEALTHCHECK', {
    interval: 'string',
    timeout: 'string',
    'start-period': 'string',
    'start-interval': 'string',
    retries: 'string',
  });
  const args = stringArgs(ctx);
  if (args.length === 0) fail(ctx, 'HEALTHCHECK requires an argument: NONE or CMD <command>');
  const type = args[0].toUpperCase();
  if (type === 'NONE') {
    if (args.length !== 1) fail(ctx, 'HEALTHCHECK NONE takes no arguments');
    return { kind: 'HEALTHCHECK', ...base(ctx, flags), test: ['NONE'] };
  }
  if (type !== 'CMD') fail(ctx, `Unknown type "${args[0]}" in HEALTHCHECK (try CMD)`);
  const cmd = args.slice(1);
  if (cmd.length === 0 && !ctx.node.json) fail(ctx, 'Missing command after HEALTHCHECK CMD');
  const test = ctx.node.json ? ['CMD', ...cmd] : ['CMD-SHELL', cmd[0]];
  const inst: HealthcheckInstruction = { kind: 'HEALTHCHECK', ...base(ctx, flags), test };
  const dur = (flag: string, key: 'interval' | 'timeout' | 'startPeriod' | 'startInterval') => {
    const v = str(flags, flag);
    if (v === undefined) return;
    const ns = parseGoDuration(v);
    if (ns === undefined) fail(ctx, `invalid duration "${v}" for --${flag} (e.g. 30s, 1m30s)`, 'E_BAD_FLAG');
    if (ns! < 0) fail(ctx, `--${flag} cannot be negative (${v})`, 'E_BAD_FLAG');
    if (ns! !== 0 && ns! < 1e6) fail(ctx, `--${flag} cannot be less than 1ms (${v})`, 'E_BAD_FLAG');
    inst[key] = ns!;
  };
  dur('interval', 'interval');
  dur('timeout', 'timeout');
  dur('start-period', 'startPeriod');
  dur('start-interval', 'startInterval');
  const retries = str(flags, 'retries');
  if (retries !== undefined) {
    if (!/^[-+]?\d+$/.test(retries))
      fail(ctx, `invalid --retries value "${retries}": expected an integer`, 'E_BAD_FLAG');
    const n = Number(retries);
    if (n < 0) fail(ctx, `--retries cannot be negative (${n})`, 'E_BAD_FLAG');
    inst.retries = n;
  }
  return inst;
}

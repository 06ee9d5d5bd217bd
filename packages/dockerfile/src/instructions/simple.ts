/** One-string and list instructions: WORKDIR, USER, STOPSIGNAL, MAINTAINER, EXPOSE, VOLUME. */
import type {
  ExposeInstruction,
  MaintainerInstruction,
  StopSignalInstruction,
  UserInstruction,
  VolumeInstruction,
  WorkdirInstruction,
} from '../types.ts';
import { base, fail, requireArgs, stringArgs, type BuildContext } from './common.ts';
import { parseFlags } from './flags.ts';

function one(ctx: BuildContext, kind: 'WORKDIR' | 'USER' | 'STOPSIGNAL' | 'MAINTAINER') {
  const flags = parseFlags(ctx, kind, {});
  const args = stringArgs(ctx);
  requireArgs(ctx, kind, args, 'exactlyOne');
  return { b: base(ctx, flags), value: args[0] };
}

export function buildWorkdir(ctx: BuildContext): WorkdirInstruction {
  const { b, value } = one(ctx, 'WORKDIR');
  return { kind: 'WORKDIR', ...b, path: value };
}
export function buildUser(ctx: BuildContext): UserInstruction {
  const { b, value } = one(ctx, 'USER');
  return { kind: 'USER', ...b, user: value };
}
export function buildStopSignal(ctx: BuildContext): StopSignalInstruction {
  const { b, value } = one(ctx, 'STOPSIGNAL');
  return { kind: 'STOPSIGNAL', ...b, signal: value };
}
export function buildMaintainer(ctx: BuildContext): MaintainerInstruction {
  const { b, value } = one(ctx, 'MAINTAINER');
  return { kind: 'MAINTAINER', ...b, maintainer: value };
}
export function buildExpose(ctx: BuildContext): ExposeInstruction {
  const flags = parseFlags(ctx, 'EXPOSE', {});
  const ports = stringArgs(ctx);
  requireArgs(ctx, 'EXPOSE', ports, 'atLeastOne');
  return { kind: 'EXPOSE', ...base(ctx, flags), ports };
}
export function buildVolume(ctx: BuildContext): VolumeInstruction {
  const flags = parseFlags(ctx, 'VOLUME', {});
  const paths = stringArgs(ctx);
  requireArgs(ctx, 'VOLUME', paths, 'atLeastOne');
  for (const p of paths) if (p.trim() === '') fail(ctx, 'VOLUME specified can not be an empty string');
  return { kind: 'VOLUME', ...base(ctx, flags), paths };
}

import path from 'node:path';
import type { Instruction } from '@vlab/dockerfile';
import type { ContainerConfig, ImageConfig } from '../../image/types.ts';

export const DEFAULT_SHELL = ['/bin/sh', '-c'];

export function shellOf(c: ContainerConfig): string[] {
  return c.Shell && c.Shell.length ? c.Shell : DEFAULT_SHELL;
}

/** ENV KEY=V: a key already set is replaced where it stands (BuildKit's addEnv), a new one goes last. */
export function setEnv(env: string[] | undefined, key: string, value: string): string[] {
  const keyOf = (e: string) => e.slice(0, e.indexOf('=') < 0 ? e.length : e.indexOf('='));
  const out = [...(env ?? [])];
  const at = out.findIndex((e) => keyOf(e) === key);
  if (at < 0) out.push(`${key}=${value}`);
  else out[at] = `${key}=${value}`;
  return out;
}

export function envToRecord(env: string[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of env ?? []) {
    const i = e.indexOf('=');
    if (i < 0) out[e] = '';
    else out[e.slice(0, i)] = e.slice(i + 1);
  }
  return out;
}

/** Resolve WORKDIR against the current one, as docker does. */
export function resolveWorkdir(current: string | undefined, p: string): string {
  return path.posix.resolve(current || '/', p);
}

/**
 * Apply a config-only instruction (already expanded). `state.cmdSet` tracks whether this stage set
 * CMD, because ENTRYPOINT resets an inherited CMD but not one set in the same stage (BuildKit).
 */
export function applyMeta(img: ImageConfig, inst: Instruction, state: { cmdSet: boolean }): ImageConfig {
  const config: ContainerConfig = { ...img.config };
  const out: ImageConfig = { ...img, config };
  switch (inst.kind) {
    case 'ENV':
      for (const { key, value } of inst.pairs) config.Env = setEnv(config.Env, key, value);
      break;
    case 'LABEL':
      config.Labels = { ...(config.Labels ?? {}) };
      for (const { key, value } of inst.pairs) config.Labels[key] = value;
      break;
    case 'EXPOSE':
      config.ExposedPorts = { ...(config.ExposedPorts ?? {}) };
      for (const p of inst.ports) config.ExposedPorts[p.includes('/') ? p.toLowerCase() : `${p}/tcp`] = {};
      break;
    case 'VOLUME':
      config.Volumes = { ...(config.Volumes ?? {}) };
      for (const p of inst.paths) config.Volumes[p] = {};
      break;
    case 'CMD':
      config.Cmd = inst.form === 'exec' ? inst.command : [...shellOf(config), inst.command.join(' ')];
      state.cmdSet = true;
      break;
    case 'ENTRYPOINT':
      config.Entrypoint = inst.form === 'exec' ? inst.command : [...shellOf(config), inst.command.join(' ')];
      if (!state.cmdSet) config.Cmd = null;
      break;
    case 'USER':
      config.User = inst.user;
      break;
    case 'SHELL':
      config.Shell = inst.argv;
      break;
    case 'STOPSIGNAL':
      config.StopSignal = inst.signal;
      break;
    case 'HEALTHCHECK':
      config.Healthcheck = {
        Test: inst.test,
        ...(inst.interval !== undefined && { Interval: inst.interval }),
        ...(inst.timeout !== undefined && { Timeout: inst.timeout }),
        ...(inst.startPeriod !== undefined && { StartPeriod: inst.startPeriod }),
        ...(inst.startInterval !== undefined && { StartInterval: inst.startInterval }),
        ...(inst.retries !== undefined && { Retries: inst.retries }),
      };
      break;
    case 'ONBUILD':
      config.OnBuild = [...(config.OnBuild ?? []), inst.triggerText];
      break;
    case 'MAINTAINER':
      out.author = inst.maintainer;
      break;
    case 'ARG':
      break;
    default:
      throw new Error(`applyMeta: ${inst.kind} is not a config-only instruction`);
  }
  return out;
}

/** docker history `created_by` text for an instruction. */
export function createdBy(inst: Instruction, shell: string[]): string {
  if (inst.kind === 'RUN') {
    const argv = inst.form === 'exec' ? inst.command : [...shell, inst.command.join(' ')];
    return `RUN ${argv.join(' ')} # vlab`;
  }
  const text = inst.original.replace(/\s*\\\r?\n\s*/g, ' ').trim();
  const sp = text.search(/\s/);
  return sp < 0 ? inst.kind : `${inst.kind}${text.slice(sp)}`;
}

import { platformString } from './platform.ts';

/** Docker's predefined platform args (BuildKit sets them for every build). */
export function predefinedArgs(p: { os: string; architecture: string; variant?: string }): Record<string, string> {
  const plat = platformString(p);
  const out: Record<string, string> = {};
  for (const prefix of ['TARGET', 'BUILD']) {
    out[`${prefix}PLATFORM`] = plat;
    out[`${prefix}OS`] = p.os;
    out[`${prefix}ARCH`] = p.architecture;
    out[`${prefix}VARIANT`] = p.variant ?? '';
  }
  return out;
}

/** Picking one image of a multi-platform index (docker's platform matcher, reduced). */
import { VlabError } from '@vlab/errors';
import type { Descriptor } from '../image/types.ts';
import { hostPlatform, platformString } from '../image/platform.ts';

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

/** `os/arch[/variant]` (docker's --platform); E_BAD_ARG otherwise. */
export function parsePlatform(s: string | undefined): Platform {
  if (!s) return hostPlatform();
  const parts = s.toLowerCase().split('/');
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => !/^[a-z0-9_.-]+$/.test(p)))
    throw new VlabError(
      'E_BAD_ARG',
      `--platform "${s}": expected os/arch[/variant], e.g. linux/amd64 or linux/arm64/v8`,
    );
  const [os, architecture, variant] = parts as [string, string, string?];
  return { os, architecture: architecture === 'x86_64' ? 'amd64' : architecture, variant };
}

// arm64 is v8 unless said otherwise; amd64 has no variants that matter to us
const normVariant = (p: Platform) => p.variant ?? (p.architecture === 'arm64' ? 'v8' : undefined);

/** The index entry for `want`; E_IMAGE_NOT_FOUND, listing what there is, when none matches. */
export function pickPlatform(list: Descriptor[], want: Platform, where: string): Descriptor {
  const fits = list.filter(
    (d) => d.platform && d.platform.os === want.os && d.platform.architecture === want.architecture,
  );
  const exact = fits.find((d) => normVariant(d.platform!) === normVariant(want));
  const chosen = exact ?? (want.variant ? undefined : fits[0]);
  if (chosen) return chosen;
  const have = list.filter((d) => d.platform).map((d) => platformString(d.platform!));
  throw new VlabError(
    'E_IMAGE_NOT_FOUND',
    `${where}: no image for platform ${platformString(want)} (the index has ${have.join(', ') || 'no platforms'}); pick one with --platform`,
  );
}

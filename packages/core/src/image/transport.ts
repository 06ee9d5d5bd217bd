/**
 * The one parser of transport references (`oci-layout://DIR[:TAG]`, `oci-archive:FILE[:TAG]`,
 * `docker-archive:FILE`, `docker-image://REF`), for named contexts, the Dockerfile check that
 * refuses them and the loader. The prefix is case-insensitive, as BuildKit's; `//` after it is
 * optional (a path then follows either way).
 */
import { VlabError } from '@vlab/errors';

export type Transport = 'oci-layout' | 'oci-archive' | 'docker-archive' | 'docker-image';

export type TransportRef =
  | { transport: 'oci-layout' | 'oci-archive'; path: string; tag?: string }
  | { transport: 'docker-archive'; path: string }
  | { transport: 'docker-image'; ref: string };

const PREFIX = /^(oci-layout|oci-archive|docker-archive|docker-image):/i;

/** The transport `ref` starts with, or undefined when it names none. */
export function transportOf(ref: string): Transport | undefined {
  return PREFIX.exec(ref)?.[1]!.toLowerCase() as Transport | undefined;
}

/** `ref` split into its parts; undefined without a transport prefix, E_BAD_ARG when nothing follows it. */
export function parseTransportRef(ref: string): TransportRef | undefined {
  const transport = transportOf(ref);
  if (!transport) return undefined;
  let rest = ref.slice(transport.length + 1);
  if (transport === 'oci-layout' || transport === 'docker-image') rest = rest.replace(/^\/\//, '');
  if (!rest) throw new VlabError('E_BAD_ARG', `${ref}: nothing after ${transport}: (expected ${USAGE[transport]})`);
  if (transport === 'docker-image') return { transport, ref: rest };
  if (transport === 'docker-archive') return { transport, path: rest };
  const colon = rest.indexOf(':');
  const path = colon < 0 ? rest : rest.slice(0, colon);
  const tag = colon < 0 ? undefined : rest.slice(colon + 1);
  if (!path || tag === '') throw new VlabError('E_BAD_ARG', `${ref}: expected ${USAGE[transport]}`);
  return { transport, path, tag };
}

const USAGE: Record<Transport, string> = {
  'oci-layout': 'oci-layout://DIR[:TAG]',
  'oci-archive': 'oci-archive:FILE[:TAG]',
  'docker-archive': 'docker-archive:FILE',
  'docker-image': 'docker-image://REF',
};

/** The builders in table order: ours first, then the peers. BENCH_PEERS=a,b selects some. */
import { ChImagePeer } from './chimage.ts';
import { ContainersPeer } from './containers.ts';
import { DockerPeer } from './docker.ts';
import type { Peer } from './types.ts';
import { VlabApi } from './vlab.ts';
import { VlabCli } from './vlab-cli.ts';

export function makePeers(list?: string): Peer[] {
  const all: Peer[] = [
    new VlabApi(),
    new VlabCli(true),
    new VlabCli(false),
    new DockerPeer('buildkit', true),
    new DockerPeer('docker-classic', false),
    new ContainersPeer('buildah-chroot', 'buildah', 'chroot'),
    new ContainersPeer('buildah-oci', 'buildah', 'oci'),
    new ContainersPeer('podman', 'podman', 'oci'),
    new ChImagePeer(),
  ];
  if (!list) return all;
  const want = list.split(',').map((x) => x.trim());
  const unknown = want.filter((w) => !all.some((p) => p.name === w));
  if (unknown.length)
    throw new Error(`unknown BENCH_PEERS: ${unknown.join(', ')} (have ${all.map((p) => p.name).join(', ')})`);
  return all.filter((p) => want.includes(p.name));
}

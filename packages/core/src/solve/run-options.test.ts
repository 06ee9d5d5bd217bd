import { describe, expect, it } from 'vitest';
import { checkPlatform, parseExtraHosts, parseUlimits, shmMount } from './run-options.ts';

describe('docker build RUN options', () => {
  it('--add-host: host:ip and host=ip, v6 too; bad names, bad IPs and host-gateway refused', () => {
    expect(parseExtraHosts(['db:10.0.0.5', 'v6:::1', 'b=[fe80::1]'])).toEqual([
      { host: 'db', ip: '10.0.0.5' },
      { host: 'v6', ip: '::1' },
      { host: 'b', ip: 'fe80::1' },
    ]);
    expect(() => parseExtraHosts(['db:notanip'])).toThrow(/E_BAD_ARG|expected HOST:IP/);
    expect(() => parseExtraHosts(['bad host:1.2.3.4'])).toThrow(/expected HOST:IP/);
    expect(() => parseExtraHosts(['gw:host-gateway'])).toThrow(/bridge network/);
  });

  it('--ulimit: nofile only, soft = hard', () => {
    expect(parseUlimits(['nofile=4096'])).toEqual({ nofile: 4096 });
    expect(parseUlimits(['nofile=4096:4096'])).toEqual({ nofile: 4096 });
    expect(() => parseUlimits(['nproc=10'])).toThrow(/only nofile is supported/);
    expect(() => parseUlimits(['nofile=1024:4096'])).toThrow(/must be equal/);
    expect(() => parseUlimits(['nofile'])).toThrow(/NAME=SOFT/);
  });

  it('--shm-size: a tmpfs over /dev/shm of that size; --platform: the host only', () => {
    expect(shmMount('8m')).toEqual([
      { type: 'tmpfs', target: '/dev/shm', options: ['noexec', 'mode=1777', 'size=8388608'] },
    ]);
    expect(shmMount(undefined)).toEqual([]);
    const host = { os: 'linux', architecture: 'amd64' };
    expect(() => checkPlatform('linux/amd64', host)).not.toThrow();
    expect(() => checkPlatform('linux/x86_64,local', host)).not.toThrow();
    expect(() => checkPlatform('linux/arm64', host)).toThrow(/only the host platform linux\/amd64/);
    expect(() => checkPlatform('linux/amd64,linux/arm64', host)).toThrow(/linux\/arm64/);
  });
});

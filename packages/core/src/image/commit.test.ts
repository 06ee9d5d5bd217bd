import { describe, expect, it } from 'vitest';
import { applyChanges } from './commit.ts';
import type { ImageConfig } from './types.ts';

const img = (): ImageConfig => ({
  architecture: 'amd64',
  os: 'linux',
  rootfs: { type: 'layers', diff_ids: [] },
  history: [],
  config: { Env: ['PATH=/bin', 'A=1'], Cmd: ['sh'], WorkingDir: '/w' },
});

describe('commit --change', () => {
  it("applies docker commit's instructions as a Dockerfile says them", () => {
    const c = applyChanges(img(), [
      'ENV A=2 B=3',
      'CMD ["/bin/app", "-x"]',
      'WORKDIR sub',
      'EXPOSE 8080',
      'LABEL k=v',
      'USER 1000:1000',
      'VOLUME /data',
    ]).config;
    expect(c).toEqual({
      Env: ['PATH=/bin', 'A=2', 'B=3'],
      Cmd: ['/bin/app', '-x'],
      WorkingDir: '/w/sub',
      ExposedPorts: { '8080/tcp': {} },
      Labels: { k: 'v' },
      User: '1000:1000',
      Volumes: { '/data': {} },
    });
    // ENTRYPOINT resets an inherited Cmd, as in a build
    expect(applyChanges(img(), ['ENTRYPOINT ["/e"]']).config.Cmd).toBeNull();
  });

  it('refuses what docker commit refuses: E_BAD_ARG, E_PARSE', () => {
    expect(() => applyChanges(img(), ['RUN true'])).toThrow(expect.objectContaining({ code: 'E_BAD_ARG' }));
    expect(() => applyChanges(img(), ['FROM x'])).toThrow(expect.objectContaining({ code: 'E_BAD_ARG' }));
    expect(() => applyChanges(img(), [''])).toThrow(expect.objectContaining({ code: 'E_PARSE' }));
  });
});

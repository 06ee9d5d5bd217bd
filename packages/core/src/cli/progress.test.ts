import { describe, expect, it } from 'vitest';
import { createRenderer } from './progress.ts';
import { BUILD_EVENT_VERSION, type BuildEvent } from '../solve/events.ts';

function sink(isTTY: boolean) {
  let text = '';
  const out = { isTTY, write: (s: string) => ((text += s), true) } as unknown as NodeJS.WriteStream;
  return { out, text: () => text };
}

const ref = { id: '0:1', name: '[stage-0 1/2] RUN make', stage: 'stage-0' };
const ref2 = { id: '0:2', name: '[stage-0 2/2] COPY . /app', stage: 'stage-0' };
const events: BuildEvent[] = [
  { type: 'build-start', stages: 1, steps: 2, time: 0 },
  { type: 'step-start', ...ref, time: 0 },
  { type: 'step-miss', ...ref, reason: 'file changed: Makefile', time: 1 },
  { type: 'step-log', ...ref, stream: 'stdout', data: 'compiling a.c\ncompiling b.c\n', time: 2 },
  { type: 'step-done', ...ref, cached: false, durationMs: 1500, time: 3 },
  { type: 'step-start', ...ref2, time: 3 },
  { type: 'step-cached', ...ref2, time: 3 },
  { type: 'step-done', ...ref2, cached: true, durationMs: 0, time: 3 },
  {
    type: 'build-done',
    imageId: 'sha256:abc',
    digest: 'sha256:def',
    durationMs: 1600,
    time: 4,
    contextFilesHashed: 0,
    contextHashHits: 0,
  },
];

describe('progress renderers', () => {
  it('plain: numbered steps, miss reasons, log lines, CACHED and timings', () => {
    const s = sink(false);
    const r = createRenderer('auto', s.out);
    events.forEach(r);
    expect(s.text()).toContain('#1 [stage-0 1/2] RUN make');
    expect(s.text()).toContain('#1 cache miss: file changed: Makefile');
    expect(s.text()).toContain('#1 compiling b.c');
    expect(s.text()).toContain('#1 DONE 1.5s');
    expect(s.text()).toContain('#2 CACHED');
  });

  it('plain and tty: a step the build stopped (a sibling stage failed) is CANCELED, a failed one ERROR', () => {
    const sib = { id: '1:1', name: '[slow 1/2] RUN sleep 9', stage: 'slow' };
    // the order a real build emits: the failing step first, then the sibling it stopped
    const stopped: BuildEvent[] = [
      { type: 'step-start', ...ref, time: 0 },
      { type: 'step-start', ...sib, time: 0 },
      { type: 'step-error', ...ref, code: 'E_RUN_FAILED', message: 'exit code 7', time: 2 },
      { type: 'step-error', ...sib, code: 'E_RUN_ABORTED', message: 'the build container was killed', time: 3 },
    ];
    const plain = sink(false);
    stopped.forEach(createRenderer('plain', plain.out));
    expect(plain.text().split('\n')).toEqual(expect.arrayContaining(['#2 CANCELED', '#1 ERROR: exit code 7']));
    expect(plain.text()).not.toContain('killed');
    const tty = sink(true);
    const r = createRenderer('tty', tty.out);
    stopped.forEach(r);
    r.end(); // the build has failed
    const last = tty.text().split('\x1b[J').pop()!;
    expect(last).toContain('\x1b[33m => CANCELED [slow 1/2] RUN sleep 9');
    expect(last).toContain('\x1b[31m => ERROR [stage-0 1/2] RUN make');
    expect(last).toContain('(2/2) FINISHED');
  });

  it('tty: redraws step lines with CACHED and the live tail of RUN output', () => {
    const s = sink(true);
    const r = createRenderer('auto', s.out);
    events.slice(0, 4).forEach(r);
    expect(s.text()).toContain('=> => # compiling b.c'); // live tail while running
    events.slice(4).forEach(r);
    const last = s.text().split('\x1b[J').pop()!;
    expect(last).toContain('CACHED [stage-0 2/2] COPY . /app');
    expect(last).toContain('1.5s');
    expect(last).not.toContain('compiling'); // the tail goes once the step is done
  });

  it('json: one parseable event per line', () => {
    const s = sink(false);
    const r = createRenderer('json', s.out);
    events.forEach(r);
    expect(
      s
        .text()
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l).type),
    ).toEqual(events.map((e) => e.type));
  });
});

describe('layer transfer progress', () => {
  const d1 = `sha256:${'1'.repeat(64)}`;
  const d2 = `sha256:${'2'.repeat(64)}`;
  const base = { type: 'layer-progress', ref: 'r/x:1', total: 4e6 } as const;
  const transfer: BuildEvent[] = [
    { ...base, digest: d1, action: 'pull', status: 'downloading', bytes: 1e6, time: 1000 },
    { ...base, digest: d2, action: 'pull', status: 'exists', bytes: 4e6, time: 1000 },
    { ...base, digest: d1, action: 'pull', status: 'downloading', bytes: 2e6, time: 2000 },
    { ...base, digest: d1, action: 'pull', status: 'done', bytes: 4e6, time: 3000 },
  ];

  it('plain: one line per layer once it is settled', () => {
    const s = sink(false);
    const r = createRenderer('plain', s.out);
    transfer.forEach(r);
    expect(s.text()).toBe('pull 222222222222  Already exists  4.0MB\npull 111111111111  Pull complete  4.0MB\n');
  });

  it('tty: bytes and rate while it moves, the final state after', () => {
    const s = sink(true);
    const r = createRenderer('tty', s.out);
    transfer.slice(0, 3).forEach(r);
    // 2 MB in the 1 s since the layer's first event
    expect(s.text()).toContain('pull 111111111111  2.0MB / 4.0MB  2.0MB/s');
    r(transfer[3]!);
    expect(s.text()).toContain('pull 111111111111  Pull complete  4.0MB');
  });

  it('json: the events as they are', () => {
    const s = sink(false);
    createRenderer('json', s.out)(transfer[1]!);
    expect(JSON.parse(s.text())).toEqual({ version: BUILD_EVENT_VERSION, ...transfer[1] });
  });
});

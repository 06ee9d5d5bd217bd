/**
 * Per-step times of RUN steps, for the depth rows (steps100): from a builder's plain progress
 * (BuildKit and vbuild both print `#N [stage i/n] RUN …` when a step starts and `#N DONE` when it
 * ends), timestamped as the lines arrive, so the 0.1 s rounding of `DONE 0.0s` does not matter.
 * A step lasts from its header line to the next step's header (the last one: to its DONE line).
 */
export interface Stamped {
  t: number;
  line: string;
}

const HEADER = /^#(\d+) \[[^\]]*\] RUN /;

/** Seconds each RUN step that was built took, in build order (cached steps left out). */
export function runStepTimes(lines: Stamped[]): number[] {
  const starts: { id: string; t: number }[] = [];
  const seen = new Set<string>();
  const cached = new Set<string>();
  let lastDone = 0;
  for (const { t, line } of lines) {
    const h = HEADER.exec(line);
    if (h && !seen.has(h[1]!)) {
      seen.add(h[1]!);
      starts.push({ id: h[1]!, t });
    }
    const c = /^#(\d+) CACHED$/.exec(line);
    if (c) cached.add(c[1]!);
    if (/^#\d+ DONE/.test(line)) lastDone = t;
  }
  const out: number[] = [];
  starts.forEach((s, i) => {
    const end = i + 1 < starts.length ? starts[i + 1]!.t : lastDone;
    if (!cached.has(s.id) && end >= s.t) out.push(end - s.t);
  });
  return out;
}

export interface DepthSplit {
  steps: number;
  mean: number;
  /** medians */
  first: number;
  last: number;
}

/**
 * Mean seconds per step overall; median of the first `k` and of the last `k` steps (a median: one
 * step slowed by the machine's other load does not tip the comparison).
 */
export function depthSplit(times: number[] | undefined, k = 10): DepthSplit | undefined {
  if (!times || times.length < 2 * k) return undefined;
  const mean = times.reduce((a, b) => a + b, 0) / times.length;
  const median = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
  };
  return { steps: times.length, mean, first: median(times.slice(0, k)), last: median(times.slice(-k)) };
}

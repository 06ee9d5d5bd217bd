/**
 * The built-in executor's per-run cgroups, kept off a RUN step's critical path (bench/README.md,
 * "RUN steps"): while one run goes on, the cgroup of the next is made, with its limits, and a
 * vlab-init launch process already moved inside (a zygote: a move into a cgroup waits for an RCU
 * grace period, 4-13 ms here, so the zygote pays it now and the next container's pid 1 is born
 * inside); a used cgroup is removed in the background.
 *
 * close() drops what was made ahead and waits for every removal: a build calls it before it
 * reports success. A process killed meanwhile leaves cgroups named by its pid (newRunId), which
 * the next executor sweeps as any dead build's (orphanCgroups).
 */
import { debuglog } from 'node:util';
import { Cgroup, type CgroupLayout } from './cgroups.ts';
import { newRunId } from './prepare.ts';
import type { LaunchServer, Zygote } from './launch-server.ts';
import type { Limits } from './types.ts';

const log = debuglog('vlab');

/** A run's cgroup and, when it was made ahead, the launch process waiting inside it. */
export interface RunCgroup {
  cg: Cgroup;
  zygote?: Zygote;
}

export class CgroupPool {
  private ahead?: { key: string; made: Promise<RunCgroup> };
  private readonly removing = new Set<Promise<void>>();

  constructor(
    private readonly layout: CgroupLayout,
    private readonly parent: string,
    private readonly opts: { devices?: boolean },
    /** Where zygotes come from; none: cgroups only. */
    private readonly server?: () => LaunchServer,
  ) {}

  /**
   * A new cgroup with `limits` for one run: the one made ahead when its limits match, else one
   * made now; either way the next one is started. E_EXEC_SETUP when it cannot be made.
   */
  async take(limits: Limits | undefined): Promise<RunCgroup> {
    const key = JSON.stringify(limits ?? {});
    const ahead = this.ahead;
    const made = this.make(limits);
    made.catch(() => undefined); // a failure shows when it is taken: made again then, and thrown
    this.ahead = { key, made };
    const got = ahead ? await ahead.made.catch(() => undefined) : undefined;
    if (got && ahead!.key === key) return got;
    if (got) this.drop(got);
    return { cg: await this.create(limits) };
  }

  /** A used cgroup: removed in the background (its processes killed first, as destroy does). */
  release(cg: Cgroup): void {
    const work: Promise<void> = cg
      .destroy()
      .catch((e: unknown) => log('removing cgroup %s failed: %s', cg.rel, (e as Error).message))
      .finally(() => this.removing.delete(work));
    this.removing.add(work);
  }

  /**
   * Drops the cgroup made ahead; resolves once every cgroup made or used is gone. Called when no
   * run is going (a later run starts over).
   */
  async close(): Promise<void> {
    const ahead = this.ahead;
    this.ahead = undefined;
    const got = ahead ? await ahead.made.catch(() => undefined) : undefined;
    if (got) this.drop(got);
    while (this.removing.size) await Promise.all(this.removing);
  }

  /** One made ahead and not taken: its zygote told to go, then removed like a used one. */
  private drop(r: RunCgroup): void {
    if (r.zygote) r.zygote.server.drop(r.zygote);
    this.release(r.cg);
  }

  private async make(limits: Limits | undefined): Promise<RunCgroup> {
    const cg = await this.create(limits);
    return { cg, zygote: this.server?.().prepare(cg.procsFiles()) };
  }

  private create(limits: Limits | undefined): Promise<Cgroup> {
    return Cgroup.create(this.layout, `${this.parent}/${newRunId()}`, limits, this.opts);
  }
}

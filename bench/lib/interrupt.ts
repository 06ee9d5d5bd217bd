/**
 * Ctrl-C (SIGINT) or SIGTERM during a bench: the first one lets the run stop at the next step
 * (`interrupted()`; the command running then got the signal too, from the terminal) and go
 * through its own teardowns, which stop what it started by pid; a second one runs the teardowns
 * registered with `onHardStop` at once and exits. Either way the exit code is 128 + the signal,
 * and the next run finds no server, daemon or worker of this one.
 */
const SIGNUM = { SIGINT: 2, SIGTERM: 15 } as const;
type Sig = keyof typeof SIGNUM;

let signalled: Sig | undefined;
const hard = new Set<() => Promise<void>>();

/** The signal that asked the run to stop, if one did. */
export const interrupted = (): Sig | undefined => signalled;

/** The exit code for an interrupted run (128 + signal), else undefined. */
export const interruptExitCode = (): number | undefined => (signalled ? 128 + SIGNUM[signalled] : undefined);

/** Run `fn` if a second signal comes before it is forgotten (call the returned function). */
export function onHardStop(fn: () => Promise<void>): () => void {
  hard.add(fn);
  return () => hard.delete(fn);
}

export function installInterrupt(log: (m: string) => void): void {
  for (const sig of Object.keys(SIGNUM) as Sig[])
    process.on(sig, () => {
      if (!signalled) {
        signalled = sig;
        log(`${sig}: stopping after this step, then tearing down (${sig} again: tear down now)`);
        return;
      }
      log(`${sig} again: tearing down now`);
      void Promise.allSettled([...hard].map((f) => f())).then(() => process.exit(128 + SIGNUM[sig]));
    });
}

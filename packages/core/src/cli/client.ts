/**
 * The death of the command's caller. In a direct run the caller is this process: if it is
 * killed, so is the command, and the kernel does the rest (a foreground container's monitor sees
 * EOF and carries on alone; an exec'd helper is reparented and runs on). Under the warm server
 * (server.ts) the caller is the native client, which can be killed while the command runs in the
 * server, or die of a signal the command has no handler for: a command that must then do what
 * its own death would have done takes `callerGone()`, an AbortSignal that fires when the client
 * is gone (undefined in a direct run: it never fires). The server then lives on.
 */
let current: { ctl: AbortController; taken: boolean } | undefined;

/** The signal for the running command (marks the command as handling its caller's death). */
export function callerGone(): AbortSignal | undefined {
  if (!current) return undefined;
  current.taken = true;
  return current.ctl.signal;
}

/** server.ts, per request: whether the command took the signal, `gone()` fires it. */
export function beginCaller(): { taken(): boolean; gone(): void; end(): void } {
  const me = { ctl: new AbortController(), taken: false };
  current = me;
  return {
    taken: () => me.taken,
    gone: () => me.ctl.abort(),
    end() {
      if (current === me) current = undefined;
    },
  };
}

/**
 * The death of the command's caller. In a direct run the caller is this process: if it is
 * killed, so is the command, and the kernel does the rest (a foreground container's monitor sees
 * EOF and carries on alone; an exec'd helper is reparented and runs on). Under the warm server
 * (server.ts) the caller is the native client, which can be killed while the command runs in the
 * server: a command that must then do what its own death would have done takes `callerGone()`,
 * an AbortSignal that fires when the client is gone (undefined in a direct run: it never fires).
 */
let current: { ctl: AbortController; taken: boolean } | undefined;

/** The signal for the running command (marks the command as handling its caller's death). */
export function callerGone(): AbortSignal | undefined {
  if (!current) return undefined;
  current.taken = true;
  return current.ctl.signal;
}

/** server.ts, per request: `gone()` fires the signal, and says whether the command took it. */
export function beginCaller(): { gone(): boolean; end(): void } {
  const me = { ctl: new AbortController(), taken: false };
  current = me;
  return {
    gone() {
      me.ctl.abort();
      return me.taken;
    },
    end() {
      if (current === me) current = undefined;
    },
  };
}

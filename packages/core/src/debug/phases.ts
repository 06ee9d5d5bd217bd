/**
 * `NODE_DEBUG=vlab` phase timings: `const lap = phases('run'); …; lap('mount')` prints
 * `run.mount 3.1ms` (time since the previous lap). Free when the debug log is off.
 */
import { debuglog } from 'node:util';

const log = debuglog('vlab');

export function phases(scope: string): (name: string) => void {
  if (!log.enabled) return () => {};
  let t = performance.now();
  return (name) => {
    const now = performance.now();
    log('%s.%s %sms', scope, name, (now - t).toFixed(1));
    t = now;
  };
}

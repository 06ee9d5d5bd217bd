/** Signal names as docker takes them: `SIGTERM`, `TERM`, `term`, `15`. */
import { constants } from 'node:os';
import { VlabError } from '@vlab/errors';

const BY_NUMBER = new Map(Object.entries(constants.signals).map(([n, v]) => [v as number, n]));

/** The signal's name (`SIGTERM`); E_BAD_SIGNAL for anything the kernel does not know. */
export function signalName(s: string | number): NodeJS.Signals {
  const text = String(s).trim();
  if (/^\d+$/.test(text)) {
    const name = BY_NUMBER.get(Number(text));
    if (name) return name as NodeJS.Signals;
  } else {
    const name = text.toUpperCase().startsWith('SIG') ? text.toUpperCase() : `SIG${text.toUpperCase()}`;
    if (name in constants.signals) return name as NodeJS.Signals;
  }
  throw new VlabError('E_BAD_SIGNAL', `invalid signal: ${text} (use a name like SIGTERM, TERM or a number like 15)`);
}

export function signalNumber(s: string | number): number {
  return constants.signals[signalName(s)];
}

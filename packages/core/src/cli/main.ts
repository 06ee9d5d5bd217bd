/**
 * The vbuild process: one command, then exit; or, started by native/vbuild-client.c as
 * `vbuild.mjs --vlab-serve BASE LOCKFD`, the warm server that runs the client's commands
 * (server.ts).
 */
import { runMain } from './commands.ts';

const argv = process.argv.slice(2);
if (argv[0] === '--vlab-serve') {
  void import('./server.ts').then((s) => s.serve(argv[1]!, Number(argv[2])));
} else {
  // If the event loop empties while a command is still pending, a promise was never settled: say
  // so instead of exiting 0 as if it had worked.
  let finished = false;
  process.on('beforeExit', () => {
    if (!finished) {
      process.stderr.write('ERROR: internal error: the command stopped before finishing [E_INTERNAL]\n');
      process.exit(70);
    }
  });
  void runMain(argv).then((code) => {
    finished = true;
    process.exit(code);
  });
}

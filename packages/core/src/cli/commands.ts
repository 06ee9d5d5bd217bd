import { statSync } from 'node:fs';
import { VlabError } from '@vlab/errors';
import pkg from '../../package.json' with { type: 'json' };
import { BUILD, CHECK, cmdBuild, cmdCheck } from './build.ts';
import { IMAGE_COMMANDS, runCommand } from './images.ts';
import { REGISTRY_COMMANDS } from './registry.ts';
import { containerCommands, inspectCommand } from './containers.ts';
import { containerOpsCommands } from './container-ops.ts';
import { TOOL_COMMANDS } from './tools.ts';
import { SQUASH_COMMANDS } from './tools-squash.ts';
import { SYSTEM } from './system.ts';
import { helpText, type CommandSpec } from './flags.ts';
import { forgetDockerfiles, formatError } from './snippet.ts';

/** The verbs: one entry each (`vbuild VERB --help` prints the spec's help). */
const COMMANDS: Record<string, { spec: CommandSpec; run: (argv: string[]) => Promise<number> }> = {
  build: { spec: BUILD, run: cmdBuild },
  check: { spec: CHECK, run: cmdCheck },
  ...Object.fromEntries(
    Object.entries({ ...IMAGE_COMMANDS, ...REGISTRY_COMMANDS, ...TOOL_COMMANDS, ...SQUASH_COMMANDS }).map(
      ([name, c]) => [
        name,
        { spec: c.spec, run: (argv: string[]) => runCommand(name === 'inspect' ? inspectCommand(c) : c, argv) },
      ],
    ),
  ),
  ...containerCommands(),
  ...containerOpsCommands(),
  system: SYSTEM,
};

function usage(): string {
  const w = Math.max(...Object.keys(COMMANDS).map((k) => k.length)) + 2;
  return [
    'vbuild — build OCI images from Dockerfiles',
    '',
    'Usage:  vbuild COMMAND [OPTIONS]',
    '        vbuild [OPTIONS] CONTEXT      (build CONTEXT: a directory, a path with / or ., or -)',
    '',
    'Commands:',
    ...Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(w)}${c.spec.summary}`),
    '',
    "Run 'vbuild COMMAND --help' for a command's options.",
    'Store: $VLAB_ROOT, else /var/lib/vlab as root (--root overrides).',
  ].join('\n');
}

/**
 * `vbuild CONTEXT` builds, as before `build` was required: but only when the word is clearly a
 * path (docker has no such shortcut: `docker ps2` is "not a docker command"), so a mistyped
 * verb is an error that lists the verbs instead of a build of ./ps2.
 */
function isContextWord(word: string): boolean {
  if (word === '-' || word.includes('/') || word.includes('.')) return true;
  try {
    return statSync(word).isDirectory();
  } catch {
    return false;
  }
}

async function main(argv: string[]): Promise<number> {
  const cmd = argv[0];
  if (!cmd || cmd === '--help' || cmd === '-h') {
    process.stdout.write(`${usage()}\n`);
    return cmd ? 0 : 1;
  }
  if (cmd === 'help') {
    const c = argv[1] ? COMMANDS[argv[1]] : undefined;
    process.stdout.write(`${c ? helpText(c.spec) : usage()}\n`);
    return 0;
  }
  if (cmd === '--version' || cmd === '-v') {
    process.stdout.write(`vbuild version ${pkg.version}\n`);
    return 0;
  }
  const c = COMMANDS[cmd];
  if (c) return c.run(argv.slice(1));
  if ((cmd.startsWith('-') && cmd !== '-') || isContextWord(cmd)) return cmdBuild(argv);
  throw new VlabError(
    'E_BAD_ARG',
    `'${cmd}' is not a vbuild command, nor a directory to build.\nCommands: ${Object.keys(COMMANDS).join(', ')}\nSee 'vbuild --help'.`,
  );
}

/** One command, as the process's exit code: errors printed as the CLI prints them (docker: 1). */
export async function runMain(argv: string[]): Promise<number> {
  forgetDockerfiles();
  try {
    return await main(argv);
  } catch (e) {
    if (e instanceof VlabError) process.stderr.write(formatError(e));
    else process.stderr.write(`ERROR: internal error: ${(e as Error)?.stack ?? String(e)}\n`);
    return 1;
  }
}

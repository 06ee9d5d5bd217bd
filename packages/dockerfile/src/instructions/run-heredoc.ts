/**
 * What a shell-form RUN with heredocs executes (BuildKit's dispatchRun rules, read not copied):
 *  - the command is a single heredoc whose body starts with `#!`: the body is written to a file
 *    and that file is executed (its interpreter line decides);
 *  - the command is a single heredoc otherwise: the body is the shell script;
 *  - anything else (`python3 <<EOF`, several heredocs): the line and the bodies are put back
 *    together (`line\nbody NAME\n…`) and given to the shell, which handles the redirections.
 */
import { parseHeredoc } from '../syntax/heredoc.ts';
import type { Heredoc, RunInstruction } from '../types.ts';

export type RunHeredocPlan =
  | { kind: 'file'; heredoc: Heredoc } // execute the body as a file (shebang)
  | { kind: 'script'; script: string } // run `shell... script`
  | { kind: 'none' }; // no heredocs: use `command` as is

export function planRunHeredoc(run: RunInstruction): RunHeredocPlan {
  if (run.heredocs.length === 0 || run.form !== 'shell') return { kind: 'none' };
  const line = run.command[0] ?? '';
  let single: ReturnType<typeof parseHeredoc>;
  try {
    single = parseHeredoc(line.trim());
  } catch {
    single = undefined;
  }
  if (single) {
    const h = run.heredocs[0];
    if (h.content.startsWith('#!')) return { kind: 'file', heredoc: h };
    return { kind: 'script', script: h.content };
  }
  let full = line;
  for (const h of run.heredocs) full += '\n' + h.content + h.name;
  return { kind: 'script', script: full };
}

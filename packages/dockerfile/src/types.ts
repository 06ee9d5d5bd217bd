/** Public data types of @vlab/dockerfile. Plain data: no classes, no methods. */

export interface Position {
  line: number; // 1-based
  column: number; // 1-based
}
export interface Range {
  start: Position;
  end: Position;
}

export type Keyword =
  | 'FROM'
  | 'RUN'
  | 'COPY'
  | 'ADD'
  | 'ENV'
  | 'LABEL'
  | 'ARG'
  | 'CMD'
  | 'ENTRYPOINT'
  | 'SHELL'
  | 'WORKDIR'
  | 'USER'
  | 'EXPOSE'
  | 'VOLUME'
  | 'STOPSIGNAL'
  | 'HEALTHCHECK'
  | 'ONBUILD'
  | 'MAINTAINER';

export const KEYWORDS: readonly Keyword[] = [
  'ADD',
  'ARG',
  'CMD',
  'COPY',
  'ENTRYPOINT',
  'ENV',
  'EXPOSE',
  'FROM',
  'HEALTHCHECK',
  'LABEL',
  'MAINTAINER',
  'ONBUILD',
  'RUN',
  'SHELL',
  'STOPSIGNAL',
  'USER',
  'VOLUME',
  'WORKDIR',
];

export type FlagValue = string | string[] | boolean;

interface Base {
  kind: Keyword;
  range: Range;
  /** Source text of the whole instruction, continuations joined (what `docker history` shows). */
  original: string;
  /** Flags as given, by name without `--`; repeatable flags are arrays. */
  flags: Record<string, FlagValue>;
}

export interface Heredoc {
  name: string;
  content: string;
  /** False when any part of the delimiter was quoted. */
  expand: boolean;
  /** `<<-`: leading tabs stripped from the content and the terminator. */
  chomp: boolean;
  /** File descriptor prefix, `3<<EOF`. */
  fd?: number;
}

export interface FromInstruction extends Base {
  kind: 'FROM';
  image: string;
  stageName?: string;
  platform?: string;
}
export interface RunMount {
  type: 'bind' | 'cache' | 'tmpfs' | 'secret' | 'ssh';
  target?: string;
  source?: string;
  from?: string;
  readonly?: boolean;
  id?: string;
  sharing?: string;
  mode?: string;
  uid?: number;
  gid?: number;
  required?: boolean;
  size?: number;
  env?: string;
}
export interface RunInstruction extends Base {
  kind: 'RUN';
  form: 'shell' | 'exec';
  command: string[];
  heredocs: Heredoc[];
  mounts: RunMount[];
  network?: 'default' | 'none' | 'host';
  security?: string;
}
export interface CopyInstruction extends Base {
  kind: 'COPY' | 'ADD';
  /** Source paths, without the heredoc words (`<<EOF`), which are in `heredocs`. */
  sources: string[];
  dest: string;
  heredocs: Heredoc[];
  from?: string;
  chown?: string;
  chmod?: string;
  link: boolean;
  exclude: string[];
  parents: boolean;
  checksum?: string;
  keepGitDir?: boolean;
  unpack?: boolean;
}
export interface KeyValueInstruction extends Base {
  kind: 'ENV' | 'LABEL';
  /** As written (quotes kept) after parse; unquoted and expanded by StageScope.evaluate. */
  pairs: { key: string; value: string }[];
}
export interface ArgInstruction extends Base {
  kind: 'ARG';
  args: { key: string; value?: string }[];
}
export interface CommandInstruction extends Base {
  kind: 'CMD' | 'ENTRYPOINT';
  form: 'shell' | 'exec';
  command: string[];
}
export interface ShellInstruction extends Base {
  kind: 'SHELL';
  argv: string[];
}
export interface WorkdirInstruction extends Base {
  kind: 'WORKDIR';
  path: string;
}
export interface UserInstruction extends Base {
  kind: 'USER';
  user: string;
}
export interface ExposeInstruction extends Base {
  kind: 'EXPOSE';
  ports: string[];
}
export interface VolumeInstruction extends Base {
  kind: 'VOLUME';
  paths: string[];
}
export interface StopSignalInstruction extends Base {
  kind: 'STOPSIGNAL';
  signal: string;
}
export interface HealthcheckInstruction extends Base {
  kind: 'HEALTHCHECK';
  /** `['NONE']`, `['CMD', ...argv]` or `['CMD-SHELL', cmd]`, as Docker's config stores it. */
  test: string[];
  /** Durations in nanoseconds. */
  interval?: number;
  timeout?: number;
  startPeriod?: number;
  startInterval?: number;
  retries?: number;
}
export interface OnbuildInstruction extends Base {
  kind: 'ONBUILD';
  trigger: Instruction;
  triggerText: string;
}
export interface MaintainerInstruction extends Base {
  kind: 'MAINTAINER';
  maintainer: string;
}

export type Instruction =
  | FromInstruction
  | RunInstruction
  | CopyInstruction
  | KeyValueInstruction
  | ArgInstruction
  | CommandInstruction
  | ShellInstruction
  | WorkdirInstruction
  | UserInstruction
  | ExposeInstruction
  | VolumeInstruction
  | StopSignalInstruction
  | HealthcheckInstruction
  | OnbuildInstruction
  | MaintainerInstruction;

export interface Stage {
  /** Lower-cased, like BuildKit. */
  name?: string;
  index: number;
  /** Raw FROM image, unexpanded. */
  base: string;
  platform?: string;
  from: FromInstruction;
  /** Instructions after FROM. */
  instructions: Instruction[];
}

export interface Warning {
  rule: string;
  message: string;
  range: Range;
}

export interface Dockerfile {
  file?: string;
  escape: '\\' | '`';
  syntax?: string;
  directives: Record<string, string>;
  globalArgs: ArgInstruction[];
  stages: Stage[];
  warnings: Warning[];
}

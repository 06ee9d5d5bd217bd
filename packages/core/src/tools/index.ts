/** The image tools (issue 14): each a function over the store; the CLI verbs only wrap them. */
export { rebase, rebasedConfig, type RebaseOptions, type RebaseResult } from './rebase.ts';
export type { ToolOptions } from './common.ts';

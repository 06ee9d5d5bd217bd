/** The image tools (issue 14): each a function over the store; the CLI verbs only wrap them. */
export type { ToolOptions } from './common.ts';
export { squash, squashImage, type SquashOptions, type SquashResult } from './squash.ts';
export { findBase, type BaseMatch } from './base.ts';
export { layers, type LayersReport, type LayerReport, type LayerChange, type ChangeKind } from './layers.ts';
export {
  systemDf,
  type DfReport,
  type DfRow,
  type DfType,
  type DfImage,
  type DfContainer,
  type DfVolume,
  type DfCacheEntry,
} from './df.ts';

/** The container service the container and volume verbs work on: `--root`, else the default store. */
import { ContainerService, defaultStoreRoot } from '../index.ts';
import { str, type Values } from './flags.ts';

export const openService = (v: Values): Promise<ContainerService> =>
  ContainerService.open(str(v.root) ?? defaultStoreRoot());

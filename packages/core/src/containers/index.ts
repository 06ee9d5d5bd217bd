/**
 * containers/: a container is a writable snapshot on its image plus a process tree started by the
 * build's executor and owned by a monitor (native/vlab-mon.c). State on disk: records.ts.
 */
export * from './types.ts';
export { ContainerService } from './service.ts';
export { ContainerRecords } from './records.ts';
export { VolumeStore, type Volume } from './volumes.ts';
export { readLogs, followLogs } from './logs.ts';
export { shortId } from './names.ts';
export { signalName } from './signals.ts';
export { statusText, stateWord, humanDuration, commandText, inspectJson } from './format.ts';
export { run, containers, volumes, containerService, type RunOptions as ContainerRunOptions, type At } from './api.ts';
export { readEnvFile } from './create.ts';
export { execContainer, pauseContainer, topContainer, unpauseContainer } from './process-ops.ts';
export { commitContainer, copyFrom, copyTo, diffContainer } from './snapshot-ops.ts';

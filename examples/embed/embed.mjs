/**
 * Embedding @vlab/image in another tool's build step: build() with events routed to the host
 * tool's own logger, and Ctrl-C (SIGINT) turned into an AbortSignal that stops the build cleanly.
 *
 *   node --import tsx examples/embed/embed.ts <context> [tag]
 */
import { build, isVlabError, type BuildEvent } from '@vlab/image';

/** Stand-in for the host tool's logger. */
const logger = {
  info: (msg: string) => process.stdout.write(`[mytool] ${msg}\n`),
  error: (msg: string) => process.stderr.write(`[mytool] error: ${msg}\n`),
};

function onEvent(e: BuildEvent): void {
  if (e.type === 'step-cached') logger.info(`cached   ${e.name}`);
  else if (e.type === 'step-miss') logger.info(`building ${e.name} (${e.reason})`);
  else if (e.type === 'step-log') for (const line of e.data.split('\n').filter(Boolean)) logger.info(`  | ${line}`);
  else if (e.type === 'build-done') logger.info(`image ${e.imageId} in ${e.durationMs} ms`);
}

const [context = '.', tag = 'embedded:latest'] = process.argv.slice(2);
const controller = new AbortController();
process.once('SIGINT', () => {
  logger.info('interrupted: stopping the build');
  controller.abort();
});

try {
  const result = await build({ context, tags: [tag], onEvent, signal: controller.signal });
  logger.info(`built ${tag} ${result.digest}`);
} catch (e) {
  logger.error(isVlabError(e) ? `${e.code}: ${e.message}` : String(e));
  process.exitCode = 1;
}

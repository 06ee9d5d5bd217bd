/**
 * Embedding @vlab/image in another tool's build step: build() with events routed to the host
 * tool's own logger, Ctrl-C (SIGINT) turned into an AbortSignal that stops the build cleanly, and
 * failures told apart by their typed code. Plain JavaScript: runs with plain `node`, from the
 * checkout or from an npm install of @vlab/image:
 *
 *   node examples/embed/embed.mjs <context> [tag]   # checkout: NODE_OPTIONS=--conditions=source
 *   node embed.mjs <context> [tag]                  # beside node_modules/@vlab/image
 */
import { build, isVlabError, BUILD_EVENT_VERSION } from '@vlab/image';

/** Stand-in for the host tool's logger. */
const logger = {
  info: (msg) => process.stdout.write(`[mytool] ${msg}\n`),
  error: (msg) => process.stderr.write(`[mytool] error: ${msg}\n`),
};

/** @param {import('@vlab/image').BuildEvent} e */
function onEvent(e) {
  if (e.type === 'step-cached') logger.info(`cached   ${e.name}`);
  else if (e.type === 'step-miss') logger.info(`building ${e.name} (${e.reason})`);
  else if (e.type === 'step-log') for (const line of e.data.split('\n').filter(Boolean)) logger.info(`  | ${line}`);
  else if (e.type === 'warning') logger.info(`warning  ${e.message}`);
  else if (e.type === 'build-done') logger.info(`image ${e.imageId} in ${e.durationMs} ms`);
}

const [context = '.', tag = 'embedded:latest'] = process.argv.slice(2);
const controller = new AbortController();
process.once('SIGINT', () => {
  logger.info('interrupted: stopping the build');
  controller.abort();
});

logger.info(`events v${BUILD_EVENT_VERSION}`);
try {
  const result = await build({ context, tags: [tag], onEvent, signal: controller.signal });
  logger.info(`built ${tag} ${result.digest}`);
} catch (e) {
  if (isVlabError(e, 'E_RUN_FAILED')) logger.error(`a RUN step failed (${e.code}): ${e.message}`);
  else logger.error(isVlabError(e) ? `${e.code}: ${e.message}` : String(e));
  process.exitCode = 1;
}

/** What about the machine or checkout changes the figures, printed under the table (so a slow column says why). */
import { existsSync } from 'node:fs';
import path from 'node:path';

const HELPERS = ['packages/overlay/native/bin/vlab-sys', 'packages/core/native/bin/vlab-init'];

export function benchNotes(repo: string): string[] {
  const notes: string[] = [];
  const missing = HELPERS.filter((h) => !existsSync(path.join(repo, h)));
  if (missing.length)
    notes.push(
      `- native helpers not built (${missing.map((m) => path.basename(m)).join(', ')}): vlab and vlab-cli ran the util-linux / runc fallbacks (slower); \`bash scripts/build-native.sh\` (or \`pnpm install\`) builds them`,
    );
  return notes;
}

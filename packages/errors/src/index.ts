/**
 * @vlab/errors: the one error type, {@link VlabError}, with its stable codes ({@link ERROR_CODES}).
 *
 * @module @vlab/errors
 */
import type { ErrorCode } from './codes.ts';

export { ERROR_CODES, type ErrorCode } from './codes.ts';

/**
 * The one error type of @vlab: a stable `code` callers can switch on, a message a user
 * understands, the source location when there is one, and the cause chained.
 */
export interface SourceLocation {
  file?: string;
  line: number; // 1-based
  column: number; // 1-based
}

export class VlabError extends Error {
  /** Stable: switch on it ({@link ERROR_CODES} says what each means). */
  readonly code: ErrorCode;
  readonly location?: SourceLocation;
  readonly details?: Record<string, unknown>;

  constructor(
    code: ErrorCode,
    message: string,
    opts: { location?: SourceLocation; cause?: unknown; details?: Record<string, unknown> } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'VlabError';
    this.code = code;
    this.location = opts.location;
    this.details = opts.details;
  }

  /** `file:line:column: message` when a location is known. */
  override toString(): string {
    const loc = this.location;
    const where = loc ? `${loc.file ?? 'Dockerfile'}:${loc.line}:${loc.column}: ` : '';
    return `${where}${this.message} [${this.code}]`;
  }
}

/** `e` is a VlabError (of that code, when one is given). */
export function isVlabError(e: unknown, code?: ErrorCode): e is VlabError {
  return e instanceof VlabError && (code === undefined || e.code === code);
}

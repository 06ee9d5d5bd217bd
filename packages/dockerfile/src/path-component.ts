/**
 * The one rule for a name that becomes a single path component in the image (a COPY/ADD heredoc
 * name, the file name ADD takes from a URL): what Linux accepts as one directory entry.
 */
export const NAME_MAX = 255;

/** Why `name` cannot be one in-image path component, or undefined when it can. */
export function pathComponentProblem(name: string): string | undefined {
  if (name === '') return 'it is empty';
  if (name === '.' || name === '..') return `"${name}" is not a file name`;
  if (name.includes('/')) return 'it contains "/"';
  if (name.includes('\0')) return 'it contains a NUL byte';
  const bytes = new TextEncoder().encode(name).length;
  if (bytes > NAME_MAX) return `it is ${bytes} bytes long, more than the ${NAME_MAX} a file name can have`;
  return undefined;
}

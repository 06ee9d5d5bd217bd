/**
 * BuildKit's parser fixture `result` format (Node.Dump in parser.go, as described in
 * /work/shared/corpus/README.md): one `(keyword ["--flags"...] "arg"...)` line per instruction.
 */
import { nodeFromLine, parseSyntax } from './syntax/parse.ts';
import type { NodeArg } from './syntax/line-parsers.ts';

/** Go's strconv.Quote. */
export function goQuote(s: string): string {
  let out = '"';
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    switch (ch) {
      case '"':
        out += '\\"';
        continue;
      case '\\':
        out += '\\\\';
        continue;
      case '\x07':
        out += '\\a';
        continue;
      case '\b':
        out += '\\b';
        continue;
      case '\f':
        out += '\\f';
        continue;
      case '\n':
        out += '\\n';
        continue;
      case '\r':
        out += '\\r';
        continue;
      case '\t':
        out += '\\t';
        continue;
      case '\v':
        out += '\\v';
        continue;
    }
    if (cp < 0x20 || cp === 0x7f) out += '\\x' + cp.toString(16).padStart(2, '0');
    else if (cp < 0x7f || /^[\p{L}\p{M}\p{N}\p{P}\p{S}]$/u.test(ch)) out += ch;
    else if (cp === 0xfffd) out += ch;
    else if (cp < 0x10000) out += '\\u' + cp.toString(16).padStart(4, '0');
    else out += '\\U' + cp.toString(16).padStart(8, '0');
  }
  return out + '"';
}

function dumpNode(keyword: string, flags: string[], args: NodeArg[], escape: string): string {
  let s = keyword;
  if (flags.length > 0) s += ' [' + flags.map(goQuote).join(' ') + ']';
  for (const a of args) {
    if (typeof a === 'string') s += ' ' + goQuote(a);
    else {
      const n = nodeFromLine(a.line, escape);
      s += ' (' + dumpNode(n.keyword, n.flags, n.args, escape) + ')';
    }
  }
  return s.trim();
}

/** Dump a Dockerfile in BuildKit's fixture format, with the final newline. Throws VlabError. */
export function dump(text: string): string {
  const tree = parseSyntax(text);
  return tree.nodes.map((n) => '(' + dumpNode(n.keyword, n.flags, n.args, tree.escape) + ')').join('\n') + '\n';
}

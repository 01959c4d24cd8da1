/**
 * Quoting of untrusted text (values read from input files: NPY header fields, ONNX names and paths) for messages:
 * control characters, including terminal escape sequences (ESC, OSC, CSI), and bidirectional overrides are escaped,
 * and long values are cut, so a crafted file can neither flood the terminal nor drive it.
 */

/** Characters never printed raw: C0 and C1 controls, DEL, line/paragraph separators and bidi overrides. */
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

function escapeChar(c: string): string {
  switch (c) {
    case '\n': return '\\n';
    case '\r': return '\\r';
    case '\t': return '\\t';
    case '\x1b': return '\\e';
    default: return `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;
  }
}

/** The number of characters of an untrusted value that messages show. */
export const QUOTE_MAX = 200;

/**
 * Quotes an untrusted value for a message: double quotes, control characters escaped, cut to `max` characters
 * with the full length said.
 */
export function quote(value: unknown, max = QUOTE_MAX): string {
  const s = String(value);
  const long = s.length > max;
  const cut = long ? s.slice(0, max) : s;
  const body = cut.replace(/["\\]/g, (c) => `\\${c}`).replace(UNSAFE, escapeChar);
  return `"${body}"${long ? `... (${s.length} characters)` : ''}`;
}

/**
 * Escapes control characters other than newline in text about to be printed (the CLI's last defence against a
 * message that quotes file content raw).
 */
export function escapeControls(text: string): string {
  return text.replace(UNSAFE, (c) => (c === '\n' ? c : escapeChar(c)));
}

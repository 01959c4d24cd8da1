/**
 * URLs in command lines and messages: telling a URL from a file path, and redacting credentials before a URL is
 * printed (remote model endpoints, database URLs).
 */
import * as fs from 'node:fs';

/** Schemes recognised without `//` (file:m.onnx, http:host); other `word:` prefixes are read as file names. */
const BARE_SCHEMES = /^(https?|ftp|ftps|file|data|s3|gs)$/i;

/**
 * The URL scheme of `s` when it is written as a URL (`scheme://...`, or a well-known scheme followed by a colon),
 * lower-cased; undefined for a file path. A path that exists as a file is never a URL, so `ckpt:best.onnx` or
 * `model-10:00.onnx` stay file names, and a one-letter "scheme" is a Windows drive (C:\models).
 */
export function urlScheme(s: string): string | undefined {
  const m = /^([a-z][a-z0-9+.-]+):(\/\/)?/i.exec(s);
  if (!m || (!m[2] && !BARE_SCHEMES.test(m[1]!))) return undefined;
  if (fs.existsSync(s)) return undefined;
  return m[1]!.toLowerCase();
}

/**
 * The URL with anything secret removed, for messages and logs: user and password become `***@`, a query string
 * `?…` and a fragment `#…` (tokens travel there). Strings that are not URLs (file paths) come back unchanged.
 * @example redactUrl('http://admin:s3cret@h:8080/v2/models/m') // 'http://***@h:8080/v2/models/m'
 */
export function redactUrl(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    // Not parseable; if it is written as a URL with an '@', hide everything before the host.
    const m = /^([a-z][a-z0-9+.-]*:\/\/)(.*)$/i.exec(url);
    return m && m[2]!.includes('@') ? `${m[1]}***@${m[2]!.slice(m[2]!.lastIndexOf('@') + 1)}` : url;
  }
  if (u.username === '' && u.password === '' && !u.search && !u.hash) return url;
  const host = u.host === '' ? '' : `//${u.username !== '' || u.password !== '' ? '***@' : ''}${u.host}`;
  return `${u.protocol}${host}${u.pathname}${u.search ? '?…' : ''}${u.hash ? '#…' : ''}`;
}

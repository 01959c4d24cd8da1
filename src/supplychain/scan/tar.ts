/**
 * A minimal, bounds-checked tar reader (ustar, GNU long names, pax path records) for the legacy PyTorch tar
 * checkpoint format and tar archives met while scanning. Nothing is extracted; members are views into the input.
 */
import { scanParseError } from './context.js';

/** One tar member. */
export interface TarEntry {
  name: string;
  /** Type flag: '0' file, '1' hard link, '2' symlink, '5' directory, others as in POSIX. */
  type: string;
  size: number;
  /** Offset of the member's data in the archive. */
  dataOffset: number;
  linkname: string;
}

const BLOCK = 512;

function cstr(b: Uint8Array): string {
  const z = b.indexOf(0);
  return Buffer.from(z < 0 ? b : b.subarray(0, z)).toString('utf8');
}

function octal(b: Uint8Array, what: string, at: number): number {
  if (b.length > 0 && (b[0]! & 0x80) !== 0) {
    // GNU base-256 for large sizes
    let v = 0n;
    for (let i = 1; i < b.length; i++) v = (v << 8n) | BigInt(b[i]!);
    if ((b[0]! & 0x40) !== 0 || v > BigInt(Number.MAX_SAFE_INTEGER)) scanParseError('tar', `${what} out of range`, at);
    return Number(v);
  }
  const s = cstr(b).trim();
  if (s === '') return 0;
  if (!/^[0-7]+$/.test(s)) scanParseError('tar', `${what} is not an octal number`, at);
  return parseInt(s, 8);
}

function checksumOk(h: Uint8Array): boolean {
  const stored = cstr(h.subarray(148, 156)).trim();
  if (!/^[0-7]+$/.test(stored)) return false;
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : h[i]!;
  return sum === parseInt(stored, 8);
}

/** True when the bytes start with a ustar / GNU tar header with a valid checksum. */
export function isTar(buf: Uint8Array): boolean {
  if (buf.length < BLOCK) return false;
  const magic = Buffer.from(buf.subarray(257, 262)).toString('latin1');
  return magic === 'ustar' && checksumOk(buf.subarray(0, BLOCK));
}

/**
 * Lists the members of a tar archive.
 * @param buf the archive
 * @param maxEntries most members listed
 * @param tick called once per header (the scan's step budget)
 * @throws BulwarkError BULWARK_E_SCAN_PARSE for a malformed archive
 */
export function listTar(buf: Uint8Array, maxEntries: number, tick: () => void): TarEntry[] {
  const out: TarEntry[] = [];
  let pos = 0;
  let longName: string | undefined;
  let longLink: string | undefined;
  let paxPath: string | undefined;
  let paxLink: string | undefined;
  while (pos + BLOCK <= buf.length) {
    tick();
    const h = buf.subarray(pos, pos + BLOCK);
    if (h.every((b) => b === 0)) return out;
    if (!checksumOk(h)) scanParseError('tar', 'bad header checksum', pos);
    const type = h[156] === 0 ? '0' : String.fromCharCode(h[156]!);
    const size = octal(h.subarray(124, 136), 'member size', pos);
    const dataOffset = pos + BLOCK;
    if (dataOffset + size > buf.length) scanParseError('tar', `member data (${size} bytes) runs past the end of the archive`, pos);
    const data = buf.subarray(dataOffset, dataOffset + size);
    pos = dataOffset + Math.ceil(size / BLOCK) * BLOCK;
    if (type === 'L') {
      longName = cstr(data);
      continue;
    }
    if (type === 'K') {
      longLink = cstr(data);
      continue;
    }
    if (type === 'x' || type === 'g') {
      if (type === 'x') ({ path: paxPath, linkpath: paxLink } = parsePax(data, dataOffset));
      continue;
    }
    const prefix = cstr(h.subarray(345, 500));
    const base = cstr(h.subarray(0, 100));
    const name = paxPath ?? longName ?? (prefix ? `${prefix}/${base}` : base);
    const linkname = paxLink ?? longLink ?? cstr(h.subarray(157, 257));
    longName = longLink = paxPath = paxLink = undefined;
    if (out.length >= maxEntries) scanParseError('tar', `more than ${maxEntries} members`, pos);
    out.push({ name, type, size, dataOffset, linkname });
  }
  if (pos !== buf.length && pos < buf.length) scanParseError('tar', 'archive ends inside a header block', pos);
  return out;
}

function parsePax(data: Uint8Array, at: number): { path?: string; linkpath?: string } {
  const out: { path?: string; linkpath?: string } = {};
  let p = 0;
  while (p < data.length) {
    const sp = data.indexOf(0x20, p);
    if (sp < 0) break;
    const len = Number(Buffer.from(data.subarray(p, sp)).toString('latin1'));
    if (!Number.isSafeInteger(len) || len <= sp - p || p + len > data.length) scanParseError('tar', 'malformed pax header record', at + p);
    const rec = Buffer.from(data.subarray(sp + 1, p + len - 1)).toString('utf8');
    const eq = rec.indexOf('=');
    if (eq > 0) {
      const k = rec.slice(0, eq);
      if (k === 'path') out.path = rec.slice(eq + 1);
      if (k === 'linkpath') out.linkpath = rec.slice(eq + 1);
    }
    p += len;
  }
  return out;
}

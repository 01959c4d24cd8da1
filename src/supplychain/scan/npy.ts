/**
 * NumPy .npy files: the header (a Python dict literal, parsed here without eval), the data size, and for object
 * arrays the pickle that holds the elements.
 */
import { ScanContext, scanParseError } from './context.js';
import { scanPickle } from './pickle.js';

const MAX_HEADER = 1 << 20;

type Lit = string | bigint | boolean | null | Lit[] | { tuple: Lit[] } | Map<string, Lit>;

/** Parses the Python literal subset numpy writes: dicts, tuples, lists, strings, ints, True/False/None. */
export function parsePyLiteral(src: string, tick: () => void): Lit {
  let i = 0;
  const ws = (): void => {
    while (i < src.length && /\s/.test(src[i]!)) i++;
  };
  const fail = (m: string): never => scanParseError('npy', `header: ${m} at character ${i}`);
  const value = (depth: number): Lit => {
    tick();
    if (depth > 64) fail('nested too deeply');
    ws();
    const c = src[i];
    if (c === '{') {
      i++;
      const m = new Map<string, Lit>();
      for (;;) {
        ws();
        if (src[i] === '}') {
          i++;
          return m;
        }
        const k = value(depth + 1);
        if (typeof k !== 'string') fail('dict key is not a string');
        ws();
        if (src[i] !== ':') fail("expected ':'");
        i++;
        m.set(k as string, value(depth + 1));
        ws();
        if (src[i] === ',') i++;
        else if (src[i] !== '}') fail("expected ',' or '}'");
      }
    }
    if (c === '(' || c === '[') {
      const close = c === '(' ? ')' : ']';
      i++;
      const items: Lit[] = [];
      for (;;) {
        ws();
        if (src[i] === close) {
          i++;
          return c === '(' ? { tuple: items } : items;
        }
        items.push(value(depth + 1));
        ws();
        if (src[i] === ',') i++;
        else if (src[i] !== close) fail(`expected ',' or '${close}'`);
      }
    }
    if (c === "'" || c === '"') {
      const end = src.indexOf(c, i + 1);
      if (end < 0) fail('unterminated string');
      const s = src.slice(i + 1, end);
      if (s.includes('\\')) fail('escapes are not supported in header strings');
      i = end + 1;
      return s;
    }
    const m = /^(-?\d+|True|False|None)/.exec(src.slice(i, i + 40));
    if (!m) return fail('unexpected token');
    i += m[0].length;
    if (m[0] === 'True') return true;
    if (m[0] === 'False') return false;
    if (m[0] === 'None') return null;
    if (m[0].length > 30) fail('integer too long');
    return BigInt(m[0]);
  };
  const v = value(0);
  ws();
  if (i !== src.length) fail('trailing characters');
  return v;
}

/** Whether a dtype descr (string or structured list) holds Python objects. */
function descrHasObject(d: Lit, depth = 0): boolean {
  if (depth > 32) return true;
  if (typeof d === 'string') return /^[<>|=]?O/.test(d);
  if (Array.isArray(d)) {
    return d.some((f) => {
      const parts = Array.isArray(f) ? f : f && typeof f === 'object' && 'tuple' in f ? f.tuple : [];
      return parts.length >= 2 && descrHasObject(parts[1]!, depth + 1);
    });
  }
  return false;
}

/** Bytes per item of a dtype descr, or undefined when it cannot be sized. */
function descrItemSize(d: Lit, depth = 0): bigint | undefined {
  if (depth > 32) return undefined;
  if (typeof d === 'string') {
    const m = /^[<>|=]?([?bBhHiIlLqQpPefdgFDGSUVOMmuic])(\d*)(\[[a-zA-Z]+\])?$/.exec(d);
    if (!m) return undefined;
    const [, ch, digits] = m;
    if (ch === '?') return 1n;
    if (digits) return BigInt(digits) * (ch === 'U' ? 4n : 1n);
    const fixed: Record<string, bigint> = { b: 1n, B: 1n, h: 2n, H: 2n, i: 4n, I: 4n, l: 8n, L: 8n, q: 8n, Q: 8n, p: 8n, P: 8n, e: 2n, f: 4n, d: 8n, g: 16n, F: 8n, D: 16n, G: 32n, O: 8n };
    return fixed[ch!];
  }
  if (Array.isArray(d)) {
    let total = 0n;
    for (const f of d) {
      const parts = Array.isArray(f) ? f : f && typeof f === 'object' && 'tuple' in f ? f.tuple : undefined;
      if (!parts || parts.length < 2) return undefined;
      const s = descrItemSize(parts[1]!, depth + 1);
      if (s === undefined) return undefined;
      let count = 1n;
      const shape = parts[2];
      if (shape !== undefined) {
        const dims = typeof shape === 'bigint' ? [shape] : shape && typeof shape === 'object' && 'tuple' in shape ? shape.tuple : undefined;
        if (!dims) return undefined;
        for (const x of dims) {
          if (typeof x !== 'bigint' || x < 0n) return undefined;
          count *= x;
        }
      }
      total += s * count;
    }
    return total;
  }
  return undefined;
}

/** Scans an .npy file (or an .npz member). */
export function scanNpy(ctx: ScanContext, buf: Uint8Array): void {
  if (buf.length < 10) scanParseError('npy', 'file shorter than the .npy preamble', 0);
  const major = buf[6]!;
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let hlen: number;
  let hstart: number;
  if (major === 1) {
    hlen = view.getUint16(8, true);
    hstart = 10;
  } else if (major === 2 || major === 3) {
    if (buf.length < 12) scanParseError('npy', 'truncated preamble', 0);
    hlen = view.getUint32(8, true);
    hstart = 12;
  } else {
    return scanParseError('npy', `unknown format version ${major}`, 6);
  }
  if (hlen > MAX_HEADER) scanParseError('npy', `header of ${hlen} bytes is over the ${MAX_HEADER}-byte limit`, 8);
  if (hstart + hlen > buf.length) scanParseError('npy', `header of ${hlen} bytes runs past the end of the file`, 8);
  const text = Buffer.from(buf.subarray(hstart, hstart + hlen)).toString(major === 3 ? 'utf8' : 'latin1');
  const lit = parsePyLiteral(text.trimEnd(), () => ctx.budget.tick());
  if (!(lit instanceof Map)) scanParseError('npy', 'header is not a dict', hstart);
  const descr = lit.get('descr');
  const shape = lit.get('shape');
  const fortran = lit.get('fortran_order');
  if (descr === undefined || shape === undefined || typeof fortran !== 'boolean') scanParseError('npy', "header lacks 'descr', 'shape' or 'fortran_order'", hstart);
  if (!shape || typeof shape !== 'object' || !('tuple' in shape)) scanParseError('npy', 'shape is not a tuple', hstart);
  let count = 1n;
  for (const d of shape.tuple) {
    if (typeof d !== 'bigint' || d < 0n) scanParseError('npy', 'shape holds a value that is not a non-negative integer', hstart);
    count *= d;
  }
  const dataStart = hstart + hlen;
  if (descrHasObject(descr)) {
    ctx.report('npy-object-array', { metric: 'npy.dtype', value: JSON.stringify(typeof descr === 'string' ? descr : 'structured'), threshold: 'numeric dtypes', evidence: { format: 'npy', offset: dataStart } });
    ctx.record('npy-object', buf.length);
    if (count > 0n) scanPickle(ctx, buf, dataStart);
    return;
  }
  const size = descrItemSize(descr);
  if (size === undefined) scanParseError('npy', `unsupported dtype ${JSON.stringify(descr)}`, hstart);
  const need = count * size;
  if (need > BigInt(buf.length - dataStart)) scanParseError('npy', `shape and dtype need ${need} data bytes, the file holds ${buf.length - dataStart}`, dataStart);
  ctx.record('npy', buf.length);
}

/**
 * NumPy .npy (format 1.0, 2.0, 3.0) and .npz files, read and written without pickle. The header is parsed as a
 * restricted Python literal (a dict of strings, booleans and integer tuples), never evaluated; element counts are
 * checked against the byte length before anything is allocated.
 */
import { readFileChecked, writeFileAtomic } from '../core/fsio.js';
import { BulwarkError } from '../core/errors.js';
import { quote } from '../core/quote.js';
import { sizeOf, type DType, type Tensor, type TypedArray } from '../core/tensor.js';
import { findOverlappingEntries, isZip, listZip, readZipEntry, writeZip, type ZipLimits } from '../core/zip.js';

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // "\x93NUMPY"
const MAX_HEADER_BYTES = 1024 * 1024;
const MAX_DIMS = 64;
/** Deepest nesting of ( [ { a header may use; NumPy writes 2 (a dict holding a tuple), structured dtypes a few more. */
const MAX_HEADER_DEPTH = 32;
const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

type ArrayCtor = new (buffer: ArrayBuffer, byteOffset: number, length: number) => TypedArray;

interface DtypeInfo {
  dtype: DType;
  itemsize: number;
  ctor: ArrayCtor;
}

/** Element types by NumPy kind+size code ("f4", "u1", ...). */
const BY_CODE: Record<string, DtypeInfo> = {
  f4: { dtype: 'float32', itemsize: 4, ctor: Float32Array },
  f8: { dtype: 'float64', itemsize: 8, ctor: Float64Array },
  i8: { dtype: 'int64', itemsize: 8, ctor: BigInt64Array },
  i4: { dtype: 'int32', itemsize: 4, ctor: Int32Array },
  i2: { dtype: 'int16', itemsize: 2, ctor: Int16Array },
  i1: { dtype: 'int8', itemsize: 1, ctor: Int8Array },
  u8: { dtype: 'uint64', itemsize: 8, ctor: BigUint64Array },
  u4: { dtype: 'uint32', itemsize: 4, ctor: Uint32Array },
  u2: { dtype: 'uint16', itemsize: 2, ctor: Uint16Array },
  u1: { dtype: 'uint8', itemsize: 1, ctor: Uint8Array },
  b1: { dtype: 'bool', itemsize: 1, ctor: Uint8Array },
};

const CODE_BY_DTYPE: Partial<Record<DType, string>> = Object.fromEntries(Object.entries(BY_CODE).map(([code, info]) => [info.dtype, code]));

function npyError(message: string, hint?: string): never {
  throw new BulwarkError('BULWARK_E_NPY', message, hint === undefined ? {} : { hint });
}

// ------------------------------------------------------------------------------------------ header literal

type PyValue = string | number | boolean | null | PyValue[] | { [k: string]: PyValue };

/** A parser for the Python literal subset NumPy writes in .npy headers; anything else is refused. */
class LiteralParser {
  private pos = 0;
  private depth = 0;

  constructor(private readonly src: string, private readonly what: string) {}

  parse(): PyValue {
    const v = this.value();
    this.skipSpace();
    if (this.pos !== this.src.length) this.fail('unexpected text after the header dict');
    return v;
  }

  private fail(msg: string): never {
    return npyError(`${this.what}: malformed header (${msg} at character ${this.pos}): ${quote(this.src)}`);
  }

  private skipSpace(): void {
    while (this.pos < this.src.length && /\s/.test(this.src[this.pos]!)) this.pos++;
  }

  private value(): PyValue {
    this.skipSpace();
    const c = this.src[this.pos];
    if (c === '{' || c === '(' || c === '[') {
      // Bounded so a header of thousands of nested brackets is refused instead of overflowing the stack.
      if (++this.depth > MAX_HEADER_DEPTH) this.fail(`nested deeper than ${MAX_HEADER_DEPTH} levels`);
      const v = c === '{' ? this.dict() : this.sequence(c === '(' ? ')' : ']');
      this.depth--;
      return v;
    }
    if (c === "'" || c === '"') return this.string(c);
    const word = /^(True|False|None|-?\d+L?)/.exec(this.src.slice(this.pos, this.pos + 32));
    if (word === null) return this.fail('expected a value');
    this.pos += word[0].length;
    if (word[0] === 'True' || word[0] === 'False') return word[0] === 'True';
    if (word[0] === 'None') return null;
    return Number(word[0].replace('L', '')); // "3L" is how Python 2 wrote long integers
  }

  private string(quote: string): string {
    const end = this.src.indexOf(quote, this.pos + 1);
    if (end < 0) this.fail('unterminated string');
    const s = this.src.slice(this.pos + 1, end);
    if (s.includes('\\')) this.fail('escape sequences are not expected in a header');
    this.pos = end + 1;
    return s;
  }

  private sequence(close: string): PyValue[] {
    this.pos++;
    const items: PyValue[] = [];
    for (;;) {
      this.skipSpace();
      if (this.src[this.pos] === close) break;
      items.push(this.value());
      this.skipSpace();
      if (this.src[this.pos] === ',') this.pos++;
      else if (this.src[this.pos] !== close) this.fail(`expected ',' or '${close}'`);
    }
    this.pos++;
    return items;
  }

  private dict(): { [k: string]: PyValue } {
    this.pos++;
    const out: { [k: string]: PyValue } = Object.create(null);
    for (;;) {
      this.skipSpace();
      if (this.src[this.pos] === '}') break;
      const key = this.value();
      if (typeof key !== 'string') this.fail('dict keys must be strings');
      this.skipSpace();
      if (this.src[this.pos] !== ':') this.fail("expected ':'");
      this.pos++;
      out[key] = this.value();
      this.skipSpace();
      if (this.src[this.pos] === ',') this.pos++;
      else if (this.src[this.pos] !== '}') this.fail("expected ',' or '}'");
    }
    this.pos++;
    return out;
  }
}

// ------------------------------------------------------------------------------------------ reading

interface Header {
  info: DtypeInfo;
  bigEndian: boolean;
  fortran: boolean;
  shape: number[];
  dataOffset: number;
}

function parseDescr(descr: PyValue, what: string): { info: DtypeInfo; bigEndian: boolean } {
  if (typeof descr !== 'string') {
    npyError(`${what}: structured (record) arrays are not supported`, 'Save each field as its own array (np.savez(f, a=rec["a"], ...)).');
  }
  const m = /^([<>|=]?)([a-zA-Z])(\d*)$/.exec(descr);
  if (m?.[2] === 'O') {
    npyError(`${what}: object arrays (dtype ${quote(descr)}) are refused: loading them would unpickle arbitrary Python objects`, 'Save a numeric array instead: np.save(f, arr.astype(np.float32)).');
  }
  const info = m ? BY_CODE[`${m[2]}${m[3]}`] : undefined;
  if (!m || !info) {
    npyError(`${what}: unsupported dtype ${quote(descr)}; supported: f4 f8 i1 i2 i4 i8 u1 u2 u4 u8 b1 in either byte order`, 'Convert the array first, e.g. arr.astype(np.float32).');
  }
  return { info, bigEndian: m[1] === '>' };
}

function parseShape(shape: PyValue, what: string): number[] {
  if (!Array.isArray(shape) || shape.length > MAX_DIMS) npyError(`${what}: header 'shape' must be a tuple of at most ${MAX_DIMS} integers`);
  return shape.map((d) => {
    if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) npyError(`${what}: shape ${quote(JSON.stringify(shape))} holds an invalid dimension`);
    return d;
  });
}

function readHeader(bytes: Uint8Array, what: string): Header {
  if (bytes.length < 10 || MAGIC.some((b, i) => bytes[i] !== b)) npyError(`${what}: not a .npy file (the magic string \\x93NUMPY is missing)`);
  const major = bytes[6]!;
  if (major < 1 || major > 3) npyError(`${what}: unsupported .npy format version ${major}.${bytes[7]}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const lenBytes = major === 1 ? 2 : 4;
  if (bytes.length < 8 + lenBytes) npyError(`${what}: truncated header`);
  const headerLen = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  if (headerLen > MAX_HEADER_BYTES) throw new BulwarkError('BULWARK_E_LIMIT', `${what}: header of ${headerLen} bytes is over the limit of ${MAX_HEADER_BYTES}`);
  const dataOffset = 8 + lenBytes + headerLen;
  if (dataOffset > bytes.length) npyError(`${what}: header says ${headerLen} bytes but the file ends first (${bytes.length} bytes)`);
  const text = new TextDecoder(major === 3 ? 'utf-8' : 'latin1').decode(bytes.subarray(8 + lenBytes, dataOffset));
  const dict = new LiteralParser(text.trim(), what).parse();
  if (dict === null || typeof dict !== 'object' || Array.isArray(dict)) npyError(`${what}: header is not a dict`);
  for (const key of ['descr', 'fortran_order', 'shape']) if (!(key in dict)) npyError(`${what}: header lacks '${key}'`);
  if (typeof dict.fortran_order !== 'boolean') npyError(`${what}: header 'fortran_order' must be True or False`);
  return { ...parseDescr(dict.descr!, what), fortran: dict.fortran_order, shape: parseShape(dict.shape!, what), dataOffset };
}

function swapBytes(bytes: Uint8Array, itemsize: number): void {
  for (let i = 0; i < bytes.length; i += itemsize) {
    for (let a = i, b = i + itemsize - 1; a < b; a++, b--) {
      const t = bytes[a]!;
      bytes[a] = bytes[b]!;
      bytes[b] = t;
    }
  }
}

/** Reorders a column-major (Fortran) array into row-major (C) order. */
function fortranToC<T extends TypedArray>(src: T, shape: readonly number[]): T {
  const out = new (src.constructor as new (n: number) => T)(src.length);
  const o = out as unknown as { [i: number]: unknown };
  const s = src as unknown as { [i: number]: unknown };
  const nd = shape.length;
  const fstride = new Array<number>(nd);
  for (let d = 0, acc = 1; d < nd; d++) {
    fstride[d] = acc;
    acc *= shape[d]!;
  }
  const idx = new Array<number>(nd).fill(0);
  let f = 0;
  for (let c = 0; c < src.length; c++) {
    o[c] = s[f];
    // Advance the C-order multi-index (last axis fastest) and track the matching Fortran offset.
    for (let d = nd - 1; d >= 0; d--) {
      idx[d]!++;
      f += fstride[d]!;
      if (idx[d]! < shape[d]!) break;
      f -= fstride[d]! * shape[d]!;
      idx[d] = 0;
    }
  }
  return out;
}

/**
 * Decodes a .npy file into a row-major tensor. Big-endian data is converted to native order, Fortran-ordered
 * data is transposed to C order, booleans become 0/1 bytes (dtype 'bool').
 * @param source the file's bytes, or a path to read
 * @param what a name for messages (defaults to the path or "npy data")
 * @returns a tensor owning a fresh buffer
 * @throws BulwarkError BULWARK_E_NPY for a malformed file, an object/structured/unsupported dtype, or a shape
 *   that does not match the byte length; BULWARK_E_LIMIT for an oversized header; file errors from reading a path
 */
export function readNpy(source: Uint8Array | string, what?: string): Tensor {
  const label = what ?? (typeof source === 'string' ? source : 'npy data');
  const bytes = typeof source === 'string' ? readFileChecked(source, 'npy file') : source;
  const h = readHeader(bytes, label);
  const count = sizeOf(h.shape);
  const available = bytes.length - h.dataOffset;
  if (!Number.isSafeInteger(count * h.info.itemsize) || count * h.info.itemsize !== available) {
    npyError(`${label}: shape [${h.shape.join(',')}] of ${h.info.dtype} needs ${count * h.info.itemsize} data bytes but the file holds ${available}`);
  }
  const copy = new Uint8Array(available); // a fresh, aligned buffer (Buffer#slice would alias the file's pool)
  copy.set(bytes.subarray(h.dataOffset, h.dataOffset + available));
  if (h.info.itemsize > 1 && h.bigEndian === HOST_LITTLE_ENDIAN) swapBytes(copy, h.info.itemsize);
  let data = new h.info.ctor(copy.buffer, 0, count);
  if (h.info.dtype === 'bool') for (let i = 0; i < copy.length; i++) copy[i] = copy[i] !== 0 ? 1 : 0;
  if (h.fortran && h.shape.length > 1) data = fortranToC(data, h.shape);
  return { data, shape: h.shape, dtype: h.info.dtype };
}

// ------------------------------------------------------------------------------------------ writing

function shapeLiteral(shape: readonly number[]): string {
  if (shape.length === 1) return `(${shape[0]},)`;
  return `(${shape.join(', ')})`;
}

/** Pads the header with spaces and a newline so the data starts 64-byte aligned, as NumPy does. */
function padHeader(literal: string, prefix: number): string {
  return literal + ' '.repeat((64 - ((prefix + literal.length + 1) % 64)) % 64) + '\n';
}

function checkTensor(t: Tensor, what: string): string {
  const code = CODE_BY_DTYPE[t.dtype];
  if (code === undefined) throw new BulwarkError('BULWARK_E_DTYPE', `${what}: dtype ${t.dtype} cannot be written to .npy`, { hint: 'Convert to float32 first.' });
  const expected = BY_CODE[code]!.ctor as unknown as abstract new (...a: never[]) => unknown;
  if (!(t.data instanceof expected)) throw new BulwarkError('BULWARK_E_DTYPE', `${what}: dtype ${t.dtype} does not match its data (${t.data.constructor.name})`);
  if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw new BulwarkError('BULWARK_E_SHAPE', `${what}: invalid shape [${t.shape.join(',')}]`);
  if (sizeOf(t.shape) !== t.data.length) {
    throw new BulwarkError('BULWARK_E_SHAPE', `${what}: shape [${t.shape.join(',')}] needs ${sizeOf(t.shape)} elements but data has ${t.data.length}`);
  }
  return BY_CODE[code]!.itemsize === 1 ? `|${code}` : `<${code}`;
}

/**
 * Encodes a tensor as a .npy file (version 1.0, or 2.0 when the header needs it), little-endian, C order.
 * @param tensor the tensor; its data's type must match its dtype
 * @returns the file bytes
 * @throws BulwarkError BULWARK_E_DTYPE for float16 or a data/dtype mismatch, BULWARK_E_SHAPE for a bad shape
 */
export function encodeNpy(tensor: Tensor): Buffer {
  const descr = checkTensor(tensor, 'encodeNpy');
  const literal = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shapeLiteral(tensor.shape)}, }`;
  let version = 1;
  let dict = padHeader(literal, 10);
  if (dict.length > 0xffff) {
    version = 2;
    dict = padHeader(literal, 12);
  }
  const prefix = version === 1 ? 10 : 12;
  const head = Buffer.alloc(prefix);
  Buffer.from(MAGIC).copy(head, 0);
  head[6] = version;
  head[7] = 0;
  if (version === 1) head.writeUInt16LE(dict.length, 8);
  else head.writeUInt32LE(dict.length, 8);
  const data = Buffer.from(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength);
  const body = HOST_LITTLE_ENDIAN ? data : Buffer.from(data);
  if (!HOST_LITTLE_ENDIAN) swapBytes(body, tensor.data.BYTES_PER_ELEMENT);
  return Buffer.concat([head, Buffer.from(dict, 'latin1'), body]);
}

/**
 * Writes a tensor to a .npy file atomically (a reader never sees a half-written file).
 * @param path the destination
 * @param tensor the tensor to write
 * @param what the flag or role for messages (default "output file")
 * @throws BulwarkError as {@link encodeNpy}; BULWARK_E_FILE_WRITE naming `what` when the file cannot be written
 */
export function writeNpy(path: string, tensor: Tensor, what = 'output file'): void {
  writeFileAtomic(path, encodeNpy(tensor), what);
}

// ------------------------------------------------------------------------------------------ npz

/** One array of an .npz archive, in archive order. */
export interface NpzArray {
  name: string;
  tensor: Tensor;
}

/**
 * Reads every array of an .npz archive, keeping the archive's order (which `np.savez` sets to argument order).
 * @param source the archive bytes, or a path
 * @param limits ZIP safety limits (entry count, sizes, compression ratio)
 * @returns the arrays with their names (the entry names without ".npy")
 * @throws BulwarkError BULWARK_E_NPY when the file is not a ZIP, entries overlap, an entry is not .npy, or a name repeats;
 *   BULWARK_E_DATA_FORMAT / BULWARK_E_LIMIT from the ZIP layer; anything {@link readNpy} throws
 */
export function readNpzArrays(source: Uint8Array | string, limits?: ZipLimits): NpzArray[] {
  const label = typeof source === 'string' ? source : 'npz data';
  const bytes = typeof source === 'string' ? readFileChecked(source, 'npz file') : source;
  if (!isZip(bytes)) npyError(`${label}: not an .npz archive (no ZIP signature)`);
  const entries = listZip(bytes, limits);
  const overlap = findOverlappingEntries(bytes, entries);
  if (overlap) npyError(`${label}: entries ${quote(overlap[0].name)} and ${quote(overlap[1].name)} overlap (a zip-bomb construction)`);
  const out: NpzArray[] = [];
  const seen = new Set<string>();
  for (const entry of entries) {
    if (entry.isDirectory) continue;
    if (!entry.name.endsWith('.npy')) npyError(`${label}: entry ${quote(entry.name)} is not a .npy array`);
    const name = entry.name.slice(0, -4);
    if (seen.has(name)) npyError(`${label}: array ${quote(name)} appears twice`);
    seen.add(name);
    out.push({ name, tensor: readNpy(readZipEntry(bytes, entry, limits), `${label}:${entry.name}`) });
  }
  return out;
}

/**
 * Reads an .npz archive into a record of named tensors (a prototype-less object, so any name is safe as a key).
 * @param source the archive bytes, or a path
 * @param limits ZIP safety limits
 * @returns arrays by name
 * @throws BulwarkError as {@link readNpzArrays}
 */
export function readNpz(source: Uint8Array | string, limits?: ZipLimits): Record<string, Tensor> {
  const out: Record<string, Tensor> = Object.create(null);
  for (const a of readNpzArrays(source, limits)) out[a.name] = a.tensor;
  return out;
}

/**
 * Encodes named tensors as an .npz archive (one `<name>.npy` entry each, like `np.savez`).
 * @param arrays tensors by name
 * @param opts compress: deflate the entries, like `np.savez_compressed`
 * @returns the archive bytes
 * @throws BulwarkError as {@link encodeNpy}
 */
export function encodeNpz(arrays: Record<string, Tensor>, opts: { compress?: boolean } = {}): Buffer {
  const files = Object.entries(arrays).map(([name, t]) => ({ name: `${name}.npy`, data: encodeNpy(t) }));
  return writeZip(files, { deflate: opts.compress === true });
}

/**
 * Writes named tensors to an .npz file atomically.
 * @param path the destination
 * @param arrays tensors by name
 * @param opts compress: deflate the entries
 * @throws BulwarkError as {@link encodeNpy}
 */
export function writeNpz(path: string, arrays: Record<string, Tensor>, opts: { compress?: boolean } = {}): void {
  writeFileAtomic(path, encodeNpz(arrays, opts));
}

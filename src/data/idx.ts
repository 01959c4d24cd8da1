/**
 * IDX files (the MNIST format, http://yann.lecun.com/exdb/mnist/): a 4-byte magic (0, 0, type, ndim), ndim
 * big-endian uint32 dimensions, then big-endian data. Gzip-compressed files are recognised and inflated.
 */
import { gunzipSync } from 'node:zlib';
import { BulwarkError } from '../core/errors.js';
import { readFileChecked } from '../core/fsio.js';
import { sizeOf, type DType, type Tensor, type TypedArray } from '../core/tensor.js';

/** Options of {@link readIdx}. */
export interface IdxOptions {
  /** Largest decoded size in bytes (after gunzip); default 2 GiB. */
  maxBytes?: number;
}

interface IdxType {
  dtype: DType;
  itemsize: number;
  ctor: new (n: number) => TypedArray;
  get: (v: DataView, off: number) => number;
}

const TYPES: Record<number, IdxType> = {
  0x08: { dtype: 'uint8', itemsize: 1, ctor: Uint8Array, get: (v, o) => v.getUint8(o) },
  0x09: { dtype: 'int8', itemsize: 1, ctor: Int8Array, get: (v, o) => v.getInt8(o) },
  0x0b: { dtype: 'int16', itemsize: 2, ctor: Int16Array, get: (v, o) => v.getInt16(o, false) },
  0x0c: { dtype: 'int32', itemsize: 4, ctor: Int32Array, get: (v, o) => v.getInt32(o, false) },
  0x0d: { dtype: 'float32', itemsize: 4, ctor: Float32Array, get: (v, o) => v.getFloat32(o, false) },
  0x0e: { dtype: 'float64', itemsize: 8, ctor: Float64Array, get: (v, o) => v.getFloat64(o, false) },
};

const DEFAULT_MAX_BYTES = 2 * 1024 ** 3;
const MAX_DIMS = 16;

function idxError(what: string, message: string): never {
  throw new BulwarkError('BULWARK_E_DATA_FORMAT', `${what}: ${message}`, { hint: 'Check the file is a complete IDX file (as distributed with MNIST), optionally gzipped.' });
}

function gunzipBounded(bytes: Uint8Array, maxBytes: number, what: string): Uint8Array {
  try {
    return gunzipSync(bytes, { maxOutputLength: maxBytes });
  } catch (e) {
    if (e instanceof RangeError) throw new BulwarkError('BULWARK_E_LIMIT', `${what}: decompresses to more than ${maxBytes} bytes`);
    return idxError(what, `corrupt gzip data (${(e as Error).message})`);
  }
}

/**
 * Reads an IDX file (types 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64).
 * @param source the file's bytes (raw or gzipped), or a path
 * @param opts maxBytes: the largest decoded size accepted
 * @returns a tensor with the file's dimensions and element type
 * @throws BulwarkError BULWARK_E_DATA_FORMAT for a bad magic, unknown type, or a size that does not match the
 *   dimensions; BULWARK_E_LIMIT when the decoded file is too large; file errors from reading a path
 */
export function readIdx(source: Uint8Array | string, opts: IdxOptions = {}): Tensor {
  const what = typeof source === 'string' ? source : 'IDX data';
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_BYTES;
  let bytes = typeof source === 'string' ? readFileChecked(source, 'IDX file') : source;
  if (bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b) bytes = gunzipBounded(bytes, maxBytes, what);
  if (bytes.length > maxBytes) throw new BulwarkError('BULWARK_E_LIMIT', `${what}: ${bytes.length} bytes, over the limit of ${maxBytes}`);
  if (bytes.length < 4 || bytes[0] !== 0 || bytes[1] !== 0) idxError(what, 'not an IDX file (the magic number must start with two zero bytes)');
  const type = TYPES[bytes[2]!];
  if (type === undefined) idxError(what, `unknown IDX data type 0x${bytes[2]!.toString(16).padStart(2, '0')}`);
  const ndim = bytes[3]!;
  if (ndim < 1 || ndim > MAX_DIMS) idxError(what, `${ndim} dimensions (expected 1 to ${MAX_DIMS})`);
  const dataOffset = 4 + 4 * ndim;
  if (bytes.length < dataOffset) idxError(what, `truncated header (${bytes.length} bytes for ${ndim} dimensions)`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const shape = Array.from({ length: ndim }, (_, i) => view.getUint32(4 + 4 * i, false));
  const count = sizeOf(shape);
  const available = bytes.length - dataOffset;
  if (count * type.itemsize !== available) {
    idxError(what, `dimensions [${shape.join(',')}] need ${count * type.itemsize} data bytes but the file holds ${available}`);
  }
  return { data: decode(view, dataOffset, count, type), shape, dtype: type.dtype };
}

function decode(view: DataView, offset: number, count: number, type: IdxType): TypedArray {
  const out = new type.ctor(count);
  if (type.itemsize === 1) {
    (out as Uint8Array).set(new Uint8Array(view.buffer, view.byteOffset + offset, count));
    return out;
  }
  const o = out as Int16Array | Int32Array | Float32Array | Float64Array;
  for (let i = 0; i < count; i++) o[i] = type.get(view, offset + i * type.itemsize);
  return out;
}

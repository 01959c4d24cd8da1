import { BulwarkError } from './errors.js';

/** Element types Bulwark moves between NumPy files, ONNX and onnxruntime. */
export type DType = 'float32' | 'float64' | 'int64' | 'int32' | 'uint8' | 'int8' | 'bool' | 'float16' | 'int16' | 'uint16' | 'uint32' | 'uint64';

export type TypedArray =
  | Float32Array
  | Float64Array
  | BigInt64Array
  | BigUint64Array
  | Int32Array
  | Uint32Array
  | Uint8Array
  | Int8Array
  | Int16Array
  | Uint16Array;

/** A dense row-major tensor: data plus shape (DESIGN.md section 2). Images are NCHW float32. */
export interface Tensor<T extends TypedArray = TypedArray> {
  data: T;
  shape: number[];
  dtype: DType;
}

export type Float32Tensor = Tensor<Float32Array>;

/** Number of elements of a shape; 1 for a scalar. */
export function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Row-major strides of a shape. */
export function stridesOf(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i]!;
  }
  return s;
}

/** Builds a float32 tensor, checking that data and shape agree. */
export function f32(data: Float32Array | number[], shape: number[]): Float32Tensor {
  const arr = data instanceof Float32Array ? data : Float32Array.from(data);
  if (arr.length !== sizeOf(shape)) {
    throw new BulwarkError('BULWARK_E_SHAPE', `data has ${arr.length} elements but shape [${shape.join(',')}] needs ${sizeOf(shape)}`);
  }
  return { data: arr, shape: [...shape], dtype: 'float32' };
}

export function zerosF32(shape: number[]): Float32Tensor {
  return { data: new Float32Array(sizeOf(shape)), shape: [...shape], dtype: 'float32' };
}

/** Rows [start, end) of a tensor along its first axis, as a view sharing memory. */
export function sliceRows<T extends TypedArray>(t: Tensor<T>, start: number, end: number): Tensor<T> {
  const row = sizeOf(t.shape.slice(1));
  return { data: t.data.subarray(start * row, end * row) as T, shape: [end - start, ...t.shape.slice(1)], dtype: t.dtype };
}

/** Copies rows picked by index along the first axis. */
export function gatherRows<T extends TypedArray>(t: Tensor<T>, idx: ArrayLike<number>): Tensor<T> {
  const row = sizeOf(t.shape.slice(1));
  const Ctor = t.data.constructor as new (n: number) => T;
  const out = new Ctor(idx.length * row);
  for (let i = 0; i < idx.length; i++) {
    const r = idx[i]!;
    (out as unknown as { set(a: ArrayLike<unknown>, o: number): void }).set(t.data.subarray(r * row, (r + 1) * row) as unknown as ArrayLike<unknown>, i * row);
  }
  return { data: out, shape: [idx.length, ...t.shape.slice(1)], dtype: t.dtype };
}

/** Concatenates tensors along the first axis. */
export function concatRows<T extends TypedArray>(parts: Tensor<T>[]): Tensor<T> {
  if (parts.length === 0) throw new BulwarkError('BULWARK_E_ARG', 'concatRows needs at least one tensor');
  const first = parts[0]!;
  const total = parts.reduce((a, p) => a + p.data.length, 0);
  const Ctor = first.data.constructor as new (n: number) => T;
  const out = new Ctor(total);
  let off = 0;
  for (const p of parts) {
    (out as unknown as { set(a: ArrayLike<unknown>, o: number): void }).set(p.data as unknown as ArrayLike<unknown>, off);
    off += p.data.length;
  }
  return { data: out, shape: [parts.reduce((a, p) => a + p.shape[0]!, 0), ...first.shape.slice(1)], dtype: first.dtype };
}

/** Index of the largest value in each row of a [N, K] tensor. */
export function argmaxRows(t: Tensor): Int32Array {
  const n = t.shape[0] ?? 1;
  const k = t.data.length / Math.max(n, 1);
  const out = new Int32Array(n);
  const d = t.data as Float32Array;
  for (let i = 0; i < n; i++) {
    let best = 0;
    let bv = -Infinity;
    for (let j = 0; j < k; j++) {
      const v = d[i * k + j]!;
      if (v > bv) {
        bv = v;
        best = j;
      }
    }
    out[i] = best;
  }
  return out;
}

/** The flat index of the first NaN or infinite element, or -1. */
export function firstNonFinite(data: ArrayLike<number>): number {
  for (let i = 0; i < data.length; i++) if (!Number.isFinite(data[i]!)) return i;
  return -1;
}

/** Throws BULWARK_E_NONFINITE naming `what` if any element is NaN or infinite. */
export function assertFinite(data: Float32Array | Float64Array, what: string): void {
  const i = firstNonFinite(data);
  if (i >= 0) throw new BulwarkError('BULWARK_E_NONFINITE', `${what} holds a non-finite value (${data[i]}) at flat index ${i}`);
}

/** The largest finite float32. */
export const FLOAT32_MAX = 3.4028234663852886e38;

/**
 * Converts values to float32, refusing any that cannot be represented: a NaN or infinity (BULWARK_E_NONFINITE, as
 * assertFinite), or a finite value beyond ±FLOAT32_MAX that would become infinite (said as an overflow, not as the
 * infinity it would turn into).
 */
export function toFloat32Checked(src: ArrayLike<number | bigint>, what: string): Float32Array {
  const out = new Float32Array(src.length);
  for (let i = 0; i < out.length; i++) {
    const v = Number(src[i]!);
    out[i] = v;
    if (!Number.isFinite(out[i]!)) {
      if (Number.isFinite(v)) {
        throw new BulwarkError('BULWARK_E_NONFINITE', `${what} holds ${v} at flat index ${i}, which overflows float32 (largest magnitude ${FLOAT32_MAX.toPrecision(8)})`, {
          hint: 'The model runs in float32: rescale or clip the data into its range before passing it in.',
        });
      }
      throw new BulwarkError('BULWARK_E_NONFINITE', `${what} holds a non-finite value (${v}) at flat index ${i}`);
    }
  }
  return out;
}

export function shapeStr(shape: readonly (number | string)[]): string {
  return `[${shape.join(',')}]`;
}

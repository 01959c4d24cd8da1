/**
 * Data specs: one string that names a dataset, as the CLI and configs take it. Built-ins read
 * `<dataset>:<split>` with an optional Python-style slice (`mnist:test[0:1000]`, `mnist:train[-1000:]`); files are
 * `.npz`, `.npy`, an `x.npy,y.npy` pair or `.csv` (with `#label=<column>`), and take the same slice suffix.
 */
import { BulwarkError } from '../core/errors.js';
import { assertFinite, toFloat32Checked, type Tensor } from '../core/tensor.js';
import { readCsv } from './csv.js';
import { BUILTIN_DATASETS, builtinSplit, isBuiltinName, type BuiltinName, type Split } from './datasets.js';
import { readNpy, readNpzArrays, type NpzArray } from './npy.js';
import { checkClassCount, classId } from './labels.js';

/** A dataset: inputs (float32, first axis = examples) and optional integer labels. */
export interface Dataset {
  /** The spec it was loaded from, e.g. "mnist:test[0:1000]". */
  name: string;
  /** Inputs, float32 [N, ...]; images are NCHW. */
  x: Tensor<Float32Array>;
  /** Class ids, one per example, or undefined when the source has no labels. */
  y: Int32Array | undefined;
  /** Number of classes (known for built-ins; max label + 1 for files), undefined without labels. */
  numClasses: number | undefined;
  /** Class names by id, when known. */
  classNames?: string[];
}

/** A Python-style slice as written (bounds may be negative or omitted). */
export interface SliceSpec {
  start?: number;
  end?: number;
}

/** A parsed data spec. */
export type DataSpec =
  | { kind: 'builtin'; name: BuiltinName; split: Split; slice?: SliceSpec }
  | { kind: 'npz'; path: string; slice?: SliceSpec }
  | { kind: 'npy'; path: string; slice?: SliceSpec }
  | { kind: 'npy-pair'; xPath: string; yPath: string; slice?: SliceSpec }
  | { kind: 'csv'; path: string; labelColumn?: string | number; slice?: SliceSpec };

/** The accepted spec forms, shown in the hint of every spec error. */
export const DATA_SPEC_FORMS = [
  'mnist:train, mnist:test, fashion-mnist:train, fashion-mnist:test',
  'a slice after any spec: mnist:test[0:1000], mnist:test[:500], mnist:train[-1000:]',
  'data.npz (arrays x and y, else the first float and the first integer array)',
  'x.npy (inputs only), or x.npy,y.npy (inputs and labels)',
  'table.csv (last column is the label) or table.csv#label=<column name or index>',
];

const SPEC_HINT = `Accepted data specs: ${DATA_SPEC_FORMS.join('; ')}.`;
const SPLITS: readonly Split[] = ['train', 'test'];

function specError(message: string): never {
  throw new BulwarkError('BULWARK_E_DATA_SPEC', message, { hint: SPEC_HINT });
}

// ------------------------------------------------------------------------------------------ parsing

function splitSlice(spec: string): { base: string; slice?: SliceSpec } {
  if (!spec.endsWith(']')) return { base: spec };
  const m = /^(.*)\[\s*([+-]?\d+)?\s*:\s*([+-]?\d+)?\s*\]$/s.exec(spec);
  if (!m) specError(`data spec ${JSON.stringify(spec)}: a slice must read [start:end] with integer bounds, either of which may be omitted`);
  const slice: SliceSpec = {};
  if (m[2] !== undefined) slice.start = Number(m[2]);
  if (m[3] !== undefined) slice.end = Number(m[3]);
  return { base: m[1]!.trim(), slice };
}

function parseBuiltin(base: string, spec: string): DataSpec | undefined {
  // A word with no dot or slash cannot be a file path with an extension, so it must name a built-in.
  const m = /^([A-Za-z][\w-]*)(?::([A-Za-z]\w*))?$/.exec(base);
  if (!m) return undefined;
  const [, name, split] = m;
  if (!isBuiltinName(name!)) specError(`data spec ${JSON.stringify(spec)}: unknown dataset ${JSON.stringify(name)}; built-ins are ${BUILTIN_DATASETS.join(', ')}, and file paths need an extension`);
  if (split === undefined) specError(`data spec ${JSON.stringify(spec)}: name a split, e.g. ${name}:train or ${name}:test`);
  if (!(SPLITS as readonly string[]).includes(split)) specError(`data spec ${JSON.stringify(spec)}: unknown split ${JSON.stringify(split)}; ${name} has train and test`);
  return { kind: 'builtin', name: name as BuiltinName, split: split as Split };
}

function parseCsvFragment(fragment: string, spec: string): string | number {
  const m = /^label=(.+)$/.exec(fragment);
  if (!m) specError(`data spec ${JSON.stringify(spec)}: the only CSV option is #label=<column>, got #${fragment}`);
  return /^-?\d+$/.test(m[1]!) ? Number(m[1]) : m[1]!;
}

function parseFile(base: string, spec: string): DataSpec {
  const csv = /^(.*\.csv)#(.*)$/is.exec(base);
  if (csv) return { kind: 'csv', path: csv[1]!, labelColumn: parseCsvFragment(csv[2]!, spec) };
  const parts = base.split(',');
  if (parts.length === 2 && parts.every((p) => p.trim().toLowerCase().endsWith('.npy'))) {
    return { kind: 'npy-pair', xPath: parts[0]!.trim(), yPath: parts[1]!.trim() };
  }
  const lower = base.toLowerCase();
  if (lower.endsWith('.npz')) return { kind: 'npz', path: base };
  if (lower.endsWith('.npy')) return { kind: 'npy', path: base };
  if (lower.endsWith('.csv')) return { kind: 'csv', path: base };
  return specError(`data spec ${JSON.stringify(spec)} is neither a built-in dataset nor a .npz, .npy or .csv path`);
}

/**
 * Parses a data spec without reading any data (for validating options early).
 * @param spec e.g. "mnist:test[0:1000]", "data.npz", "x.npy,y.npy", "t.csv#label=class"
 * @returns the parsed spec
 * @throws BulwarkError BULWARK_E_DATA_SPEC naming what is wrong, with the accepted forms as hint
 */
export function parseDataSpec(spec: string): DataSpec {
  const trimmed = spec.trim();
  if (trimmed.length === 0) specError('empty data spec');
  const { base, slice } = splitSlice(trimmed);
  if (base.length === 0) specError(`data spec ${JSON.stringify(spec)} has a slice but no dataset`);
  const parsed = parseBuiltin(base, trimmed) ?? parseFile(base, trimmed);
  return slice ? { ...parsed, slice } : parsed;
}

/**
 * The files a data spec reads (none for a built-in dataset or a spec that does not parse), so commands can keep
 * their outputs off them.
 */
export function dataSpecFiles(spec: unknown): string[] {
  if (typeof spec !== 'string') return [];
  let p: DataSpec;
  try {
    p = parseDataSpec(spec);
  } catch {
    return [];
  }
  switch (p.kind) {
    case 'builtin':
      return [];
    case 'npy-pair':
      return [p.xPath, p.yPath];
    default:
      return [p.path];
  }
}

// ------------------------------------------------------------------------------------------ conversion

function toFloat32(t: Tensor, what: string): Tensor<Float32Array> {
  if (t.shape.length === 0) throw new BulwarkError('BULWARK_E_SHAPE', `${what}: inputs must have an examples axis, got a scalar`);
  if (t.data instanceof Float32Array) return { data: t.data, shape: t.shape, dtype: 'float32' };
  return { data: toFloat32Checked(t.data as ArrayLike<number | bigint>, what), shape: [...t.shape], dtype: 'float32' };
}

/** Reads labels from [N], [N,1] or one-hot [N,K] arrays of any numeric dtype. */
function toLabels(t: Tensor, what: string): { y: Int32Array; numClasses: number } {
  const n = t.shape[0] ?? 0;
  const k = t.shape.length === 2 ? t.shape[1]! : 1;
  if (t.shape.length === 0 || t.shape.length > 2) throw new BulwarkError('BULWARK_E_LABELS', `${what}: labels must be [N], [N,1] or one-hot [N,K], got [${t.shape.join(',')}]`);
  const src = t.data as ArrayLike<number | bigint>;
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) y[i] = k === 1 ? classId(src[i]!, i, what) : oneHotIndex(src, i, k, what);
  const numClasses = k > 1 ? k : y.reduce((m, v) => Math.max(m, v), -1) + 1;
  return { y, numClasses: checkClassCount(numClasses, what) };
}

function oneHotIndex(src: ArrayLike<number | bigint>, row: number, k: number, what: string): number {
  let hot = -1;
  for (let j = 0; j < k; j++) {
    const v = Number(src[row * k + j]!);
    if (v === 1 && hot < 0) hot = j;
    else if (v !== 0) hot = -2;
  }
  if (hot < 0) throw new BulwarkError('BULWARK_E_LABELS', `${what}: row ${row} of the [N,${k}] labels is not one-hot`);
  return hot;
}

function assemble(name: string, x: Tensor<Float32Array>, yRaw: Tensor | undefined, what: string): Dataset {
  if (x.shape[0] === 0) throw new BulwarkError('BULWARK_E_SHAPE', `${what}: the inputs hold no examples`);
  assertFinite(x.data, what);
  if (yRaw === undefined) return { name, x, y: undefined, numClasses: undefined };
  const { y, numClasses } = toLabels(yRaw, what);
  if (y.length !== x.shape[0]) throw new BulwarkError('BULWARK_E_SHAPE', `${what}: ${x.shape[0]} inputs but ${y.length} labels`);
  return { name, x, y, numClasses };
}

const isFloat = (t: Tensor): boolean => t.dtype === 'float32' || t.dtype === 'float64';
const isInt = (t: Tensor): boolean => /^u?int/.test(t.dtype);

function pickNpz(arrays: NpzArray[], file: string): { x: Tensor; y?: Tensor } {
  const named = (n: string): NpzArray | undefined => arrays.find((a) => a.name === n) ?? arrays.find((a) => a.name === n.toUpperCase());
  const x = named('x') ?? arrays.find((a) => isFloat(a.tensor));
  if (!x) {
    const listing = arrays.map((a) => `${a.name} (${a.tensor.dtype} [${a.tensor.shape.join(',')}])`).join(', ') || 'none';
    specError(`${file}: no array named x and no float array to use as inputs; arrays: ${listing}`);
  }
  const y = named('y') ?? arrays.find((a) => a !== x && isInt(a.tensor));
  return y ? { x: x.tensor, y: y.tensor } : { x: x.tensor };
}

// ------------------------------------------------------------------------------------------ slicing

/**
 * Resolves a Python-style slice against a dataset size. Bounds outside [-n, n] and empty ranges are errors,
 * never clamped.
 * @param n the dataset size
 * @param slice the bounds as written
 * @param what the dataset, for messages
 * @returns [start, end) with 0 <= start < end <= n
 * @throws BulwarkError BULWARK_E_DATA_SPEC naming the dataset size
 */
export function resolveSlice(n: number, slice: SliceSpec, what: string): [number, number] {
  const text = `[${slice.start ?? ''}:${slice.end ?? ''}]`;
  const fix = (v: number | undefined, dflt: number): number => {
    if (v === undefined) return dflt;
    if (v < -n || v > n) specError(`slice ${text} is out of range for ${what}, which has ${n} examples (bounds must lie in -${n}..${n})`);
    return v < 0 ? n + v : v;
  };
  const start = fix(slice.start, 0);
  const end = fix(slice.end, n);
  if (start >= end) specError(`slice ${text} of ${what} (${n} examples) selects no examples`);
  return [start, end];
}

/** Copies rows [start, end) of a dataset (copies, so callers can never alter the dataset cache). */
function copyRows(ds: Dataset, start: number, end: number, name: string): Dataset {
  const row = ds.x.data.length / Math.max(ds.x.shape[0]!, 1);
  const x: Tensor<Float32Array> = { data: ds.x.data.slice(start * row, end * row), shape: [end - start, ...ds.x.shape.slice(1)], dtype: 'float32' };
  const out: Dataset = { name, x, y: ds.y?.slice(start, end), numClasses: ds.numClasses };
  if (ds.classNames) out.classNames = [...ds.classNames];
  return out;
}

// ------------------------------------------------------------------------------------------ loading

function loadParsed(p: DataSpec, name: string): Dataset {
  switch (p.kind) {
    case 'builtin':
      return builtinSplit(p.name, p.split);
    case 'npz': {
      const { x, y } = pickNpz(readNpzArrays(p.path), p.path);
      return assemble(name, toFloat32(x, p.path), y, p.path);
    }
    case 'npy':
      return assemble(name, toFloat32(readNpy(p.path), p.path), undefined, p.path);
    case 'npy-pair':
      return assemble(name, toFloat32(readNpy(p.xPath), p.xPath), readNpy(p.yPath), p.yPath);
    case 'csv': {
      const t = readCsv(p.path, p.labelColumn === undefined ? {} : { labelColumn: p.labelColumn });
      const numClasses = checkClassCount(t.classNames ? t.classNames.length : t.labels.reduce((m, v) => Math.max(m, v), -1) + 1, p.path);
      return { name, x: t.features, y: t.labels, numClasses, ...(t.classNames ? { classNames: t.classNames } : {}) };
    }
  }
}

/**
 * Loads a dataset from a spec. Built-ins are parsed once per process and copied out, so changing a returned
 * dataset never affects a later load. File inputs are converted to float32 as they are (no rescaling: store
 * images in the model's input range) and must be finite.
 * @param spec a data spec (see {@link DATA_SPEC_FORMS})
 * @returns the dataset, named by the spec
 * @throws BulwarkError BULWARK_E_DATA_SPEC for a bad spec or an out-of-range slice; BULWARK_E_FILE_NOT_FOUND,
 *   BULWARK_E_NPY, BULWARK_E_DATA_FORMAT, BULWARK_E_LABELS, BULWARK_E_SHAPE, BULWARK_E_NONFINITE from the files
 */
export async function loadData(spec: string): Promise<Dataset> {
  const parsed = parseDataSpec(spec);
  const name = spec.trim();
  const full = loadParsed(parsed, name);
  const n = full.x.shape[0]!;
  const base = parsed.kind === 'builtin' ? `${parsed.name}:${parsed.split}` : name;
  const [start, end] = parsed.slice ? resolveSlice(n, parsed.slice, base) : [0, n];
  if (parsed.kind !== 'builtin' && start === 0 && end === n) return full;
  return copyRows(full, start, end, name);
}

import * as path from 'node:path';
import * as fs from 'node:fs';
import { BulwarkError } from '../core/errors.js';
import { confinedPath } from '../core/fsio.js';
import { quote } from '../core/quote.js';
import type { TypedArray } from '../core/tensor.js';
import {
  ATTR,
  decodeModel,
  encodeModel,
  int64,
  type AttributeProto,
  type DimensionProto,
  type GraphProto,
  type ModelProto,
  type NodeProto,
  type TensorProto,
  type ValueInfoProto,
} from './proto.js';

/** TensorProto.DataType values. */
export const ELEM = {
  FLOAT: 1,
  UINT8: 2,
  INT8: 3,
  UINT16: 4,
  INT16: 5,
  INT32: 6,
  INT64: 7,
  STRING: 8,
  BOOL: 9,
  FLOAT16: 10,
  DOUBLE: 11,
  UINT32: 12,
  UINT64: 13,
  BFLOAT16: 16,
} as const;

const ELEM_NAMES: Record<number, string> = Object.fromEntries(Object.entries(ELEM).map(([k, v]) => [v, k.toLowerCase()]));

/** The ONNX type name of an element type, for messages ("float", "int64", ...). */
export function elemName(t: number): string {
  return ELEM_NAMES[t] ?? `type#${t}`;
}

/** Bytes per element of an element type, or 0 for strings and unknown types. */
export function elemSize(t: number): number {
  switch (t) {
    case ELEM.FLOAT:
    case ELEM.INT32:
    case ELEM.UINT32:
      return 4;
    case ELEM.DOUBLE:
    case ELEM.INT64:
    case ELEM.UINT64:
      return 8;
    case ELEM.INT16:
    case ELEM.UINT16:
    case ELEM.FLOAT16:
    case ELEM.BFLOAT16:
      return 2;
    case ELEM.INT8:
    case ELEM.UINT8:
    case ELEM.BOOL:
      return 1;
    default:
      return 0;
  }
}

/** A constant tensor of the graph (initializer or attribute value). Float16 data is kept as raw 16-bit words. */
export interface TensorData {
  dataType: number;
  dims: number[];
  data: TypedArray;
}

/** An attribute value. Graph-valued attributes (If, Loop, Scan bodies) are kept as their protobuf. */
export type Attr =
  | { type: typeof ATTR.FLOAT; value: number }
  | { type: typeof ATTR.INT; value: number }
  | { type: typeof ATTR.STRING; value: string }
  | { type: typeof ATTR.TENSOR; value: TensorData }
  | { type: typeof ATTR.FLOATS; value: number[] }
  | { type: typeof ATTR.INTS; value: number[] }
  | { type: typeof ATTR.STRINGS; value: string[] }
  | { type: typeof ATTR.GRAPH; value: GraphProto }
  | { type: number; value: AttributeProto; raw: true };

export interface Node {
  name: string;
  opType: string;
  domain: string;
  inputs: string[];
  outputs: string[];
  attrs: Map<string, Attr>;
}

/** A graph input or output: name, element type and shape (numbers for fixed dims, strings for symbolic ones, null if unknown). */
export interface ValueInfo {
  name: string;
  elemType: number;
  shape: (number | string | null)[] | null;
}

/** An ONNX model as Bulwark edits it. */
export interface Graph {
  name: string;
  nodes: Node[];
  inputs: ValueInfo[];
  outputs: ValueInfo[];
  initializers: Map<string, TensorData>;
  valueInfo: Map<string, ValueInfo>;
  /** Version of the default (ai.onnx) domain. */
  opset: number;
  /** Every opset import, the default domain included. */
  opsetImports: { domain: string; version: number }[];
  irVersion: number;
  producerName: string;
  producerVersion: string;
  docString: string;
  metadata: Record<string, string>;
  /** Model-local functions, kept as protobuf so they round-trip. */
  functions: ModelProto['functions'];
}

export const MIN_OPSET = 11;
export const MAX_OPSET = 21;

const utf8 = new TextDecoder('utf-8', { fatal: false });
const utf8enc = new TextEncoder();

/** Options for reading a model. */
export interface ReadOptions {
  /** Folder that external-data paths resolve in; required for models with external data. */
  baseDir?: string;
  /** Refuse tensors whose element count exceeds this (denial-of-service guard). */
  maxElements?: number;
}

/**
 * Reads an ONNX model from a path or bytes into the editable Graph form.
 * External data is read only from files inside the model's folder.
 * @throws BulwarkError BULWARK_E_ONNX_PARSE, BULWARK_E_ONNX_INVALID, BULWARK_E_PATH_ESCAPE, BULWARK_E_OPSET
 */
export function readModel(source: string | Uint8Array, opts: ReadOptions = {}): Graph {
  let bytes: Uint8Array;
  let baseDir = opts.baseDir;
  if (typeof source === 'string') {
    if (!fs.existsSync(source)) throw new BulwarkError('BULWARK_E_FILE_NOT_FOUND', `model file not found: ${source}`);
    const st = fs.statSync(source);
    if (!st.isFile()) throw new BulwarkError('BULWARK_E_FILE_READ', `model path is not a file: ${source}`);
    bytes = fs.readFileSync(source);
    baseDir ??= path.dirname(path.resolve(source));
  } else {
    bytes = source;
  }
  if (bytes.length === 0) throw new BulwarkError('BULWARK_E_ONNX_PARSE', typeof source === 'string' ? `model file ${source} is empty` : 'the model file is empty');
  const proto = decodeModel(bytes, typeof source === 'string' ? `model file ${source}` : 'the model');
  return graphFromProto(proto, { ...opts, ...(baseDir === undefined ? {} : { baseDir }) });
}

/** Converts a decoded ModelProto into a Graph. */
export function graphFromProto(proto: ModelProto, opts: ReadOptions = {}): Graph {
  const g = proto.graph!;
  const opsetImports = (proto.opsetImport ?? []).map((o) => ({ domain: o.domain ?? '', version: int64(o.version) }));
  const def = opsetImports.find((o) => o.domain === '' || o.domain === 'ai.onnx');
  if (!def) throw new BulwarkError('BULWARK_E_ONNX_INVALID', 'the model imports no version of the default ONNX domain');
  const initializers = new Map<string, TensorData>();
  for (const t of g.initializer ?? []) {
    if (!t.name) throw new BulwarkError('BULWARK_E_ONNX_INVALID', 'an initializer has no name');
    initializers.set(t.name, tensorFromProto(t, opts));
  }
  const metadata: Record<string, string> = {};
  for (const kv of proto.metadataProps ?? []) metadata[kv.key] = kv.value;
  return {
    name: g.name ?? 'graph',
    nodes: nameNodes(g.node ?? [], opts),
    inputs: (g.input ?? []).map(valueInfoFromProto),
    outputs: (g.output ?? []).map(valueInfoFromProto),
    initializers,
    valueInfo: new Map((g.valueInfo ?? []).map((v) => [v.name ?? '', valueInfoFromProto(v)])),
    opset: def.version,
    opsetImports,
    irVersion: int64(proto.irVersion),
    producerName: proto.producerName ?? '',
    producerVersion: proto.producerVersion ?? '',
    docString: proto.docString ?? '',
    metadata,
    functions: proto.functions ?? [],
  };
}

// protobufjs exposes defaults for unset fields, so a oneof is read through which member is set.
function dimFromProto(d: DimensionProto): number | string | null {
  const which = (d as { value?: string }).value;
  if (which === 'dimParam' || (which === undefined && d.dimParam)) return d.dimParam || null;
  if (which === 'dimValue' || Object.prototype.hasOwnProperty.call(d, 'dimValue')) return int64(d.dimValue);
  return null;
}

function valueInfoFromProto(v: ValueInfoProto): ValueInfo {
  const tt = v.type?.tensorType;
  const dims = tt?.shape?.dim;
  return {
    name: v.name ?? '',
    elemType: tt?.elemType ?? 0,
    shape: tt?.shape ? (dims ?? []).map(dimFromProto) : null,
  };
}

/**
 * Converts the nodes, naming unnamed ones `${opType}_${index}`, or, when a node elsewhere already has that name,
 * `${opType}_${index}_${k}` with the smallest k >= 1 that is free (onnxruntime refuses duplicate node names).
 */
function nameNodes(protos: NodeProto[], opts: ReadOptions): Node[] {
  const taken = new Set<string>();
  for (const n of protos) if (n.name) taken.add(n.name);
  return protos.map((n, i) => {
    if (n.name) return nodeFromProto(n, n.name, opts);
    const base = `${n.opType ?? 'node'}_${i}`;
    let name = base;
    for (let k = 1; taken.has(name); k++) name = `${base}_${k}`;
    taken.add(name);
    return nodeFromProto(n, name, opts);
  });
}

function nodeFromProto(n: NodeProto, name: string, opts: ReadOptions): Node {
  const attrs = new Map<string, Attr>();
  for (const a of n.attribute ?? []) attrs.set(a.name ?? '', attrFromProto(a, opts));
  return {
    name,
    opType: n.opType ?? '',
    domain: n.domain === 'ai.onnx' ? '' : (n.domain ?? ''),
    inputs: [...(n.input ?? [])],
    outputs: [...(n.output ?? [])],
    attrs,
  };
}

function attrFromProto(a: AttributeProto, opts: ReadOptions): Attr {
  const type = a.type ?? inferAttrType(a);
  switch (type) {
    case ATTR.FLOAT:
      return { type, value: a.f ?? 0 };
    case ATTR.INT:
      return { type, value: int64(a.i) };
    case ATTR.STRING:
      return { type, value: utf8.decode(a.s ?? new Uint8Array()) };
    case ATTR.TENSOR:
      return { type, value: tensorFromProto(a.t ?? {}, opts) };
    case ATTR.FLOATS:
      return { type, value: [...(a.floats ?? [])] };
    case ATTR.INTS:
      return { type, value: (a.ints ?? []).map(int64) };
    case ATTR.STRINGS:
      return { type, value: (a.strings ?? []).map((s) => utf8.decode(s)) };
    case ATTR.GRAPH:
      return { type, value: a.g ?? {} };
    default:
      return { type, value: a, raw: true };
  }
}

// Some old exporters omit AttributeProto.type; infer it from the populated field.
function inferAttrType(a: AttributeProto): number {
  if (a.ints && a.ints.length) return ATTR.INTS;
  if (a.floats && a.floats.length) return ATTR.FLOATS;
  if (a.strings && a.strings.length) return ATTR.STRINGS;
  if (a.t) return ATTR.TENSOR;
  if (a.g) return ATTR.GRAPH;
  if (a.s && a.s.length) return ATTR.STRING;
  if (a.i !== undefined && int64(a.i) !== 0) return ATTR.INT;
  if (a.f !== undefined && a.f !== 0) return ATTR.FLOAT;
  return ATTR.INTS;
}

/** Decodes a TensorProto's values from raw_data, the typed fields, or confined external data. */
export function tensorFromProto(t: TensorProto, opts: ReadOptions = {}): TensorData {
  const dims = (t.dims ?? []).map(int64);
  const dataType = t.dataType ?? 0;
  const name = t.name ?? '(unnamed)';
  let count = 1;
  for (const d of dims) {
    if (!Number.isSafeInteger(d) || d < 0) throw new BulwarkError('BULWARK_E_ONNX_INVALID', `tensor ${quote(name)} has an invalid dimension ${d}`);
    count *= d;
  }
  const maxElements = opts.maxElements ?? 2 ** 31;
  if (count > maxElements) throw new BulwarkError('BULWARK_E_LIMIT', `tensor ${quote(name)} declares ${count} elements, over the limit of ${maxElements}`);
  const size = elemSize(dataType);
  if (size === 0) {
    if (dataType === ELEM.STRING) {
      // String tensors are rare in classifiers; keep the byte length only so they round-trip as empty data.
      return { dataType, dims, data: new Uint8Array(0) };
    }
    throw new BulwarkError('BULWARK_E_DTYPE', `tensor ${quote(name)} has unsupported element type ${dataType}`);
  }
  let raw: Uint8Array | undefined = t.rawData && t.rawData.length ? t.rawData : undefined;
  if (t.dataLocation === 1) raw = readExternal(t, count * size, opts);
  if (raw) {
    if (raw.length !== count * size) {
      throw new BulwarkError('BULWARK_E_ONNX_INVALID', `tensor ${quote(name)}: ${raw.length} bytes of data for ${count} elements of ${elemName(dataType)} (${count * size} expected)`);
    }
    return { dataType, dims, data: typedFromBytes(dataType, raw, count) };
  }
  const data = typedFromFields(t, dataType, count);
  if (data.length !== count) {
    throw new BulwarkError('BULWARK_E_ONNX_INVALID', `tensor ${quote(name)}: ${data.length} values for ${count} elements`);
  }
  return { dataType, dims, data };
}

function readExternal(t: TensorProto, expected: number, opts: ReadOptions): Uint8Array {
  const name = t.name ?? '(unnamed)';
  const kv = Object.fromEntries((t.externalData ?? []).map((e) => [e.key, e.value]));
  const location = kv['location'];
  if (!location) throw new BulwarkError('BULWARK_E_ONNX_INVALID', `tensor ${quote(name)} is external but names no location`);
  if (!opts.baseDir) {
    throw new BulwarkError('BULWARK_E_PATH_ESCAPE', `tensor ${quote(name)} has external data but the model was given as bytes`, { hint: 'Load the model from its path so its external data can be read from the model folder.' });
  }
  const file = confinedPath(opts.baseDir, location, `external data of tensor ${quote(name)}`);
  const offset = kv['offset'] ? Number(kv['offset']) : 0;
  const length = kv['length'] ? Number(kv['length']) : expected;
  if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
    throw new BulwarkError('BULWARK_E_ONNX_INVALID', `tensor ${quote(name)}: bad external offset/length`);
  }
  const where = `external data of tensor ${quote(name)}`;
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch {
    throw new BulwarkError('BULWARK_E_FILE_NOT_FOUND', `${where}: file ${quote(location)} not found in the model's folder ${opts.baseDir}`, {
      hint: "External data locations resolve from the model's folder (not the current directory); keep the data file beside the model.",
    });
  }
  // A FIFO would block the open (or the read) forever, a device never ends and a folder cannot be read: only a
  // regular file is data. The check is repeated on the opened descriptor, which is opened without blocking.
  if (!st.isFile()) throw notRegular(where, location, st);
  if (offset + length > st.size) throw new BulwarkError('BULWARK_E_ONNX_INVALID', `${where}: range ${offset}+${length} exceeds ${quote(location)} (${st.size} bytes)`);
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | (fs.constants.O_NONBLOCK ?? 0));
  } catch (e) {
    throw new BulwarkError('BULWARK_E_FILE_READ', `${where}: cannot open ${quote(location)}: ${(e as Error).message}`);
  }
  try {
    const fst = fs.fstatSync(fd);
    if (!fst.isFile()) throw notRegular(where, location, fst);
    if (offset + length > fst.size) throw new BulwarkError('BULWARK_E_ONNX_INVALID', `${where}: range ${offset}+${length} exceeds ${quote(location)} (${fst.size} bytes)`);
    const buf = Buffer.alloc(length);
    let got = 0;
    while (got < length) {
      const n = fs.readSync(fd, buf, got, length - got, offset + got);
      if (n === 0) throw new BulwarkError('BULWARK_E_ONNX_INVALID', `${where}: ${quote(location)} ended after ${got} of ${length} bytes`);
      got += n;
    }
    return buf;
  } finally {
    fs.closeSync(fd);
  }
}

function notRegular(where: string, location: string, st: fs.Stats): BulwarkError {
  const kind = st.isDirectory() ? 'a folder' : st.isFIFO() ? 'a FIFO (named pipe)' : st.isSocket() ? 'a socket' : st.isCharacterDevice() || st.isBlockDevice() ? 'a device' : 'not a regular file';
  return new BulwarkError('BULWARK_E_FILE_READ', `${where}: location ${quote(location)} is ${kind}, not a regular file`, {
    hint: 'External data must be a regular file inside the model folder, as written by onnx.save_model(..., save_as_external_data=True).',
  });
}

function typedFromBytes(dataType: number, raw: Uint8Array, count: number): TypedArray {
  // Copy into an aligned buffer: protobuf slices may start at any byte offset.
  const buf = new ArrayBuffer(raw.length);
  new Uint8Array(buf).set(raw);
  switch (dataType) {
    case ELEM.FLOAT:
      return new Float32Array(buf, 0, count);
    case ELEM.DOUBLE:
      return new Float64Array(buf, 0, count);
    case ELEM.INT64:
      return new BigInt64Array(buf, 0, count);
    case ELEM.UINT64:
      return new BigUint64Array(buf, 0, count);
    case ELEM.INT32:
      return new Int32Array(buf, 0, count);
    case ELEM.UINT32:
      return new Uint32Array(buf, 0, count);
    case ELEM.INT16:
      return new Int16Array(buf, 0, count);
    case ELEM.UINT16:
    case ELEM.FLOAT16:
    case ELEM.BFLOAT16:
      return new Uint16Array(buf, 0, count);
    case ELEM.INT8:
      return new Int8Array(buf, 0, count);
    default:
      return new Uint8Array(buf, 0, count);
  }
}

function typedFromFields(t: TensorProto, dataType: number, count: number): TypedArray {
  switch (dataType) {
    case ELEM.FLOAT:
      return Float32Array.from(t.floatData ?? []);
    case ELEM.DOUBLE:
      return Float64Array.from(t.doubleData ?? []);
    case ELEM.INT64:
      return BigInt64Array.from((t.int64Data ?? []).map((v) => BigInt(typeof v === 'number' ? v : v.toString())));
    case ELEM.UINT64:
      return BigUint64Array.from((t.uint64Data ?? []).map((v) => BigInt(typeof v === 'number' ? v : v.toString())));
    case ELEM.UINT32:
      return Uint32Array.from((t.uint64Data ?? []).map(int64));
    case ELEM.INT32:
      return Int32Array.from(t.int32Data ?? []);
    case ELEM.INT16:
      return Int16Array.from(t.int32Data ?? []);
    case ELEM.UINT16:
    case ELEM.FLOAT16:
    case ELEM.BFLOAT16:
      return Uint16Array.from(t.int32Data ?? []);
    case ELEM.INT8:
      return Int8Array.from(t.int32Data ?? []);
    case ELEM.UINT8:
    case ELEM.BOOL:
      return Uint8Array.from(t.int32Data ?? []);
    default:
      return new Uint8Array(count);
  }
}

/** Encodes a TensorData as a TensorProto with raw_data. */
export function tensorToProto(name: string, t: TensorData): TensorProto {
  const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  return { name, dims: [...t.dims], dataType: t.dataType, rawData: bytes };
}

function attrToProto(name: string, a: Attr): AttributeProto {
  if ('raw' in a) return a.value;
  switch (a.type) {
    case ATTR.FLOAT:
      return { name, type: a.type, f: a.value as number };
    case ATTR.INT:
      return { name, type: a.type, i: a.value as number };
    case ATTR.STRING:
      return { name, type: a.type, s: utf8enc.encode(a.value as string) };
    case ATTR.TENSOR:
      return { name, type: a.type, t: tensorToProto('', a.value as TensorData) };
    case ATTR.FLOATS:
      return { name, type: a.type, floats: a.value as number[] };
    case ATTR.INTS:
      return { name, type: a.type, ints: a.value as number[] };
    case ATTR.STRINGS:
      return { name, type: a.type, strings: (a.value as string[]).map((s) => utf8enc.encode(s)) };
    case ATTR.GRAPH:
      return { name, type: a.type, g: a.value as GraphProto };
    default:
      throw new BulwarkError('BULWARK_E_INTERNAL', `cannot encode attribute ${name} of type ${(a as { type: number }).type}`);
  }
}

function valueInfoToProto(v: ValueInfo): ValueInfoProto {
  // An untyped value (type left to the runtime's inference) is written without a TypeProto.
  if (v.elemType === 0 && v.shape === null) return { name: v.name };
  const shape = v.shape === null ? undefined : { dim: v.shape.map((d) => (typeof d === 'number' ? { dimValue: d } : typeof d === 'string' ? { dimParam: d } : {})) };
  return { name: v.name, type: { tensorType: { elemType: v.elemType, ...(shape ? { shape } : {}) } } };
}

/** Converts a Graph back to a ModelProto. */
export function graphToProto(g: Graph): ModelProto {
  const graph: GraphProto = {
    name: g.name,
    node: g.nodes.map((n) => ({
      name: n.name,
      opType: n.opType,
      domain: n.domain,
      input: n.inputs,
      output: n.outputs,
      attribute: [...n.attrs].map(([k, a]) => attrToProto(k, a)),
    })),
    initializer: [...g.initializers].map(([k, t]) => tensorToProto(k, t)),
    input: g.inputs.map(valueInfoToProto),
    output: g.outputs.map(valueInfoToProto),
    valueInfo: [...g.valueInfo.values()].map(valueInfoToProto),
  };
  return {
    irVersion: g.irVersion || irVersionFor(g.opset),
    opsetImport: g.opsetImports.map((o) => ({ domain: o.domain, version: o.version })),
    producerName: g.producerName,
    producerVersion: g.producerVersion,
    docString: g.docString,
    graph,
    metadataProps: Object.entries(g.metadata).map(([key, value]) => ({ key, value })),
    ...(g.functions && g.functions.length ? { functions: g.functions } : {}),
  };
}

/** The IR version that pairs with an opset (onnx/helper.py's VERSION_TABLE). */
export function irVersionFor(opset: number): number {
  if (opset <= 8) return 3;
  if (opset <= 10) return 5;
  if (opset <= 12) return 7;
  if (opset <= 14) return 7;
  if (opset <= 18) return 8;
  if (opset <= 20) return 9;
  return 10;
}

/** Serializes a Graph to ONNX bytes. */
export function writeModelBytes(g: Graph): Uint8Array {
  return encodeModel(graphToProto(g));
}

/** A deep-enough copy of a graph: nodes and maps are new, tensor data is shared. */
export function cloneGraph(g: Graph): Graph {
  return {
    ...g,
    nodes: g.nodes.map((n) => ({ ...n, inputs: [...n.inputs], outputs: [...n.outputs], attrs: new Map(n.attrs) })),
    inputs: g.inputs.map((v) => ({ ...v, shape: v.shape ? [...v.shape] : null })),
    outputs: g.outputs.map((v) => ({ ...v, shape: v.shape ? [...v.shape] : null })),
    initializers: new Map(g.initializers),
    valueInfo: new Map(g.valueInfo),
    opsetImports: g.opsetImports.map((o) => ({ ...o })),
    metadata: { ...g.metadata },
  };
}

/** A new graph with no nodes, at one opset of the default domain, for builders to fill. */
export function emptyGraph(opts: { name?: string; opset?: number; inputs?: ValueInfo[]; producer?: string; metadata?: Record<string, string> } = {}): Graph {
  const opset = opts.opset ?? 17;
  return {
    name: opts.name ?? 'graph',
    nodes: [],
    inputs: opts.inputs ?? [],
    outputs: [],
    initializers: new Map(),
    valueInfo: new Map(),
    opset,
    opsetImports: [{ domain: '', version: opset }],
    irVersion: irVersionFor(opset),
    producerName: opts.producer ?? 'bulwark',
    producerVersion: '0.1.0',
    docString: '',
    metadata: opts.metadata ?? {},
    functions: [],
  };
}

/** Graph inputs that are real inputs (not initializers listed as inputs, as older exporters do). */
export function realInputs(g: Graph): ValueInfo[] {
  return g.inputs.filter((v) => !g.initializers.has(v.name));
}

/**
 * Values of the enclosing graph that a node's subgraphs (If branches, Loop and Scan bodies) read by name: inputs the
 * node has without listing them. Empty for nodes without subgraph attributes.
 */
export function outerReads(n: Node): string[] {
  const reads = new Set<string>();
  const visit = (sub: GraphProto, outerScope: Set<string>) => {
    const local = new Set<string>([...outerScope, ...(sub.input ?? []).map((v) => v.name ?? ''), ...(sub.initializer ?? []).map((t) => t.name ?? '')]);
    for (const node of sub.node ?? []) {
      for (const i of node.input ?? []) if (i && !local.has(i)) reads.add(i);
      for (const a of node.attribute ?? []) {
        for (const g of [...(a.g ? [a.g] : []), ...(a.graphs ?? [])]) visit(g, local);
      }
      for (const o of node.output ?? []) if (o) local.add(o);
    }
  };
  for (const a of n.attrs.values()) if (a.type === ATTR.GRAPH) visit(a.value as GraphProto, new Set());
  return [...reads];
}

/** A node's inputs together with the outer values its subgraphs read (see {@link outerReads}). */
export function allInputs(n: Node): string[] {
  for (const a of n.attrs.values()) if (a.type === ATTR.GRAPH) return [...n.inputs, ...outerReads(n)];
  return n.inputs;
}

/**
 * Orders nodes so that each comes after the producers of its inputs (Kahn's algorithm, stable).
 * @throws BulwarkError BULWARK_E_ONNX_INVALID on a cycle or an input nothing produces
 */
export function topoSort(g: Graph): Node[] {
  const available = new Set<string>(['', ...g.inputs.map((v) => v.name), ...g.initializers.keys()]);
  const producer = new Map<string, number>();
  g.nodes.forEach((n, i) => n.outputs.forEach((o) => o && producer.set(o, i)));
  const pending = new Array<number>(g.nodes.length).fill(0);
  const consumers = new Map<string, number[]>();
  g.nodes.forEach((n, i) => {
    for (const inp of new Set(allInputs(n))) {
      if (available.has(inp)) continue;
      if (!producer.has(inp)) {
        throw new BulwarkError('BULWARK_E_ONNX_INVALID', `node ${quote(n.name)} (${quote(n.opType)}) reads ${quote(inp)}, which no node, input or initializer provides`);
      }
      pending[i]!++;
      const list = consumers.get(inp) ?? [];
      list.push(i);
      consumers.set(inp, list);
    }
  });
  const ready: number[] = [];
  pending.forEach((p, i) => p === 0 && ready.push(i));
  const order: Node[] = [];
  let head = 0;
  while (head < ready.length) {
    const i = ready[head++]!;
    const n = g.nodes[i]!;
    order.push(n);
    for (const o of n.outputs) {
      for (const c of consumers.get(o) ?? []) {
        if (--pending[c]! === 0) ready.push(c);
      }
    }
  }
  if (order.length !== g.nodes.length) throw new BulwarkError('BULWARK_E_ONNX_INVALID', 'the graph has a cycle');
  return order;
}

/** Reads an attribute as a number, or `def` when absent. */
export function attrNum(n: Node, name: string, def: number): number {
  const a = n.attrs.get(name);
  return a === undefined ? def : (a.value as number);
}

/** Reads an attribute as a list of numbers, or `def` when absent. */
export function attrInts(n: Node, name: string, def: number[] | undefined): number[] | undefined {
  const a = n.attrs.get(name);
  return a === undefined ? def : (a.value as number[]);
}

/** Reads an attribute as a string, or `def` when absent. */
export function attrStr(n: Node, name: string, def: string): string {
  const a = n.attrs.get(name);
  return a === undefined ? def : (a.value as string);
}

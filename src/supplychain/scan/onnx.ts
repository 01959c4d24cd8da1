/**
 * ONNX models: the graph must decode; external-data locations must stay inside the model's folder (no absolute
 * paths, no `..`, no links out); node and opset domains outside the standard ones are reported; tensor and input
 * dimensions must not overflow or exceed the element limit; initializer sizes must match their bytes.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BulwarkError } from '../../core/errors.js';
import { confinedPath } from '../../core/fsio.js';
import { decodeModel, type GraphProto, type ModelProto, type NodeProto, type TensorProto } from '../../onnx/index.js';
import { ScanContext } from './context.js';

/** Operator domains that need no custom-op library. */
export const STANDARD_ONNX_DOMAINS: ReadonlySet<string> = new Set(['', 'ai.onnx', 'ai.onnx.ml', 'com.microsoft']);

/** Bits per element of each TensorProto.DataType (STRING = 8 is variable length and handled apart). */
const ELEM_BITS: Record<number, number> = {
  1: 32, 2: 8, 3: 8, 4: 16, 5: 16, 6: 32, 7: 64, 9: 8, 10: 16, 11: 64, 12: 32, 13: 64, 14: 64, 15: 128, 16: 16,
  17: 8, 18: 8, 19: 8, 20: 8, 21: 4, 22: 4, 23: 4, 24: 8,
};
const STRING = 8;
const EXTERNAL = 1;
const MAX_GRAPH_DEPTH = 32;

/** A protobufjs int64 (number, Long or string) as a bigint. */
export function toBig(v: unknown): bigint | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'bigint') return v;
  if (typeof v === 'number') return Number.isFinite(v) ? BigInt(Math.trunc(v)) : undefined;
  if (typeof v === 'string') return /^-?\d+$/.test(v) ? BigInt(v) : undefined;
  if (typeof v === 'object' && 'low' in v && 'high' in v) {
    const o = v as { low: number; high: number; unsigned?: boolean };
    const u = (BigInt(o.high >>> 0) << 32n) | BigInt(o.low >>> 0);
    return o.unsigned ? u : BigInt.asIntN(64, u);
  }
  return undefined;
}

interface Walk {
  tensors: { t: TensorProto; where: string }[];
  nodes: { n: NodeProto; where: string }[];
  graphs: { g: GraphProto; where: string }[];
}

function collect(ctx: ScanContext, g: GraphProto, where: string, depth: number, acc: Walk): void {
  if (depth > MAX_GRAPH_DEPTH) return;
  acc.graphs.push({ g, where });
  for (const t of g.initializer ?? []) {
    ctx.budget.tick();
    acc.tensors.push({ t, where: `${where}/initializer:${t.name ?? ''}` });
  }
  for (const n of g.node ?? []) {
    ctx.budget.tick();
    const nw = `${where}/node:${n.name || n.opType || '?'}`;
    acc.nodes.push({ n, where: nw });
    for (const a of n.attribute ?? []) {
      if (a.t) acc.tensors.push({ t: a.t, where: `${nw}@${a.name ?? ''}` });
      for (const t of a.tensors ?? []) acc.tensors.push({ t, where: `${nw}@${a.name ?? ''}` });
      if (a.g) collect(ctx, a.g, `${nw}@${a.name ?? ''}`, depth + 1, acc);
      for (const sg of a.graphs ?? []) collect(ctx, sg, `${nw}@${a.name ?? ''}`, depth + 1, acc);
    }
  }
}

function numelOf(ctx: ScanContext, dims: unknown[], where: string, what: string): bigint | undefined {
  let n = 1n;
  for (const d of dims) {
    const v = toBig(d);
    if (v === undefined) return undefined;
    if (v < 0n) {
      ctx.report('onnx-dimension-limit', { metric: 'onnx.dimension', value: v.toString(), threshold: '>= 0', detail: `${what} has a negative dimension`, evidence: { format: 'onnx', location: where } }, `neg:${where}`);
      return undefined;
    }
    n *= v;
  }
  if (n > BigInt(ctx.opts.maxTensorElements)) {
    const overflow = n >= 1n << 63n;
    ctx.report('onnx-dimension-limit', {
      metric: 'onnx.elements',
      value: n.toString(),
      threshold: ctx.opts.maxTensorElements,
      detail: `${what} declares ${overflow ? 'a product of dimensions that overflows int64' : `${n} elements`}`,
      evidence: { format: 'onnx', location: where, dims: dims.map((d) => String(toBig(d))) },
    }, `big:${where}`);
    return undefined;
  }
  return n;
}

function mismatch(ctx: ScanContext, where: string, detail: string, value: number | string, threshold: number | string): void {
  ctx.report('onnx-initializer-size-mismatch', { metric: 'onnx.tensor_bytes', value, threshold, detail, evidence: { format: 'onnx', location: where } }, `size:${where}`);
}

function checkExternal(ctx: ScanContext, t: TensorProto, where: string, expectBytes: bigint | undefined): void {
  const kv = new Map((t.externalData ?? []).map((e) => [e.key, e.value] as [string, string]));
  const loc = kv.get('location');
  const ev = { format: 'onnx', location: where, externalLocation: loc ?? '' };
  if (loc === undefined || loc === '') {
    ctx.report('onnx-external-data-missing', { metric: 'onnx.external_location', value: '', threshold: 'a relative path', detail: `${where} has no location`, evidence: ev }, `loc:${where}`);
    return;
  }
  if (loc.includes('\0') || path.isAbsolute(loc) || path.win32.isAbsolute(loc) || /^[a-zA-Z]:/.test(loc)) {
    ctx.report('onnx-external-data-absolute', { metric: 'onnx.external_location', value: loc, threshold: 'relative path inside the model folder', detail: loc, evidence: ev }, `abs:${loc}`);
    return;
  }
  const norm = path.posix.normalize(loc.replace(/\\/g, '/'));
  if (norm === '..' || norm.startsWith('../')) {
    ctx.report('onnx-external-data-traversal', { metric: 'onnx.external_location', value: loc, threshold: 'relative path inside the model folder', detail: loc, evidence: ev }, `trav:${loc}`);
    return;
  }
  const offset = toBig(kv.get('offset') ?? '0');
  const length = kv.get('length') !== undefined ? toBig(kv.get('length')) : undefined;
  if (offset === undefined || offset < 0n || (kv.get('length') !== undefined && (length === undefined || length < 0n))) {
    mismatch(ctx, where, `${where}: external offset/length are not non-negative integers`, `${kv.get('offset')}/${kv.get('length')}`, 'non-negative integers');
    return;
  }
  if (length !== undefined && expectBytes !== undefined && length !== expectBytes) {
    mismatch(ctx, where, `${where}: external length ${length} for ${expectBytes} bytes of data`, length.toString(), expectBytes.toString());
  }
  if (ctx.dir === undefined) return;
  let file: string;
  try {
    file = confinedPath(ctx.dir, loc, 'external data');
  } catch (e) {
    if (e instanceof BulwarkError && e.code === 'BULWARK_E_PATH_ESCAPE') {
      ctx.report('onnx-external-data-symlink', { metric: 'onnx.external_location', value: loc, threshold: 'inside the model folder', detail: loc, evidence: { ...ev, message: e.message } }, `link:${loc}`);
      return;
    }
    throw e;
  }
  let size: number;
  try {
    const st = fs.statSync(file);
    if (!st.isFile()) throw new Error('not a file');
    size = st.size;
  } catch {
    ctx.report('onnx-external-data-missing', { metric: 'onnx.external_location', value: loc, threshold: 'an existing file', detail: `${loc} does not exist`, evidence: ev }, `missing:${loc}`);
    return;
  }
  const need = offset + (length ?? expectBytes ?? 0n);
  if (need > BigInt(size)) {
    ctx.report('onnx-external-data-missing', { metric: 'onnx.external_bytes', value: need.toString(), threshold: size, detail: `${loc} holds ${size} bytes, ${where} needs ${need}`, evidence: ev }, `short:${where}`);
  }
}

function checkTensor(ctx: ScanContext, t: TensorProto, where: string): void {
  const numel = numelOf(ctx, (t.dims ?? []) as unknown[], where, `tensor ${where}`);
  const dt = t.dataType ?? 0;
  const bits = ELEM_BITS[dt];
  if (bits === undefined && dt !== STRING) {
    mismatch(ctx, where, `${where}: unknown data type ${dt}`, dt, 'a TensorProto.DataType');
    return;
  }
  const expectBytes = numel !== undefined && bits !== undefined ? (numel * BigInt(bits) + 7n) / 8n : undefined;
  if (t.dataLocation === EXTERNAL) {
    checkExternal(ctx, t, where, expectBytes);
    return;
  }
  if (numel === undefined) return;
  const raw = t.rawData?.length ?? 0;
  if (raw > 0) {
    if (expectBytes !== undefined && BigInt(raw) !== expectBytes) mismatch(ctx, where, `${where}: ${raw} raw bytes for ${expectBytes} bytes of data`, raw, expectBytes.toString());
    return;
  }
  const packed = bits === 4 ? (numel + 1n) / 2n : numel;
  const counts: [number, bigint][] = [
    [t.floatData?.length ?? 0, dt === 14 ? numel * 2n : numel],
    [t.int32Data?.length ?? 0, packed],
    [t.int64Data?.length ?? 0, numel],
    [t.doubleData?.length ?? 0, dt === 15 ? numel * 2n : numel],
    [t.uint64Data?.length ?? 0, numel],
    [t.stringData?.length ?? 0, numel],
  ];
  const present = counts.filter(([n]) => n > 0);
  if (present.length === 0) {
    if (numel > 0n) mismatch(ctx, where, `${where}: declares ${numel} elements but carries no data`, 0, numel.toString());
    return;
  }
  for (const [n, want] of present) if (BigInt(n) !== want) mismatch(ctx, where, `${where}: ${n} values for ${want} elements`, n, want.toString());
}

/** Scans an ONNX model. `ctx.dir` (set for files on disk) enables the external-data file checks. */
export function scanOnnx(ctx: ScanContext, buf: Uint8Array): void {
  const model: ModelProto = decodeModel(buf);
  ctx.record('onnx', buf.length);
  const localFunctions = new Set((model.functions ?? []).map((f) => `${f.domain ?? ''}\u0000${f.name ?? ''}`));
  const functionDomains = new Set((model.functions ?? []).map((f) => f.domain ?? ''));
  for (const o of model.opsetImport ?? []) {
    const d = o.domain ?? '';
    if (!STANDARD_ONNX_DOMAINS.has(d) && !functionDomains.has(d)) {
      ctx.report('onnx-custom-domain', { metric: 'onnx.domain', value: d, threshold: [...STANDARD_ONNX_DOMAINS].map((x) => x || "''").join(', '), detail: d, evidence: { format: 'onnx', location: 'opset_import', domain: d } }, `domain:${d}`);
    }
  }
  const acc: Walk = { tensors: [], nodes: [], graphs: [] };
  if (model.graph) collect(ctx, model.graph, 'graph', 0, acc);
  for (const f of model.functions ?? []) {
    for (const n of f.node ?? []) {
      ctx.budget.tick();
      acc.nodes.push({ n, where: `function:${f.domain ?? ''}.${f.name ?? ''}/node:${n.name || n.opType || '?'}` });
    }
  }
  for (const { n, where } of acc.nodes) {
    const d = n.domain ?? '';
    if (STANDARD_ONNX_DOMAINS.has(d) || localFunctions.has(`${d}\u0000${n.opType ?? ''}`)) continue;
    ctx.report('onnx-custom-domain', { metric: 'onnx.domain', value: d, threshold: [...STANDARD_ONNX_DOMAINS].map((x) => x || "''").join(', '), detail: `${d}::${n.opType ?? '?'}`, evidence: { format: 'onnx', location: where, domain: d, opType: n.opType ?? '' } }, `domain:${d}`);
  }
  for (const { t, where } of acc.tensors) {
    ctx.budget.tick();
    checkTensor(ctx, t, where);
  }
  for (const { g, where } of acc.graphs) {
    for (const v of g.input ?? []) {
      const dims = v.type?.tensorType?.shape?.dim ?? [];
      const known = dims.filter((d) => d.dimValue !== undefined && d.dimValue !== null && !d.dimParam).map((d) => d.dimValue as unknown);
      numelOf(ctx, known, `${where}/input:${v.name ?? ''}`, `input ${v.name ?? ''}`);
    }
  }
}

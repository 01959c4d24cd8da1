import { BulwarkError } from '../core/errors.js';
import { sizeOf } from '../core/tensor.js';
import { ELEM, realInputs, cloneGraph, topoSort, type Graph } from '../onnx/ir.js';
import type { ShapeMap } from '../onnx/shapes.js';
import { createSession, runSession, toOrt } from './session.js';
import { nchwcBlockSize } from './nchwc.js';

/**
 * Finds the shape and type of every value in a graph by running it twice, with every free input dimension set
 * to 1 and then to 2: dims that change are dynamic (-1), the rest are fixed. This covers every op onnxruntime
 * runs, without a shape-inference table of our own. Inputs are filled with values in [0, 1) (ints with 0).
 * @param fixedDims overrides of input dims (input name -> dims), for models whose free dims are not batch-like; a dim
 *   given as -1 stays free (the batch, say, while an image size is fixed)
 */
export async function probeShapes(g: Graph, fixedDims: Record<string, number[]> = {}): Promise<ShapeMap> {
  // The Conv gradient rule reads the blocked-kernel width (set by the probe, see setBlockedConvWidth) when choosing
  // a form; shapes are probed before every gradient pass, so the one-time probe of that width happens here.
  await nchwcBlockSize();
  const probe = cloneGraph(g);
  const outputs = new Set(probe.outputs.map((o) => o.name));
  for (const n of probe.nodes) {
    for (const o of n.outputs) {
      if (o && !outputs.has(o)) {
        outputs.add(o);
        probe.outputs.push({ name: o, elemType: 0, shape: null });
      }
    }
  }
  // Outputs without a type are inferred by onnxruntime; drop stale value_info that might disagree.
  probe.valueInfo = new Map();
  const session = await createSession(probe, { threads: 1 });
  const runs: Map<string, { dims: number[]; type: string; data: ArrayLike<number | bigint> }>[] = [];
  for (const free of [1, 2]) {
    const feeds: Record<string, ReturnType<typeof toOrt>> = {};
    for (const inp of realInputs(probe)) {
      const dims = (fixedDims[inp.name] ?? inp.shape ?? []).map((d) => (typeof d === 'number' && d > 0 ? d : free));
      const n = sizeOf(dims);
      if (n > 1 << 26) throw new BulwarkError('BULWARK_E_LIMIT', `input ${inp.name} of shape [${dims}] is too large to probe`);
      feeds[inp.name] = makeProbeInput(inp.elemType, dims, n);
    }
    const out = await runSession(session, feeds, [...outputs]);
    runs.push(new Map(Object.entries(out).map(([k, t]) => [k, { dims: [...t.dims], type: t.type, data: t.data as ArrayLike<number | bigint> }])));
  }
  await session.release();
  // Values computed from constants alone (e.g. exported pad or reshape arguments) are kept so rules can read them.
  const dependent = new Set(realInputs(probe).map((v) => v.name));
  for (const n of topoSort(probe)) if (n.inputs.some((i) => dependent.has(i))) n.outputs.forEach((o) => dependent.add(o));
  const shapes: ShapeMap = new Map();
  const a = runs[0]!;
  const b = runs[1]!;
  for (const [name, ra] of a) {
    const rb = b.get(name)!;
    const dims = ra.dims.length === rb.dims.length ? ra.dims.map((d, i) => (d === rb.dims[i] ? d : -1)) : ra.dims.map(() => -1);
    const folded = !dependent.has(name) && ra.data.length <= 4096 && typeof ra.data !== 'string';
    shapes.set(name, { dims, elemType: elemOf(ra.type), ...(folded ? { value: Array.from(ra.data) } : {}) });
  }
  for (const inp of realInputs(g)) {
    // Declared dims, with those the caller fixed for the probe (fixedDims) taken as static.
    const spec = fixedDims[inp.name] ?? inp.shape ?? [];
    if (!shapes.has(inp.name)) shapes.set(inp.name, { dims: spec.map((d) => (typeof d === 'number' && d > 0 ? d : -1)), elemType: inp.elemType });
  }
  for (const [name, t] of g.initializers) shapes.set(name, { dims: [...t.dims], elemType: t.dataType });
  return shapes;
}

function makeProbeInput(elem: number, dims: number[], n: number) {
  switch (elem) {
    case ELEM.FLOAT: {
      const d = new Float32Array(n);
      for (let i = 0; i < n; i++) d[i] = ((i * 2654435761) % 1000) / 1000;
      return toOrt(elem, d, dims);
    }
    case ELEM.DOUBLE: {
      const d = new Float64Array(n);
      for (let i = 0; i < n; i++) d[i] = ((i * 2654435761) % 1000) / 1000;
      return toOrt(elem, d, dims);
    }
    case ELEM.INT64:
      return toOrt(elem, new BigInt64Array(n), dims);
    case ELEM.INT32:
      return toOrt(elem, new Int32Array(n), dims);
    case ELEM.BOOL:
    case ELEM.UINT8:
      return toOrt(elem, new Uint8Array(n), dims);
    default:
      throw new BulwarkError('BULWARK_E_DTYPE', `cannot probe an input of element type ${elem}`);
  }
}

const ELEM_BY_ORT: Record<string, number> = { float32: ELEM.FLOAT, float64: ELEM.DOUBLE, int64: ELEM.INT64, int32: ELEM.INT32, bool: ELEM.BOOL, uint8: ELEM.UINT8, int8: ELEM.INT8, float16: ELEM.FLOAT16 };

function elemOf(t: string): number {
  return ELEM_BY_ORT[t] ?? 0;
}

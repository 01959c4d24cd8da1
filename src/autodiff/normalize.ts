import { BulwarkError } from '../core/errors.js';
import { GraphBuilder } from '../onnx/builder.js';
import { ATTR } from '../onnx/proto.js';
import { ELEM, MAX_OPSET, MIN_OPSET, cloneGraph, topoSort, type Graph, type Node } from '../onnx/ir.js';

/** The opset every gradient graph is written in (or the model's own, when newer). */
export const GRAD_OPSET = 18;

const REDUCE_18 = ['ReduceMean', 'ReduceMax', 'ReduceMin', 'ReduceProd', 'ReduceL1', 'ReduceL2', 'ReduceLogSum', 'ReduceLogSumExp', 'ReduceSumSquare'];

/**
 * Rewrites a model to one opset (at least 18) so that gradient rules are written against one signature per op:
 * attributes that became inputs (axes, split) become constant inputs, opset-11 Softmax is spelled with Flatten
 * and Reshape, and inference-time Dropout becomes Identity. Value names of the original graph are kept.
 * @throws BulwarkError BULWARK_E_OPSET for opsets outside 11..21
 */
export function normalizeOpset(source: Graph): Graph {
  const from = source.opset;
  if (from < MIN_OPSET || from > MAX_OPSET) {
    throw new BulwarkError('BULWARK_E_OPSET', `the model uses opset ${from}; Bulwark supports opsets ${MIN_OPSET} to ${MAX_OPSET}`);
  }
  const g = cloneGraph(source);
  const target = Math.max(from, GRAD_OPSET);
  const nodes = topoSort(g);
  const b = new GraphBuilder(g);
  g.nodes.length = 0;
  for (const n of nodes) {
    for (const rewritten of upgradeNode(n, from, b)) g.nodes.push(rewritten);
  }
  g.opset = target;
  g.opsetImports = g.opsetImports.map((o) => (o.domain === '' || o.domain === 'ai.onnx' ? { domain: '', version: target } : o));
  g.irVersion = Math.max(g.irVersion, 8);
  return g;
}

function takeIntsAttr(n: Node, name: string): number[] | undefined {
  const a = n.attrs.get(name);
  if (!a) return undefined;
  n.attrs.delete(name);
  return a.value as number[];
}

/** Returns the node(s) that replace `n` at the target opset. Helper nodes are pushed through the builder first. */
function upgradeNode(orig: Node, from: number, b: GraphBuilder): Node[] {
  if (orig.domain !== '') return [orig];
  const n: Node = { ...orig, inputs: [...orig.inputs], outputs: [...orig.outputs], attrs: new Map(orig.attrs) };
  const op = n.opType;
  const before = b.graph.nodes.length;
  const flushHelpers = (): Node[] => b.graph.nodes.splice(before);
  if ((op === 'Squeeze' || op === 'Unsqueeze') && from < 13) {
    const axes = takeIntsAttr(n, 'axes');
    if (axes) n.inputs = [n.inputs[0]!, b.int64(axes)];
  } else if (op === 'ReduceSum' && from < 13) {
    const axes = takeIntsAttr(n, 'axes');
    if (axes) n.inputs = [n.inputs[0]!, b.int64(axes)];
  } else if (REDUCE_18.includes(op) && from < 18) {
    const axes = takeIntsAttr(n, 'axes');
    if (axes) n.inputs = [n.inputs[0]!, b.int64(axes)];
  } else if (op === 'Split') {
    if (from < 13) {
      const split = takeIntsAttr(n, 'split');
      n.inputs = split ? [n.inputs[0]!, b.int64(split)] : [n.inputs[0]!];
    }
    if (n.inputs.length < 2 || !n.inputs[1]) n.attrs.set('num_outputs', { type: ATTR.INT, value: n.outputs.length });
  } else if (op === 'Dropout') {
    const training = n.inputs[2];
    const masked = n.outputs.length > 1 && n.outputs[1];
    if (!training && !masked) return [...flushHelpers(), { name: n.name, opType: 'Identity', domain: '', inputs: [n.inputs[0]!], outputs: [n.outputs[0]!], attrs: new Map() }];
    if (from < 12) n.attrs.delete('ratio');
  } else if ((op === 'Softmax' || op === 'LogSoftmax' || op === 'Hardmax') && from < 13) {
    // Opset < 13 normalizes over everything after `axis`, flattened to 2-D: spell that out.
    const axis = (n.attrs.get('axis')?.value as number | undefined) ?? 1;
    const x = n.inputs[0]!;
    const flat = b.node('Flatten', [x], { axis }, `${n.name}/flatten`);
    const inner = b.node(op, [flat], { axis: 1 }, `${n.name}/2d`);
    const shape = b.shape(x);
    return [...flushHelpers(), { name: n.name, opType: 'Reshape', domain: '', inputs: [inner, shape], outputs: [n.outputs[0]!], attrs: new Map() }];
  } else if (op === 'Resize' && n.attrs.get('coordinate_transformation_mode')?.value === 'tf_half_pixel_for_nn') {
    throw new BulwarkError('BULWARK_E_UNSUPPORTED_OP', `node ${n.name}: Resize coordinate mode tf_half_pixel_for_nn (removed in opset 13) is not supported`);
  } else if (op === 'Upsample') {
    throw new BulwarkError('BULWARK_E_UNSUPPORTED_OP', `node ${n.name}: Upsample is deprecated; re-export with Resize (opset 11 or later)`);
  }
  return [...flushHelpers(), n];
}

/** Converts a float32 graph to float64 (initializers, inputs, Cast targets), for tight numerical gradient checks. */
export function toFloat64(source: Graph): Graph {
  const g = cloneGraph(source);
  for (const [k, t] of g.initializers) {
    if (t.dataType === ELEM.FLOAT) g.initializers.set(k, { dataType: ELEM.DOUBLE, dims: t.dims, data: Float64Array.from(t.data as Float32Array) });
  }
  for (const v of [...g.inputs, ...g.outputs]) if (v.elemType === ELEM.FLOAT) v.elemType = ELEM.DOUBLE;
  g.valueInfo = new Map();
  for (const n of g.nodes) {
    const to = n.attrs.get('to');
    if ((n.opType === 'Cast' || n.opType === 'CastLike') && to && to.value === ELEM.FLOAT) n.attrs.set('to', { type: ATTR.INT, value: ELEM.DOUBLE });
    for (const [k, a] of n.attrs) {
      if (a.type === ATTR.TENSOR && !('raw' in a)) {
        const t = a.value as { dataType: number; dims: number[]; data: Float32Array };
        if (t.dataType === ELEM.FLOAT) n.attrs.set(k, { type: ATTR.TENSOR, value: { dataType: ELEM.DOUBLE, dims: t.dims, data: Float64Array.from(t.data) } });
      }
    }
  }
  return g;
}

/**
 * Exact rewrites that make gradient graphs cheaper without changing any value the graph computes:
 * Relu followed only by MaxPool becomes MaxPool followed by Relu (max is monotone, so MaxPool(Relu(z)) =
 * Relu(MaxPool(z))); the Relu gradient then runs on the pooled tensor, a kernel-area fraction of the size.
 */
export function simplifyForGradient(source: Graph): Graph {
  const g = cloneGraph(source);
  const consumers = new Map<string, Node[]>();
  for (const n of g.nodes) for (const i of n.inputs) if (i) consumers.set(i, [...(consumers.get(i) ?? []), n]);
  const outputs = new Set(g.outputs.map((o) => o.name));
  const b = new GraphBuilder(g);
  for (const relu of g.nodes) {
    if (relu.opType !== 'Relu' || relu.domain !== '') continue;
    const r = relu.outputs[0]!;
    const users = consumers.get(r) ?? [];
    const pool = users[0];
    if (users.length !== 1 || outputs.has(r) || !pool || pool.opType !== 'MaxPool' || pool.outputs.filter(Boolean).length !== 1) continue;
    const pooled = b.uniq(`${pool.outputs[0]}/pre_relu`);
    pool.inputs = [relu.inputs[0]!];
    const out = pool.outputs[0]!;
    pool.outputs = [pooled];
    relu.inputs = [pooled];
    relu.outputs = [out];
  }
  g.nodes = topoSort(g);
  return g;
}

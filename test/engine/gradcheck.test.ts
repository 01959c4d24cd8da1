import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../src/core/rng.js';
import { sizeOf } from '../../src/core/tensor.js';
import { GraphBuilder, floatAttr, type AttrInit } from '../../src/onnx/builder.js';
import { ELEM, emptyGraph, type Graph } from '../../src/onnx/ir.js';
import { normalizeOpset } from '../../src/autodiff/normalize.js';
import { buildGradient } from '../../src/autodiff/walker.js';
import type { ConvWeightGradient } from '../../src/autodiff/context.js';
import { probeShapes } from '../../src/runtime/probe.js';
import { createSession, runSession, toOrt } from '../../src/runtime/session.js';
import { relL2 } from '../helpers.js';

/**
 * Numerical gradient checks: each op alone in a graph, loss = Σ_k Σ(Y_k ⊙ R_k) for fixed random R_k, gradients
 * from the autodiff pass against central differences of the same graph on onnxruntime. Graphs run in float64
 * where onnxruntime's CPU kernels have a double version; otherwise in float32 with a looser bound.
 */
interface In {
  dims: number[];
  /** float input (differentiated), or an int64/float constant */
  kind?: 'x' | 'const' | 'i64';
  values?: number[];
  /** sampling range for x inputs, away from kinks */
  range?: [number, number];
  /** sample |x| in range with a random sign (keeps away from 0 for kinked ops) */
  signed?: boolean;
}
interface Case {
  op: string;
  inputs: (In | null)[];
  attrs?: Record<string, AttrInit>;
  outputs?: number;
  opset?: number;
  name?: string;
  f32?: boolean;
}

const x = (dims: number[], extra: Partial<In> = {}): In => ({ dims, kind: 'x', ...extra });
const i64 = (values: number[], dims = [values.length]): In => ({ dims, kind: 'i64', values });
const cst = (values: number[], dims = [values.length]): In => ({ dims, kind: 'const', values });
const away: Partial<In> = { range: [0.1, 1.5], signed: true };
const pos: Partial<In> = { range: [0.3, 1.5] };

const CASES: Case[] = [
  { op: 'Add', inputs: [x([2, 3]), x([3])] },
  { op: 'Add', inputs: [x([2, 1, 4]), x([3, 1])], name: 'Add rank-expanding broadcast' },
  { op: 'Sub', inputs: [x([2, 3]), x([2, 3])] },
  { op: 'Sub', inputs: [x([1]), x([2, 3])], name: 'Sub broadcast first' },
  { op: 'Mul', inputs: [x([4]), x([2, 4])] },
  { op: 'Div', inputs: [x([2, 3]), x([1, 3], pos)] },
  { op: 'Neg', inputs: [x([5])] },
  { op: 'Pow', inputs: [x([2, 3], pos), cst([2.5], [])], name: 'Pow constant exponent' },
  { op: 'Pow', inputs: [x([2, 3], pos), x([3], pos)], name: 'Pow both' },
  { op: 'Sqrt', inputs: [x([6], pos)] },
  { op: 'Exp', inputs: [x([6])] },
  { op: 'Log', inputs: [x([6], pos)] },
  { op: 'Abs', inputs: [x([6], away)] },
  { op: 'Erf', inputs: [x([6], { range: [-1.5, 1.5] })] },
  { op: 'Reciprocal', inputs: [x([6], pos)] },
  { op: 'Relu', inputs: [x([3, 4], away)] },
  { op: 'LeakyRelu', inputs: [x([3, 4], away)], attrs: { alpha: floatAttr(0.2) } },
  { op: 'PRelu', inputs: [x([2, 3, 2], away), x([3, 1], pos)] },
  { op: 'Elu', inputs: [x([3, 4], away)], attrs: { alpha: floatAttr(0.7) } },
  { op: 'Selu', inputs: [x([3, 4], away)] },
  { op: 'Sigmoid', inputs: [x([3, 4])] },
  { op: 'HardSigmoid', inputs: [x([3, 4], { range: [0.1, 2], signed: true })] },
  { op: 'HardSwish', inputs: [x([3, 4], { range: [0.2, 2.5], signed: true })] },
  { op: 'Tanh', inputs: [x([3, 4])] },
  { op: 'Softplus', inputs: [x([3, 4])] },
  { op: 'Softsign', inputs: [x([3, 4], away)] },
  { op: 'Softmax', inputs: [x([2, 3, 4])], attrs: { axis: 1 } },
  { op: 'Softmax', inputs: [x([2, 5])], opset: 11, name: 'Softmax opset 11 (flattening form)' },
  { op: 'LogSoftmax', inputs: [x([2, 3, 4])], attrs: { axis: -1 } },
  { op: 'LogSoftmax', inputs: [x([2, 3, 2])], attrs: { axis: 1 }, opset: 11, name: 'LogSoftmax opset 11 over flattened tail' },
  { op: 'Gelu', inputs: [x([3, 4], { range: [-2, 2] })], opset: 20 },
  { op: 'Gelu', inputs: [x([3, 4], { range: [-2, 2] })], attrs: { approximate: 'tanh' }, opset: 20, name: 'Gelu tanh' },
  { op: 'MatMul', inputs: [x([2, 3]), x([3, 4])] },
  { op: 'Gelu', inputs: [x([3, 4], { range: [-2, 2] })], opset: 21, name: 'Gelu opset 21' },
  { op: 'ReduceMean', inputs: [x([2, 3, 4]), i64([1])], opset: 21, name: 'ReduceMean opset 21' },
  { op: 'Pad', inputs: [x([2, 3]), i64([1, 0, 0, 2])], opset: 21, name: 'Pad opset 21' },
  { op: 'Reshape', inputs: [x([2, 6]), i64([3, 4])], opset: 21, name: 'Reshape opset 21' },
  { op: 'MatMul', inputs: [x([2, 2, 3]), x([3, 4])], name: 'MatMul batched broadcast' },
  { op: 'MatMul', inputs: [x([2, 1, 2, 3]), x([3, 3, 2])], name: 'MatMul both batched' },
  { op: 'MatMul', inputs: [x([3]), x([3, 4])], name: 'MatMul 1-D left' },
  { op: 'MatMul', inputs: [x([2, 3, 4]), x([4])], name: 'MatMul 1-D right' },
  { op: 'Gemm', inputs: [x([2, 3]), x([3, 4]), x([4])] },
  { op: 'Gemm', inputs: [x([3, 2]), x([4, 3]), x([1, 4])], attrs: { transA: 1, transB: 1, alpha: floatAttr(0.7), beta: floatAttr(1.3) }, name: 'Gemm transA transB alpha beta' },
  { op: 'Gemm', inputs: [x([3, 2]), x([3, 4]), x([2, 4])], attrs: { transA: 1 }, name: 'Gemm transA full C' },
  { op: 'Gemm', inputs: [x([2, 3]), x([4, 3])], attrs: { transB: 1 }, name: 'Gemm no C' },
  { op: 'Conv', inputs: [x([2, 3, 9]), x([4, 3, 3]), x([4])], attrs: { strides: [2], pads: [1, 1] }, name: 'Conv 1-D strided' },
  { op: 'Conv', inputs: [x([2, 4, 7, 7]), x([6, 2, 3, 3]), x([6])], attrs: { group: 2, strides: [2, 2], pads: [1, 0, 0, 1] }, name: 'Conv grouped strided asymmetric pads' },
  { op: 'Conv', inputs: [x([1, 2, 8, 8]), x([3, 2, 3, 3])], attrs: { dilations: [2, 2], pads: [2, 2, 2, 2] }, name: 'Conv dilated' },
  { op: 'Conv', inputs: [x([1, 2, 7, 6]), x([2, 2, 3, 2])], attrs: { auto_pad: 'SAME_UPPER', strides: [2, 2] }, name: 'Conv SAME_UPPER' },
  { op: 'Conv', inputs: [x([1, 2, 7, 6]), x([2, 2, 2, 3])], attrs: { auto_pad: 'SAME_LOWER', strides: [2, 2] }, name: 'Conv SAME_LOWER' },
  { op: 'Conv', inputs: [x([2, 2, 6, 6]), x([4, 1, 3, 3])], attrs: { auto_pad: 'VALID', group: 2, strides: [3, 3] }, name: 'Conv VALID depthwise-ish' },
  { op: 'Conv', inputs: [x([1, 8, 5, 5]), x([4, 8, 3, 3]), x([4])], attrs: { pads: [1, 1, 1, 1] }, name: 'Conv unit stride, 8 channels (flipped-kernel path)' },
  { op: 'Conv', inputs: [x([1, 16, 6, 5]), x([4, 8, 3, 2])], attrs: { group: 2, dilations: [2, 1], pads: [2, 0, 1, 1] }, name: 'Conv unit stride grouped dilated asymmetric (flipped-kernel path)' },
  { op: 'Conv', inputs: [x([2, 16, 7, 6]), x([3, 16, 3, 2]), x([3])], attrs: { strides: [2, 1], dilations: [1, 2], pads: [1, 0, 2, 1] }, name: 'Conv 16 channels strided dilated asymmetric pads' },
  { op: 'Conv', inputs: [x([2, 16, 8]), x([2, 16, 3])], attrs: { strides: [3] }, name: 'Conv 1-D 16 channels, stride leaves the last input unused' },
  { op: 'Conv', inputs: [x([1, 2, 4, 5, 4]), x([2, 2, 2, 3, 2])], attrs: { strides: [1, 2, 1], pads: [0, 1, 1, 1, 0, 0] }, name: 'Conv 3-D' },
  { op: 'ConvTranspose', inputs: [x([2, 4, 3, 3]), x([4, 3, 3, 3]), x([6])], attrs: { strides: [2, 2], pads: [1, 1, 1, 1], output_padding: [1, 1], group: 2 }, name: 'ConvTranspose grouped output_padding' },
  { op: 'ConvTranspose', inputs: [x([1, 2, 5]), x([2, 3, 4])], attrs: { strides: [3], dilations: [2] }, name: 'ConvTranspose 1-D dilated' },
  { op: 'MaxPool', inputs: [x([2, 2, 7, 7])], attrs: { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], ceil_mode: 1 }, name: 'MaxPool overlapping ceil pads' },
  { op: 'MaxPool', inputs: [x([2, 3, 9])], attrs: { kernel_shape: [2], strides: [2] }, name: 'MaxPool 1-D' },
  { op: 'AveragePool', inputs: [x([2, 2, 7, 7])], attrs: { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], ceil_mode: 1, count_include_pad: 0 }, name: 'AveragePool ceil exclude pad' },
  { op: 'AveragePool', inputs: [x([2, 2, 7, 7])], attrs: { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], ceil_mode: 1, count_include_pad: 1 }, name: 'AveragePool ceil include pad' },
  { op: 'AveragePool', inputs: [x([1, 2, 6, 6])], attrs: { kernel_shape: [2, 2], strides: [2, 2] }, name: 'AveragePool plain' },
  { op: 'GlobalAveragePool', inputs: [x([2, 3, 4, 5])] },
  { op: 'GlobalMaxPool', inputs: [x([2, 3, 4, 5])] },
  { op: 'BatchNormalization', inputs: [x([2, 3, 4, 4]), x([3]), x([3]), cst([0.1, -0.2, 0.3]), cst([0.5, 1.2, 0.9])], attrs: { epsilon: floatAttr(1e-3) } },
  { op: 'LayerNormalization', inputs: [x([2, 3, 4]), x([4]), x([4])], attrs: { axis: -1 }, opset: 17 },
  { op: 'LayerNormalization', inputs: [x([2, 3, 4]), x([3, 4]), x([3, 4])], attrs: { axis: 1 }, opset: 17, name: 'LayerNormalization over two axes' },
  { op: 'InstanceNormalization', inputs: [x([2, 3, 4, 4]), x([3]), x([3])] },
  { op: 'Flatten', inputs: [x([2, 3, 4])], attrs: { axis: 2 } },
  { op: 'Reshape', inputs: [x([2, 3, 4]), i64([0, -1])] },
  { op: 'Transpose', inputs: [x([2, 3, 4])], attrs: { perm: [2, 0, 1] } },
  { op: 'Squeeze', inputs: [x([2, 1, 4]), i64([1])] },
  { op: 'Unsqueeze', inputs: [x([2, 4]), i64([0, 3])] },
  { op: 'Unsqueeze', inputs: [x([2, 4])], attrs: { axes: [1] }, opset: 11, name: 'Unsqueeze opset 11 attribute' },
  { op: 'Concat', inputs: [x([2, 2]), x([2, 3]), x([2, 1])], attrs: { axis: 1 } },
  { op: 'Split', inputs: [x([2, 6]), i64([2, 4])], attrs: { axis: 1 }, outputs: 2 },
  { op: 'Split', inputs: [x([4, 3])], attrs: { axis: 0, split: [1, 3] }, outputs: 2, opset: 11, name: 'Split opset 11' },
  { op: 'Slice', inputs: [x([3, 5]), i64([1, 1]), i64([3, 4]), i64([0, 1])] },
  { op: 'Slice', inputs: [x([2, 9]), i64([1]), i64([-1]), i64([1]), i64([2])], name: 'Slice step 2' },
  { op: 'Slice', inputs: [x([2, 7]), i64([5]), i64([0]), i64([-1]), i64([-2])], name: 'Slice negative step' },
  { op: 'Gather', inputs: [x([4, 3]), i64([0, 2, 0, -1])], attrs: { axis: 0 }, name: 'Gather repeated and negative indices' },
  { op: 'Gather', inputs: [x([2, 4, 3]), i64([1, 1, 3, 0], [2, 2])], attrs: { axis: 1 }, name: 'Gather axis 1 matrix indices' },
  { op: 'GatherElements', inputs: [x([3, 3]), i64([0, 0, 2, 1, 2, 2], [3, 2])], attrs: { axis: 1 } },
  { op: 'Pad', inputs: [x([2, 3, 4]), i64([0, 1, -1, 0, 2, 1])], name: 'Pad with a negative (cropping) pad' },
  { op: 'Clip', inputs: [x([12], { range: [-2, 2] }), cst([-0.5], []), cst([0.8], [])] },
  { op: 'Identity', inputs: [x([3])] },
  { op: 'ReduceMean', inputs: [x([2, 3, 4]), i64([1])], attrs: { keepdims: 0 } },
  { op: 'ReduceSum', inputs: [x([2, 3, 4]), i64([0, 2])] },
  { op: 'ReduceMax', inputs: [x([2, 3, 4]), i64([-1])], attrs: { keepdims: 0 } },
  { op: 'ReduceMin', inputs: [x([2, 3, 4])], attrs: { keepdims: 1 }, name: 'ReduceMin all axes' },
  { op: 'ReduceMean', inputs: [x([2, 3, 4])], attrs: { axes: [0, 2] }, opset: 13, name: 'ReduceMean opset 13 attribute' },
  { op: 'ReduceSumSquare', inputs: [x([2, 3, 4]), i64([1])] },
  { op: 'ReduceLogSumExp', inputs: [x([2, 3, 4]), i64([2])], attrs: { keepdims: 0 } },
  { op: 'Where', inputs: [{ dims: [2, 3], kind: 'const', values: [1, 0, 1, 0, 0, 1] }, x([2, 3]), x([3])] },
  { op: 'Expand', inputs: [x([3, 1]), i64([2, 3, 4])] },
  { op: 'Resize', inputs: [x([1, 2, 3, 3]), null, cst([1, 1, 2, 2])], attrs: { mode: 'nearest' }, name: 'Resize nearest x2 half_pixel' },
  { op: 'Resize', inputs: [x([1, 1, 4, 5]), null, cst([1, 1, 0.6, 1.7])], attrs: { mode: 'nearest', coordinate_transformation_mode: 'asymmetric', nearest_mode: 'floor' }, name: 'Resize nearest asymmetric floor' },
  { op: 'Tile', inputs: [x([2, 3]), i64([2, 2])] },
  { op: 'TopK', inputs: [x([2, 5]), i64([3])], outputs: 2, name: 'TopK values' },
  { op: 'Max', inputs: [x([2, 3]), x([3])] },
  { op: 'Min', inputs: [x([2, 3]), x([2, 3])] },
  { op: 'Sum', inputs: [x([2, 3]), x([3]), x([1, 3])] },
  { op: 'Cast', inputs: [x([4])], attrs: { to: ELEM.FLOAT }, name: 'Cast float to float' },
  { op: 'Dropout', inputs: [x([4])], opset: 13, name: 'Dropout inference' },
  // Edge cases from a review of the rules against the spec and onnxruntime's kernels
  { op: 'MaxPool', inputs: [x([2, 2, 7, 7])], attrs: { kernel_shape: [2, 2], strides: [2, 2], ceil_mode: 1 }, name: 'MaxPool non-overlapping ceil_mode (odd map)' },
  { op: 'MaxPool', inputs: [x([1, 2, 8, 8])], attrs: { kernel_shape: [2, 2], strides: [2, 2], pads: [1, 1, 1, 1] }, name: 'MaxPool non-overlapping pads' },
  { op: 'MaxPool', inputs: [x([1, 2, 7, 7])], attrs: { kernel_shape: [2, 2], strides: [2, 2], auto_pad: 'SAME_UPPER' }, name: 'MaxPool non-overlapping SAME_UPPER (odd map)' },
  { op: 'MatMul', inputs: [x([3]), x([3])], name: 'MatMul 1-D by 1-D (dot product)' },
  { op: 'ConvTranspose', inputs: [x([1, 2, 3, 3]), x([2, 2, 3, 3])], attrs: { strides: [2, 2], output_shape: [8, 8] }, name: 'ConvTranspose output_shape past the natural size' },
  { op: 'Resize', inputs: [x([1, 2, 3, 3]), null, cst([2, 2])], attrs: { mode: 'nearest', axes: [2, 3] }, opset: 18, name: 'Resize nearest with axes (opset 18)' },
  { op: 'Pow', inputs: [x([4], { values: [0, 0.5, 0, 1.5] }), cst([0], [])], name: 'Pow exponent 0 at x = 0' },
  { op: 'Pow', inputs: [cst([0, 0.5, 0, 1.5]), x([4], pos)], name: 'Pow exponent gradient at base 0' },
  { op: 'Conv', inputs: [x([1, 2, 7]), x([3, 2, 1])], attrs: { strides: [4], auto_pad: 'SAME_UPPER' }, name: 'Conv SAME_UPPER stride past the kernel' },
  { op: 'Pad', inputs: [x([2, 3]), i64([1, -1, 0, 2]), x([])], name: 'Pad with a differentiated fill value (and a crop)' },
  { op: 'Conv', inputs: [x([1, 2, 7, 10]), x([3, 2, 1, 2])], attrs: { strides: [4, 5], auto_pad: 'SAME_LOWER' }, name: 'Conv SAME_LOWER stride past the kernel' },
];

function sample(rng: Rng, inp: In): number[] {
  const n = sizeOf(inp.dims);
  if (inp.values) return inp.values;
  const [lo, hi] = inp.range ?? [-1, 1];
  return Array.from({ length: n }, () => {
    const v = rng.uniform(lo, hi);
    return inp.signed && rng.next() < 0.5 ? -v : v;
  });
}

/** Builds the op graph with Σ(Y ⊙ R) loss outputs; returns the graph, x input names and values. */
function buildCase(c: Case, rng: Rng, floatType: number) {
  const g = emptyGraph({ name: 'case', opset: c.opset ?? 18 });

  const b = new GraphBuilder(g, floatType);
  const xs: { name: string; dims: number[]; values: number[] }[] = [];
  const names = c.inputs.map((inp, i) => {
    if (!inp) return '';
    const name = `in${i}`;
    if (inp.kind === 'i64') return b.initializer(name, ELEM.INT64, inp.dims, BigInt64Array.from(inp.values!.map(BigInt)), true);
    const values = sample(rng, inp);
    if (c.op === 'Where' && i === 0) return b.initializer(name, ELEM.BOOL, inp.dims, Uint8Array.from(values), true);
    if (inp.kind === 'const') return b.floats(name, values, inp.dims);
    g.inputs.push({ name, elemType: floatType, shape: inp.dims });
    xs.push({ name, dims: inp.dims, values });
    return name;
  });
  const attrs = { ...(c.attrs ?? {}) };
  if (c.op === 'Cast') attrs['to'] = floatType;
  const all = b.nodeN(c.op, names, attrs, c.outputs ?? 1, 'op');
  // TopK's second output holds indices: only float outputs enter the loss.
  const outs = c.op === 'TopK' ? all.slice(0, 1) : all;
  return { g, b, xs, outs };
}

async function lossGraph(c: Case, seed: number, floatType: number) {
  const rng = new Rng(seed);
  const { g, b, xs, outs } = buildCase(c, rng, floatType);
  // Probe output shapes, then weight each output with fixed random R.
  const shapes0 = await probeShapes(g.outputs.length ? g : withOutputs(g, outs));
  const terms = outs.map((o, k) => {
    const dims = shapes0.get(o)!.dims;
    const r = b.floats(`R${k}`, Array.from({ length: sizeOf(dims) }, () => rng.uniform(-1, 1)), dims);
    return b.node('ReduceSum', [b.mul(o, r)], { keepdims: 0 });
  });
  const loss = terms.length > 1 ? b.node('Sum', terms) : terms[0]!;
  g.outputs = [{ name: loss, elemType: floatType, shape: [] }];
  return { g, xs, loss };
}

function withOutputs(g: Graph, outs: string[]): Graph {
  return { ...g, outputs: outs.map((name) => ({ name, elemType: 0, shape: null })) };
}

async function check(c: Case, floatType: number, convWeightGradient: ConvWeightGradient = 'taps') {
  const seed = 1234;
  const { g, xs, loss } = await lossGraph(c, seed, floatType);
  const norm = normalizeOpset(g);
  const shapes = await probeShapes(norm);
  const grad = buildGradient({ graph: norm, shapes, loss, wrt: xs.map((v) => v.name), convWeightGradient });
  const gradSession = await createSession(grad.graph, { threads: 1 });
  const fwd = await createSession(g, { threads: 1 });
  const Arr = floatType === ELEM.DOUBLE ? Float64Array : Float32Array;
  const feeds = (vals: number[][]) => Object.fromEntries(xs.map((v, i) => [v.name, toOrt(floatType, Arr.from(vals[i]!), v.dims)]));
  const base = xs.map((v) => v.values);
  const res = await runSession(gradSession, feeds(base));
  const h = floatType === ELEM.DOUBLE ? 1e-6 : 1e-3;
  const errors: string[] = [];
  for (let i = 0; i < xs.length; i++) {
    const analytic = Array.from(res[grad.grads.get(xs[i]!.name)!]!.data as Float64Array, Number);
    const numeric: number[] = [];
    for (let j = 0; j < base[i]!.length; j++) {
      const plus = base.map((v) => [...v]);
      const minus = base.map((v) => [...v]);
      plus[i]![j]! += h;
      minus[i]![j]! -= h;
      const fp = Number((await runSession(fwd, feeds(plus)))[loss]!.data[0]);
      const fm = Number((await runSession(fwd, feeds(minus)))[loss]!.data[0]);
      numeric.push((fp - fm) / (2 * h));
    }
    const err = relL2(analytic, numeric);
    const bound = floatType === ELEM.DOUBLE ? 1e-6 : 2e-3;
    if (!(err < bound)) errors.push(`input ${i}: relative L2 error ${err.toExponential(2)} > ${bound} (seed ${seed})`);
  }
  await gradSession.release();
  await fwd.release();
  return errors;
}

// Convolutions are checked with both weight-gradient forms (per-tap GEMMs for one thread, im2col for several).
const RUNS = CASES.flatMap((c) => (c.op === 'Conv' ? (['taps', 'im2col'] as const).map((form) => ({ c, form })) : [{ c, form: 'taps' as const }]));
for (const { c, form } of RUNS) {
  test(`gradient check: ${c.name ?? c.op}${c.op === 'Conv' ? ` [${form} weight gradient]` : ''}`, async () => {
    let errors: string[];
    try {
      errors = await check(c, ELEM.DOUBLE, form);
    } catch (e) {
      // onnxruntime's CPU provider lacks a float64 kernel for some ops (Conv, pooling, ...): check in float32.
      if (!/NOT_IMPLEMENTED|Could not find an implementation|type.*double|tensor\(double\)/i.test((e as Error).message)) throw e;
      errors = await check(c, ELEM.FLOAT, form);
    }
    assert.deepEqual(errors, []);
  });
}

test('every op in the rule table has a gradient check case', async () => {
  const { RULES } = await import('../../src/autodiff/registry.js');
  const covered = new Set(CASES.map((c) => c.op));
  const missing = [...RULES.keys()].filter((op) => !covered.has(op) && !['Floor', 'Ceil', 'Round', 'Sign', 'Mean'].includes(op));
  assert.deepEqual(missing, []);
});

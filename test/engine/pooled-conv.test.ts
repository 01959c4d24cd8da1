import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../src/core/rng.js';
import { GraphBuilder, type AttrInit } from '../../src/onnx/builder.js';
import { ELEM, emptyGraph, type Graph } from '../../src/onnx/ir.js';
import { simplifyForGradient } from '../../src/autodiff/normalize.js';
import { buildGradient } from '../../src/autodiff/walker.js';
import { probeShapes } from '../../src/runtime/probe.js';
import { createSession, runSession, toOrt } from '../../src/runtime/session.js';
import { restrictWindow } from '../../src/autodiff/rules/conv.js';
import { relL2 } from '../helpers.js';

/**
 * A Conv read only by a non-overlapping MaxPool is differentiated through per-phase strided convolutions
 * (src/autodiff/pooled.ts). Its values and gradients must equal those of the MaxPool-with-Indices form, ties included:
 * inputs are quantized to a few levels and kernels hold zeros, so many windows have equal elements and the argmax
 * convention (the first element in row-major order, as onnxruntime's MaxPool reports it) decides the gradient.
 */
interface PoolCase {
  name: string;
  x: number[];
  cout: number;
  conv: Record<string, AttrInit>;
  kernel: number[];
  pool: number[];
  group?: number;
  relu?: boolean;
  bias?: boolean;
  perExample?: boolean;
}

const CASES: PoolCase[] = [
  { name: 'first layer: 1 channel, 3x3 pad 1, pool 2 (phase gradients)', x: [3, 1, 8, 8], cout: 4, conv: { pads: [1, 1, 1, 1] }, kernel: [3, 3], pool: [2, 2], relu: true },
  { name: '8 channels, 3x3 pad 1, pool 2 (full-resolution gradient)', x: [3, 8, 10, 10], cout: 6, conv: { pads: [1, 1, 1, 1] }, kernel: [3, 3], pool: [2, 2], relu: true },
  { name: 'valid conv, odd size (floor drops the last row and column)', x: [2, 8, 11, 11], cout: 5, conv: {}, kernel: [3, 3], pool: [2, 2] },
  { name: 'asymmetric pads, 5x5 kernel, pool 3', x: [2, 3, 13, 12], cout: 4, conv: { pads: [2, 1, 0, 2] }, kernel: [5, 5], pool: [3, 3] },
  { name: 'grouped conv (8 channels per group)', x: [2, 16, 8, 8], cout: 8, conv: { pads: [1, 1, 1, 1] }, kernel: [3, 3], pool: [2, 2], group: 2 },
  { name: '1-D conv and pool', x: [3, 2, 9], cout: 3, conv: { pads: [1, 1] }, kernel: [3], pool: [2] },
  { name: 'auto_pad SAME_UPPER with an even kernel', x: [2, 8, 8, 8], cout: 4, conv: { auto_pad: 'SAME_UPPER' }, kernel: [4, 4], pool: [2, 2] },
  { name: 'pool over one axis only', x: [2, 2, 6, 8], cout: 3, conv: { pads: [1, 1, 1, 1] }, kernel: [3, 3], pool: [1, 2] },
  { name: 'no bias, per-example parameter gradients (1 channel)', x: [3, 1, 8, 8], cout: 4, conv: { pads: [1, 1, 1, 1] }, kernel: [3, 3], pool: [2, 2], bias: false, perExample: true },
  { name: 'per-example parameter gradients with bias (2 channels, cascade)', x: [3, 2, 8, 8], cout: 4, conv: { pads: [1, 1, 1, 1] }, kernel: [3, 3], pool: [2, 2], relu: true, perExample: true },
  { name: 'per-example parameter gradients (8 channels)', x: [3, 8, 6, 6], cout: 4, conv: { pads: [1, 1, 1, 1] }, kernel: [3, 3], pool: [2, 2], relu: true, perExample: true },
  // The pool covers only the first rows of the conv output, so the gradient convolution reads only the first rows of x.
  { name: '16 channels, pool 3 leaves the last 2 rows (x cut to 8 of 10 rows)', x: [2, 16, 10, 10], cout: 8, conv: {}, kernel: [3, 3], pool: [3, 3], relu: true },
  { name: 'grouped, odd size with pads (the window loses its end pad)', x: [2, 16, 9, 9], cout: 8, conv: { pads: [1, 1, 1, 1] }, kernel: [3, 3], pool: [2, 2], group: 2 },
  { name: '1-D, pool 4 leaves 2 of 10 outputs (x cut)', x: [3, 8, 12], cout: 4, conv: {}, kernel: [3], pool: [4], relu: true },
  { name: 'per-example gradients, odd size (x cut)', x: [3, 8, 7, 7], cout: 4, conv: {}, kernel: [3, 3], pool: [2, 2], relu: true, perExample: true },
];

/** Few distinct values, so windows tie often. */
function levels(rng: Rng, n: number, values: number[]): number[] {
  return Array.from({ length: n }, () => values[Math.floor(rng.next() * values.length)]!);
}

/** Spatial dims of the case's pooled output. */
function pooledSpatial(c: PoolCase): number[] {
  return c.x.slice(2).map((len, i) => {
    const pads = (c.conv['pads'] as number[] | undefined) ?? new Array<number>(2 * c.kernel.length).fill(0);
    const conv = c.conv['auto_pad'] === 'SAME_UPPER' ? len : len + pads[i]! + pads[i + c.kernel.length]! - c.kernel[i]! + 1;
    return Math.floor(conv / c.pool[i]!);
  });
}

function caseGraph(c: PoolCase, rng: Rng): { g: Graph; loss: string; feeds: Map<string, { data: Float32Array; dims: number[] }> } {
  const g = emptyGraph({ name: c.name, opset: 18 });
  g.inputs.push({ name: 'x', elemType: ELEM.FLOAT, shape: c.x });
  const b = new GraphBuilder(g);
  const group = c.group ?? 1;
  const wDims = [c.cout, c.x[1]! / group, ...c.kernel];
  const wSize = wDims.reduce((a, d) => a * d, 1);
  const w = b.initializer('w', ELEM.FLOAT, wDims, Float32Array.from(levels(rng, wSize, [-1, -0.5, 0, 0, 0.5, 1])), true);
  const bias = c.bias === false ? [] : [b.initializer('bias', ELEM.FLOAT, [c.cout], Float32Array.from(levels(rng, c.cout, [-0.5, 0, 0.5])), true)];
  let y = b.node('Conv', ['x', w, ...bias], { kernel_shape: c.kernel, group, ...c.conv }, 'conv');
  if (c.relu) y = b.node('Relu', [y], {}, 'relu');
  const pooled = b.node('MaxPool', [y], { kernel_shape: c.pool, strides: c.pool }, 'pool');
  const pDims = [c.x[0]!, c.cout, ...pooledSpatial(c)];
  const rSize = pDims.reduce((a, d) => a * d, 1);
  const r = b.initializer('r', ELEM.FLOAT, pDims, Float32Array.from({ length: rSize }, () => rng.uniform(-1, 1)), true);
  const axes = Array.from({ length: pDims.length - 1 }, (_, i) => i + 1);
  const loss = b.node('ReduceSum', [b.mul(pooled, r), b.int64(axes)], { keepdims: 0 }, 'loss');
  g.outputs.push({ name: loss, elemType: ELEM.FLOAT, shape: [c.x[0]!] });
  const xSize = c.x.reduce((a, d) => a * d, 1);
  return { g, loss, feeds: new Map([['x', { data: Float32Array.from(levels(rng, xSize, [0, 0, 0.25, 0.5, 1])), dims: c.x }]]) };
}

/** How a case is differentiated: the weight-gradient form, or the input alone (the kernel then is a constant). */
type Variant = 'taps' | 'im2col' | 'input only';

async function run(c: PoolCase, split: boolean, variant: Variant) {
  const { g, loss, feeds } = caseGraph(c, new Rng(11));
  const graph = simplifyForGradient(g);
  const shapes = await probeShapes(graph);
  const params = c.bias === false ? ['w'] : ['w', 'bias'];
  const wrt = variant === 'input only' ? ['x'] : c.perExample ? params : ['x', ...params];
  const form = variant === 'input only' ? {} : { convWeightGradient: variant };
  const res = buildGradient({ graph, shapes, loss, wrt, splitPooledConvs: split, ...form, ...(c.perExample && variant !== 'input only' ? { perExample: params } : {}) });
  const session = await createSession(res.graph);
  const outs = [loss, ...wrt.map((w) => res.grads.get(w)!)];
  const got = await runSession(session, Object.fromEntries([...feeds].map(([k, v]) => [k, toOrt(ELEM.FLOAT, v.data, v.dims)])), outs);
  await session.release();
  return { graph: res.graph, values: outs.map((o) => got[o]!.data as Float32Array), wrt };
}

for (const c of CASES) for (const variant of ['taps', 'im2col', 'input only'] as const) {
  if (c.perExample && variant === 'taps') continue; // per-example weight gradients have one form
  test(`pooled conv split equals MaxPool with indices: ${c.name} (${variant})`, async () => {
    const split = await run(c, true, variant);
    const plain = await run(c, false, variant);
    // The rewrite took place: no MaxPool is left and the phases are strided convolutions.
    assert.equal(split.graph.nodes.filter((n) => n.opType === 'MaxPool').length, 0, 'the split graph still has a MaxPool');
    const phases = split.graph.nodes.filter((n) => n.name.startsWith('conv/phase') && n.opType === 'Conv');
    assert.equal(phases.length, c.pool.reduce((a, k) => a * k, 1));
    assert.equal(plain.graph.nodes.filter((n) => n.opType === 'MaxPool').length, 1);
    // The full-resolution gradient map (8 or more channels per group) holds only what the windows cover.
    const unpool = split.graph.nodes.find((n) => n.opType === 'MaxUnpool');
    if (c.x[1]! / (c.group ?? 1) >= 8) {
      assert.ok(unpool, 'no MaxUnpool in the split graph');
      const shape = split.graph.nodes.find((n) => n.outputs[0] === unpool.inputs[2])!;
      const dims = Array.from(split.graph.initializers.get(shape.inputs[1]!)!.data as BigInt64Array, Number);
      const pooled = pooledSpatial(c);
      assert.deepEqual(dims, [c.cout, ...c.pool.map((k, i) => k * pooled[i]!)]);
    }
    assert.ok(relL2(split.values[0]!, plain.values[0]!) < 1e-6, `loss differs: ${relL2(split.values[0]!, plain.values[0]!)}`);
    split.wrt.forEach((w, k) => {
      const a = split.values[k + 1]!;
      const e = plain.values[k + 1]!;
      assert.equal(a.length, e.length, `${w}: gradient sizes differ`);
      assert.ok(e.some((v) => v !== 0), `${w}: the reference gradient is all zero`);
      const err = relL2(a, e);
      assert.ok(err < 1e-5, `${w}: gradient rel. L2 error ${err}`);
    });
  });
}

test('pooled conv split is skipped when the conv output has another reader or the pool overlaps', async () => {
  for (const variant of ['two readers', 'overlapping pool'] as const) {
    const g = emptyGraph({ name: variant, opset: 18 });
    g.inputs.push({ name: 'x', elemType: ELEM.FLOAT, shape: [2, 8, 8, 8] });
    const b = new GraphBuilder(g);
    const rng = new Rng(3);
    const w = b.initializer('w', ELEM.FLOAT, [4, 8, 3, 3], Float32Array.from({ length: 288 }, () => rng.uniform(-1, 1)), true);
    const y = b.node('Conv', ['x', w], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] }, 'conv');
    const pooled = variant === 'overlapping pool'
      ? b.node('MaxPool', [y], { kernel_shape: [3, 3], strides: [2, 2] }, 'pool')
      : b.node('MaxPool', [y], { kernel_shape: [2, 2], strides: [2, 2] }, 'pool');
    let loss = b.node('ReduceSum', [pooled], { keepdims: 0 });
    if (variant === 'two readers') loss = b.add(loss, b.node('ReduceSum', [y], { keepdims: 0 }));
    g.outputs.push({ name: loss, elemType: ELEM.FLOAT, shape: [] });
    const res = buildGradient({ graph: g, shapes: await probeShapes(g), loss, wrt: ['x'] });
    assert.equal(res.graph.nodes.filter((n) => n.opType === 'MaxPool').length, 1, variant);
    assert.ok(!res.graph.nodes.some((n) => n.name.startsWith('conv/phase')), variant);
  }
});

test('restrictWindow: the convolution cut to the outputs a gradient covers', () => {
  const w = (spatial: number, pb: number, pe: number) => ({ spatial: [spatial], kernel: [3], strides: [1], dilations: [1], padsBegin: [pb], padsEnd: [pe] });
  // x 10, no pads: 8 outputs; a gradient over the first 6 reads x[0..8)
  assert.deepEqual(restrictWindow(w(10, 0, 0), [8], [6]), w(8, 0, 0));
  // x 9, pads 1: 9 outputs; the first 8 read x[-1..9), so the end pad goes and x stays whole
  assert.deepEqual(restrictWindow(w(9, 1, 1), [9], [8]), w(9, 1, 0));
  // stride 2, dilation 2, x 12: outputs 0..3 read up to 3·2 + 2·2 + 1 = 11 elements
  assert.deepEqual(restrictWindow({ ...w(12, 0, 0), strides: [2], dilations: [2] }, [4], [4]), undefined);
  assert.deepEqual(restrictWindow({ ...w(12, 0, 0), strides: [2], dilations: [2] }, [4], [3]), { ...w(9, 0, 0), strides: [2], dilations: [2] });
  // nothing to cut, or nothing sensible to cut to
  assert.equal(restrictWindow(w(10, 0, 0), [8], undefined), undefined);
  assert.equal(restrictWindow(w(10, 0, 0), [8], [8]), undefined);
  assert.equal(restrictWindow(w(10, 0, 0), [8], [0]), undefined);
  assert.equal(restrictWindow(w(4, 5, 5), [10], [1]), undefined);
});

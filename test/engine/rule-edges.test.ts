import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';
import { BulwarkError } from '../../src/core/errors.js';
import { GraphBuilder } from '../../src/onnx/builder.js';
import { ELEM, emptyGraph, writeModelBytes } from '../../src/onnx/ir.js';
import { sliceIndices } from '../../src/autodiff/rules/shape.js';
import { buildGradient } from '../../src/autodiff/walker.js';
import { probeShapes } from '../../src/runtime/probe.js';

test('Slice indices match onnxruntime on a table of starts, ends and steps (INT_MAX ends, starts before the first element)', async () => {
  const len = 6;
  const edges = [2n ** 63n - 1n, 2147483647n, 2147483648n, 9n, 5n, 2n, 0n, -1n, -6n, -7n, -100n, -(2n ** 63n)];
  let checked = 0;
  for (const step of [-2n, -1n, 1n, 2n]) {
    for (const start of edges) {
      for (const end of edges) {
        const g = emptyGraph({ name: 'slice', opset: 13, inputs: [{ name: 'x', elemType: ELEM.FLOAT, shape: [len] }] });
        const b = new GraphBuilder(g);
        const i64 = (v: bigint) => b.initializer('c', ELEM.INT64, [1], BigInt64Array.from([v]));
        const y = b.node('Slice', ['x', i64(start), i64(end), i64(0n), i64(step)]);
        g.outputs.push({ name: y, elemType: ELEM.FLOAT, shape: null });
        const s = await ort.InferenceSession.create(writeModelBytes(g), { logSeverityLevel: 4 });
        const r = await s.run({ x: new ort.Tensor('float32', Float32Array.from({ length: len }, (_, i) => i), [len]) });
        await s.release();
        const want = Array.from(r[y]!.data as Float32Array);
        assert.deepEqual(sliceIndices(len, Number(start), Number(end), Number(step)), want, `start ${start} end ${end} step ${step}`);
        checked++;
      }
    }
  }
  assert.equal(checked, 4 * edges.length ** 2);
});

async function gradientOf(build: (b: GraphBuilder) => string, inputs: { name: string; shape: (number | string)[] }[]): Promise<void> {
  const g = emptyGraph({ name: 'edge', opset: 17, inputs: inputs.map((i) => ({ ...i, elemType: ELEM.FLOAT })) });
  const b = new GraphBuilder(g);
  const y = build(b);
  const loss = b.node('ReduceSum', [y], { keepdims: 0 });
  g.outputs.push({ name: loss, elemType: ELEM.FLOAT, shape: [] });
  const shapes = await probeShapes(g);
  buildGradient({ graph: g, shapes, loss, wrt: ['x'] });
}

const refused = (pattern: RegExp) => (e: unknown) => e instanceof BulwarkError && e.code === 'BULWARK_E_UNSUPPORTED_OP' && pattern.test(e.message);

test('rules refuse what they cannot differentiate exactly: GlobalAveragePool over dynamic H and W, Dropout with a fed training_mode', async () => {
  // a dynamic H·W would have made the divisor (−1)·(−1) = 1
  await assert.rejects(gradientOf((b) => b.node('GlobalAveragePool', ['x']), [{ name: 'x', shape: ['N', 3, 'H', 'W'] }]), refused(/spatial dims must be static/));
  const g = emptyGraph({ name: 'edge', opset: 13, inputs: [{ name: 'x', elemType: ELEM.FLOAT, shape: [2, 4] }, { name: 'mode', elemType: ELEM.BOOL, shape: [] }] });
  const b = new GraphBuilder(g);
  const [y] = b.nodeN('Dropout', ['x', b.scalar(0.5), 'mode'], {}, 1);
  const loss = b.node('ReduceSum', [y!], { keepdims: 0 });
  g.outputs.push({ name: loss, elemType: ELEM.FLOAT, shape: [] });
  const shapes = await probeShapes(g, {});
  assert.throws(() => buildGradient({ graph: g, shapes, loss, wrt: ['x'] }), refused(/training_mode is not a constant/));
});

test('a Cast of the differentiated path to an integer type (a quantizer) is reported among the zero-gradient nodes', async () => {
  const g = emptyGraph({ name: 'quant', opset: 17, inputs: [{ name: 'x', elemType: ELEM.FLOAT, shape: [2, 3] }] });
  const b = new GraphBuilder(g);
  // y = 2x + float(int(4x)): the second term is a staircase whose derivative is zero almost everywhere
  const q = b.node('Cast', [b.mul('x', b.scalar(4))], { to: ELEM.INT32 }, 'quantize');
  const y = b.add(b.mul('x', b.scalar(2)), b.cast(q, ELEM.FLOAT));
  const loss = b.node('ReduceSum', [y], { keepdims: 0 });
  g.outputs.push({ name: loss, elemType: ELEM.FLOAT, shape: [] });
  const res = buildGradient({ graph: g, shapes: await probeShapes(g), loss, wrt: ['x'] });
  assert.deepEqual(res.zeroGradientNodes, ['quantize']);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { Rng } from '../../src/core/rng.js';
import { GraphBuilder } from '../../src/onnx/builder.js';
import { ELEM, emptyGraph, writeModelBytes, type Graph } from '../../src/onnx/ir.js';
import { setBlockedConvWidth } from '../../src/autodiff/rules/conv.js';
import { NCHWC_DOMAIN, nchwcBlockSize, nchwcWeightInputConvs } from '../../src/runtime/nchwc.js';
import { createSession, runSession, toOrt } from '../../src/runtime/session.js';
import { buildTrainingGraph } from '../../src/nn/train.js';
import { buildArch } from '../../src/nn/zoo.js';
import { relL2 } from '../helpers.js';

/** The SIMD width MLAS's blocked kernels use on this CPU, from its flags (x86-64 Linux). */
function expectedBlock(): number {
  const info = fs.existsSync('/proc/cpuinfo') ? fs.readFileSync('/proc/cpuinfo', 'utf8') : '';
  if (/\bavx512f\b/.test(info)) return 16;
  if (/\bavx2\b/.test(info)) return 8;
  return -1;
}

/** The graph run through createSession (which applies the blocked rewrite) gives the plain Conv's output. */
async function assertSameAsPlain(g: Graph, feeds: Record<string, ReturnType<typeof toOrt>>, y: string, what: string): Promise<void> {
  // The bytes path skips the rewrite, for the reference.
  const ref = await createSession(writeModelBytes(g), { threads: 1 });
  const fast = await createSession(g, { threads: 1 });
  const a = (await runSession(ref, feeds, [y]))[y]!;
  const b = (await runSession(fast, feeds, [y]))[y]!;
  assert.deepEqual([...b.dims], [...a.dims]);
  assert.ok(relL2(b.data as Float32Array, a.data as Float32Array) < 1e-6, what);
  await ref.release();
  await fast.release();
}

test('the blocked-kernel width is probed from the runtime and matches the CPU', async () => {
  const block = await nchwcBlockSize();
  const want = expectedBlock();
  if (want > 0) assert.equal(block, want);
  else assert.ok([0, 8, 16].includes(block));
});

test('convolutions with kernels as graph inputs run on blocked kernels with the same values', async () => {
  const block = await nchwcBlockSize();
  assert.ok(block > 0, 'this test needs a CPU with the blocked kernels');
  const rng = new Rng(2);
  const convs: Record<string, number[]>[] = [{ strides: [1, 1], pads: [1, 1, 1, 1] }, { strides: [2, 2], pads: [0, 1, 1, 0] }, { strides: [1, 2], pads: [0, 0, 0, 0], dilations: [2, 1] }];
  for (const conv of convs) {
    const g = emptyGraph({ name: 'c', opset: 17, inputs: [{ name: 'x', elemType: ELEM.FLOAT, shape: [3, 16, 9, 10] }, { name: 'w', elemType: ELEM.FLOAT, shape: [32, 16, 3, 3] }, { name: 'b', elemType: ELEM.FLOAT, shape: [32] }] });
    const y = new GraphBuilder(g).node('Conv', ['x', 'w', 'b'], { kernel_shape: [3, 3], ...conv });
    g.outputs.push({ name: y, elemType: ELEM.FLOAT, shape: null });
    const blocked = nchwcWeightInputConvs(g, block);
    assert.equal(blocked.nodes.filter((n) => n.domain === NCHWC_DOMAIN).length, 3, 'ReorderInput, Conv, ReorderOutput');
    const feeds = {
      x: toOrt(ELEM.FLOAT, Float32Array.from({ length: 3 * 16 * 90 }, () => rng.uniform(-1, 1)), [3, 16, 9, 10]),
      w: toOrt(ELEM.FLOAT, Float32Array.from({ length: 32 * 16 * 9 }, () => rng.uniform(-1, 1)), [32, 16, 3, 3]),
      b: toOrt(ELEM.FLOAT, Float32Array.from({ length: 32 }, () => rng.uniform(-1, 1)), [32]),
    };
    await assertSameAsPlain(g, feeds, y, JSON.stringify(conv));
  }
  // A first layer (fewer input channels than the block, outputs a multiple of it) reads its NCHW input directly:
  // no ReorderInput, the kernel laid out [O/B][I][kh][kw][B].
  const firstLayers: [number, Record<string, number[]>][] = [[1, { strides: [2, 2], pads: [1, 1, 1, 1] }], [3, { strides: [1, 1], pads: [1, 0, 2, 1] }], [block - 1, { strides: [1, 1], pads: [0, 0, 0, 0] }]];
  for (const [cin, conv] of firstLayers) {
    const g = emptyGraph({ name: 'c', opset: 17, inputs: [{ name: 'x', elemType: ELEM.FLOAT, shape: [2, cin, 11, 9] }, { name: 'w', elemType: ELEM.FLOAT, shape: [2 * block, cin, 3, 3] }] });
    const y = new GraphBuilder(g).node('Conv', ['x', 'w'], { kernel_shape: [3, 3], ...conv });
    g.outputs.push({ name: y, elemType: ELEM.FLOAT, shape: null });
    const blocked = nchwcWeightInputConvs(g, block);
    assert.deepEqual(blocked.nodes.filter((n) => n.domain === NCHWC_DOMAIN).map((n) => n.opType), ['Conv', 'ReorderOutput'], `cin ${cin}`);
    const feeds = {
      x: toOrt(ELEM.FLOAT, Float32Array.from({ length: 2 * cin * 99 }, () => rng.uniform(-1, 1)), [2, cin, 11, 9]),
      w: toOrt(ELEM.FLOAT, Float32Array.from({ length: 2 * block * cin * 9 }, () => rng.uniform(-1, 1)), [2 * block, cin, 3, 3]),
    };
    await assertSameAsPlain(g, feeds, y, `cin ${cin}`);
  }
  // Channel counts off the block, float64 and grouped convolutions are left alone.
  const g = emptyGraph({ name: 'c', opset: 17, inputs: [{ name: 'x', elemType: ELEM.FLOAT, shape: [1, 12, 5, 5] }, { name: 'w', elemType: ELEM.FLOAT, shape: [12, 12, 3, 3] }] });
  const y = new GraphBuilder(g).node('Conv', ['x', 'w'], { kernel_shape: [3, 3] });
  g.outputs.push({ name: y, elemType: ELEM.FLOAT, shape: null });
  assert.equal(nchwcWeightInputConvs(g, 16), g);
  // Few input channels but outputs off the block: left alone too.
  const g2 = emptyGraph({ name: 'c', opset: 17, inputs: [{ name: 'x', elemType: ELEM.FLOAT, shape: [1, 3, 5, 5] }, { name: 'w', elemType: ELEM.FLOAT, shape: [12, 3, 3, 3] }] });
  g2.outputs.push({ name: new GraphBuilder(g2).node('Conv', ['x', 'w'], { kernel_shape: [3, 3] }), elemType: ELEM.FLOAT, shape: null });
  assert.equal(nchwcWeightInputConvs(g2, 16), g2);
});

test('training gradients are the same with and without the blocked form of the input-gradient convolution', async () => {
  const block = await nchwcBlockSize();
  assert.ok(block > 0);
  const net = buildArch('conv:16x3p1,relu,conv:16x3p1,relu,maxpool:2,flatten,dense:10', { inputShape: [1, 8, 8], seed: 4 });
  const run = async (width: number) => {
    setBlockedConvWidth(width);
    try {
      const tg = await buildTrainingGraph(net);
      const s = await createSession(tg.graph, { threads: 1 });
      const rng = new Rng(9);
      const feeds: Record<string, ReturnType<typeof toOrt>> = {
        input: toOrt(ELEM.FLOAT, Float32Array.from({ length: 4 * 64 }, () => rng.uniform(0, 1)), [4, 1, 8, 8]),
        [tg.labels]: toOrt(ELEM.INT64, BigInt64Array.from([1n, 5n, 9n, 0n]), [4]),
      };
      for (const p of net.params()) feeds[p.name] = toOrt(ELEM.FLOAT, p.data, p.shape);
      const names = net.params().map((p) => tg.grads.get(p.name)!);
      const out = await runSession(s, feeds, names);
      await s.release();
      return { graph: tg.graph, grads: names.map((k) => out[k]!.data as Float32Array) };
    } finally {
      setBlockedConvWidth(block);
    }
  };
  const plain = await run(0);
  const fast = await run(block);
  // The second conv's input gradient is a Conv with a computed (flipped) kernel, declared for the blocked pass.
  assert.ok(plain.graph.nodes.some((n) => n.opType === 'ConvTranspose'));
  assert.ok(!fast.graph.nodes.some((n) => n.opType === 'ConvTranspose'));
  fast.grads.forEach((gr, k) => assert.ok(relL2(gr, plain.grads[k]!) < 1e-5, `parameter ${k}: ${relL2(gr, plain.grads[k]!)}`));
});

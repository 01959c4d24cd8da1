import { test } from 'node:test';
import assert from 'node:assert/strict';
import type * as ort from 'onnxruntime-node';
import { Rng } from '../../src/core/rng.js';
import { ELEM } from '../../src/onnx/ir.js';
import { createSession, runSession, toOrt } from '../../src/runtime/session.js';
import { buildArch } from '../../src/nn/zoo.js';
import { buildTrainingGraph, TrainingSession } from '../../src/nn/train.js';
import type { Network } from '../../src/nn/network.js';

/**
 * Checks parameter gradients of a network's training graph against central finite differences of the summed loss,
 * on a few sampled elements per parameter, with the dropout masks drawn once and held fixed. In float64 the check is
 * tight. onnxruntime has no float64 Conv or Erf, so networks with those run in float32: the difference is taken at
 * two steps (3e-3 and 1e-3: float32 rounding grows as the step shrinks, ReLU/MaxPool kinks bite as it grows) and
 * the closer one must agree to 1e-4 + 0.5%.
 */
async function checkGradients(net: Network, opts: { batch: number; labelSmoothing: number; seed: number; float64: boolean }): Promise<void> {
  const { batch, seed, float64 } = opts;
  const elem = float64 ? ELEM.DOUBLE : ELEM.FLOAT;
  const array = (values: ArrayLike<number>) => (float64 ? Float64Array.from(values) : Float32Array.from(values));
  const steps = float64 ? [1e-6] : [3e-3, 1e-3];
  const [atol, rtol] = float64 ? [1e-9, 1e-6] : [1e-4, 5e-3];
  const tg = await buildTrainingGraph(net, { float64, labelSmoothing: opts.labelSmoothing });
  const session = await createSession(tg.graph, { threads: 1 });
  const rng = new Rng(seed);
  const x = array(Array.from({ length: batch * net.inputShape.reduce((a, b) => a * b, 1) }, () => rng.uniform(0, 1)));
  const labels = BigInt64Array.from({ length: batch }, () => BigInt(rng.int(net.numClasses)));
  const fixed: Record<string, ort.Tensor> = {
    input: toOrt(elem, x, [batch, ...net.inputShape]),
    [tg.labels]: toOrt(ELEM.INT64, labels, [batch]),
  };
  for (const d of tg.dropouts) fixed[d.maskInput] = toOrt(elem, array(d.makeMask(batch, rng)), [batch, ...d.maskShape]);
  const params = net.params().map((p) => ({ ...p, v: array(p.data) }));
  const feeds = () => ({ ...fixed, ...Object.fromEntries(params.map((p) => [p.name, toOrt(elem, p.v, p.shape)])) });
  const lossSum = async () => Array.from((await runSession(session, feeds(), [tg.loss]))[tg.loss]!.data as Float64Array).reduce((a, b) => a + b, 0);
  const out = await runSession(session, feeds(), params.map((p) => tg.grads.get(p.name)!));
  for (const p of params) {
    const grad = out[tg.grads.get(p.name)!]!.data as Float64Array;
    assert.equal(grad.length, p.v.length, `gradient size of ${p.name}`);
    const picks = new Set([0, p.v.length - 1, ...Array.from({ length: 4 }, () => rng.int(p.v.length))]);
    for (const i of picks) {
      const keep = p.v[i]!;
      const numeric: number[] = [];
      for (const h of steps) {
        p.v[i] = keep + h;
        const up = await lossSum();
        p.v[i] = keep - h;
        const down = await lossSum();
        p.v[i] = keep;
        numeric.push((up - down) / (2 * h));
      }
      const err = Math.min(...numeric.map((v) => Math.abs(v - grad[i]!)));
      assert.ok(err <= atol + rtol * Math.abs(grad[i]!), `${p.name}[${i}]: analytic ${grad[i]} vs numeric ${numeric.join(', ')} (seed ${seed})`);
    }
  }
  await session.release();
}

test('float64: dense, BatchNorm1d in training mode, dropout mask, relu, leakyrelu, sigmoid, tanh, maxpool, label smoothing', async () => {
  const net = buildArch('maxpool:2,flatten,dense:6,bn,relu,dropout:0.4,dense:5,leakyrelu:0.1,dense:5,sigmoid,dense:5,tanh,dense:3', { inputShape: [2, 4, 4], seed: 5 });
  await checkGradients(net, { batch: 6, labelSmoothing: 0.2, seed: 13, float64: true });
});

test('float32: conv, BatchNorm2d and 1d in training mode, dropout mask, avgpool, gelu, tanh, label smoothing', async () => {
  const net = buildArch('conv:3x3p1,bn,tanh,avgpool:2,flatten,dropout:0.3,dense:6,bn,gelu,dense:4', { inputShape: [2, 6, 6], seed: 3 });
  await checkGradients(net, { batch: 5, labelSmoothing: 0.1, seed: 11, float64: false });
});

test('float32: residual block (ReLU, projection shortcut), grouped conv, 1x1 conv, sigmoid, global average pool', async () => {
  const net = buildArch('conv:4x3p1g2,sigmoid,res:6s2,conv:4x1,gelu,gap,flatten,dense:3', { inputShape: [2, 8, 8], seed: 4 });
  await checkGradients(net, { batch: 4, labelSmoothing: 0, seed: 12, float64: false });
});

test('per-example training gradients of cnn-small equal one-at-a-time gradients to 1e-5', async () => {
  const net = buildArch('cnn-small', { seed: 3 });
  const per = await TrainingSession.create(net, { threads: 1, perExample: true });
  const sum = await TrainingSession.create(net, { threads: 1 });
  const rng = new Rng(5);
  const n = 3;
  const x = { data: new Float32Array(n * 784).map(() => rng.next()), shape: [n, 1, 28, 28], dtype: 'float32' as const };
  const y = [1, 7, 3];
  const all = await per.step(x, y, new Rng(0));
  for (let i = 0; i < n; i++) {
    const one = await sum.step({ data: x.data.slice(i * 784, (i + 1) * 784), shape: [1, 1, 28, 28], dtype: 'float32' }, [y[i]!], new Rng(0));
    one.grads.forEach((g, k) => {
      const mine = all.grads[k]!.subarray(i * g.length, (i + 1) * g.length);
      let m = 0;
      for (let j = 0; j < g.length; j++) m = Math.max(m, Math.abs(mine[j]! - g[j]!));
      assert.ok(m < 1e-5, `param ${k} example ${i}: max |diff| ${m}`);
    });
  }
  await per.release();
  await sum.release();
});

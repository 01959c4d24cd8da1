import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { GraphBuilder, tensorAttr } from '../../src/onnx/builder.js';
import { ELEM, emptyGraph, writeModelBytes, type Graph } from '../../src/onnx/ir.js';
import { ATTR } from '../../src/onnx/proto.js';
import { gradientBlockers } from '../../src/autodiff/walker.js';
import { loadModel } from '../../src/runtime/model.js';
import type { Float32Tensor } from '../../src/core/tensor.js';
import { fails, lastJson, runCli } from '../helpers.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-guards-'));
const W = Array.from({ length: 12 }, (_, i) => ((i * 7) % 11) / 11 - 0.45);
const x: Float32Tensor = { data: Float32Array.from({ length: 8 }, (_, i) => ((i * 3) % 5) / 5), shape: [2, 4], dtype: 'float32' };

/** input [N,4] -> MatMul [4,3] -> `tail` -> output; returns the file. */
function model(name: string, tail: (b: GraphBuilder, g: Graph, z: string) => { out: string; elemType: number; shape: (string | number)[] }): string {
  const g = emptyGraph({ name, producer: 'test', inputs: [{ name: 'input', elemType: ELEM.FLOAT, shape: ['N', 4] }] });
  const b = new GraphBuilder(g);
  const z = b.node('MatMul', ['input', b.floats('w', W, [4, 3])], {}, 'mm', 'z');
  const t = tail(b, g, z);
  g.outputs.push({ name: t.out, elemType: t.elemType, shape: t.shape });
  const file = path.join(tmp, `${name}.onnx`);
  fs.writeFileSync(file, writeModelBytes(g));
  return file;
}

const argmaxOneHot = model('argmax-onehot', (b, _g, z) => {
  const idx = b.node('ArgMax', [z], { axis: 1, keepdims: 0 }, 'argmax');
  const out = b.node('OneHot', [idx, b.int64([3], []), b.floats('onoff', [0, 1], [2])], { axis: -1 }, 'onehot', 'output');
  return { out, elemType: ELEM.FLOAT, shape: ['N', 3] };
});

test('a model whose output goes through ArgMax and OneHot predicts, but its gradient is refused naming both ops', async () => {
  const m = await loadModel(argmaxOneHot);
  try {
    const p = await m.predict(x);
    for (let r = 0; r < 2; r++) assert.equal([...p.data.subarray(3 * r, 3 * r + 3)].reduce((a, v) => a + v, 0), 1, 'one-hot rows');
    await assert.rejects(m.lossAndGradient(x, [0, 1]), fails('BULWARK_E_UNSUPPORTED_OP', /only through ops without a gradient: ArgMax \(node argmax\), OneHot \(node onehot\)/));
  } finally {
    await m.dispose();
  }
});

test('gradientBlockers: the ops that cut the only path, none where a differentiable path exists', async () => {
  const { readModel } = await import('../../src/onnx/ir.js');
  assert.deepEqual(gradientBlockers(readModel(argmaxOneHot), 'input', 'output').map((n) => n.opType), ['ArgMax', 'OneHot']);
  // The same graph plus the scores themselves: a differentiable path exists.
  const both = model('argmax-plus-scores', (b, _g, z) => {
    const idx = b.node('ArgMax', [z], { axis: 1, keepdims: 0 }, 'argmax');
    const hot = b.node('OneHot', [idx, b.int64([3], []), b.floats('onoff', [0, 1], [2])], { axis: -1 }, 'onehot');
    return { out: b.node('Add', [hot, z], {}, 'sum', 'output'), elemType: ELEM.FLOAT, shape: ['N', 3] };
  });
  assert.deepEqual(gradientBlockers(readModel(both), 'input', 'output'), []);
  const m = await loadModel(both);
  try {
    const g = await m.lossAndGradient(x, [0, 1]);
    assert.ok(g.grad.data.some((v) => v !== 0));
  } finally {
    await m.dispose();
  }
});

test('bulwark info: a model ending in ArgMax/OneHot is not called differentiable', async () => {
  const r = await runCli('info', argmaxOneHot, '--json');
  assert.equal(r.code, 0, r.stderr);
  const info = lastJson(r.stdout);
  assert.equal(info['differentiable'], false);
  assert.deepEqual(info['gradientBlockedBy'], ['ArgMax (node argmax)', 'OneHot (node onehot)']);
  const text = await runCli('info', argmaxOneHot);
  assert.match(text.stdout, /not differentiable: the output depends on the input only through ArgMax/);
});

test('an If whose branches read a value on the path is refused, not differentiated as zero', async () => {
  const file = model('if-outer', (b, g, z) => {
    const branch = (op: string) => ({
      name: op,
      node: [{ opType: op, input: ['z'], output: [`${op}_out`], name: `${op}_node` }],
      output: [{ name: `${op}_out`, type: { tensorType: { elemType: ELEM.FLOAT, shape: { dim: [{ dimParam: 'N' }, { dimValue: 3 }] } } } }],
    });
    const cond = b.node('Constant', [], { value: tensorAttr({ dataType: ELEM.BOOL, dims: [], data: new Uint8Array([1]) }) }, 'cond');
    g.nodes.push({ name: 'if', opType: 'If', domain: '', inputs: [cond], outputs: ['output'], attrs: new Map([['then_branch', { type: ATTR.GRAPH, value: branch('Relu') }], ['else_branch', { type: ATTR.GRAPH, value: branch('Neg') }]]) });
    void z;
    return { out: 'output', elemType: ELEM.FLOAT, shape: ['N', 3] };
  });
  const m = await loadModel(file);
  try {
    const p = await m.predict(x);
    assert.ok(p.data.every((v) => v >= 0), 'the Relu branch ran');
    await assert.rejects(m.lossAndGradient(x, [0, 1]), fails('BULWARK_E_UNSUPPORTED_OP', /no gradient rule for If/));
  } finally {
    await m.dispose();
  }
});

test('a model that outputs class ids (int64) is refused at load with BULWARK_E_MODEL', async () => {
  const file = model('labels-out', (b, _g, z) => ({ out: b.node('ArgMax', [z], { axis: 1, keepdims: 0 }, 'argmax', 'output'), elemType: ELEM.INT64, shape: ['N'] }));
  await assert.rejects(loadModel(file), fails('BULWARK_E_MODEL', /"output" is int64, not class scores/));
});

test('NaN in a model\'s output, loss or gradient is refused, naming the example', async () => {
  // Log of the scores: NaN wherever a score is negative.
  const file = model('log-out', (b, _g, z) => ({ out: b.node('Log', [z], {}, 'log', 'output'), elemType: ELEM.FLOAT, shape: ['N', 3] }));
  const m = await loadModel(file);
  try {
    const pos: Float32Tensor = { data: new Float32Array(8).fill(0), shape: [2, 4], dtype: 'float32' };
    // All-zero input: scores 0, Log gives -Infinity.
    await assert.rejects(m.predict(pos), fails('BULWARK_E_NONFINITE', /output for example 0 holds -Infinity/));
    const neg: Float32Tensor = { data: Float32Array.from([1, 1, 1, 1, 0, 0, 0, 1]), shape: [2, 4], dtype: 'float32' };
    const scores = W.reduce((acc, w, i) => (acc[i % 3]! += w * [0, 0, 0, 1][Math.floor(i / 3)]!, acc), [0, 0, 0]);
    assert.ok(scores.some((v) => v < 0), 'the second example has a negative score');
    await assert.rejects(m.predict(neg), fails('BULWARK_E_NONFINITE', /for example [01] holds NaN/));
    await assert.rejects(m.lossAndGradient(neg, [0, 1]), fails('BULWARK_E_NONFINITE'));
  } finally {
    await m.dispose();
  }
});

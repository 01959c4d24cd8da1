import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BulwarkError } from '../../src/core/errors.js';
import { Adam, AdamW, SGD, learningRate, makeOptimizer, type Optimizer, type ParamRef } from '../../src/nn/optim.js';

// Reference trajectories from torch.optim (PyTorch 1.13, float64) on θ₀ = [1, −2, 0.5] with these three gradients.
const GRADS = [[0.5, 0.25, -1.0], [-0.1, 0.3, 0.0], [0.2, -0.4, 2.0]];

/** The trajectory from GRADS; with `scale`, each gradient is passed divided by it and multiplied back by step(_, scale). */
function trajectory(make: (params: ParamRef[]) => Optimizer, scale = 1): number[][] {
  const p = { name: 'p', data: Float32Array.from([1, -2, 0.5]) };
  const opt = make([p]);
  return GRADS.map((g) => {
    if (scale === 1) opt.step([Float32Array.from(g)]);
    else opt.step([Float32Array.from(g, (v) => v / scale)], scale);
    return Array.from(p.data);
  });
}

function assertClose(got: number[][], want: number[][], tol = 2e-6): void {
  got.forEach((row, i) => row.forEach((v, j) => assert.ok(Math.abs(v - want[i]![j]!) <= tol, `step ${i + 1}, element ${j}: ${v} vs ${want[i]![j]}`)));
}

test('SGD with momentum and L2 weight decay matches torch.optim.SGD', () => {
  assertClose(trajectory((ps) => new SGD(ps, { lr: 0.1, momentum: 0.9, weightDecay: 0.01 })), [
    [0.949, -2.023, 0.5995],
    [0.912151, -2.071677, 0.6884505],
    [0.858074749, -2.073414623, 0.5678174995],
  ]);
});

test('SGD: plain and Nesterov match torch.optim.SGD', () => {
  assertClose(trajectory((ps) => new SGD(ps, { lr: 0.1 })), [[0.95, -2.025, 0.6], [0.96, -2.055, 0.6], [0.94, -2.015, 0.4]]);
  assertClose(trajectory((ps) => new SGD(ps, { lr: 0.1, momentum: 0.9, nesterov: true })), [
    [0.905, -2.0475, 0.69],
    [0.8835, -2.12475, 0.771],
    [0.81715, -2.091275, 0.4639],
  ]);
});

test('Adam (with and without L2 decay) and AdamW match torch.optim', () => {
  assertClose(trajectory((ps) => new Adam(ps, { lr: 0.01 })), [
    [0.9900000002, -2.0099999996, 0.5099999999],
    [0.98488973957, -2.020006130383, 0.516700582347],
    [0.978878140284, -2.02083490519, 0.513300237669],
  ]);
  assertClose(trajectory((ps) => new Adam(ps, { lr: 0.01, weightDecay: 0.1 })), [
    [0.990000000167, -2.009999998, 0.509999999895],
    [0.983311835567, -2.019662490281, 0.516291829423],
    [0.97583704667, -2.014732564482, 0.512539801157],
  ]);
  assertClose(trajectory((ps) => new AdamW(ps, { lr: 0.01, weightDecay: 0.1 })), [
    [0.9890000002, -2.0079999996, 0.5094999999],
    [0.98290073957, -2.015998130384, 0.515691082347],
    [0.975906239544, -2.01481090706, 0.511775046587],
  ]);
});

test('a gradient scale passed to step (the 1 / batch size of a summed loss) equals scaling the gradients', () => {
  const makers: [string, (ps: ParamRef[]) => Optimizer][] = [
    ['sgd', (ps) => new SGD(ps, { lr: 0.1 })],
    ['sgd momentum + decay', (ps) => new SGD(ps, { lr: 0.1, momentum: 0.9, weightDecay: 0.01 })],
    ['sgd nesterov', (ps) => new SGD(ps, { lr: 0.1, momentum: 0.9, nesterov: true })],
    ['adam + decay', (ps) => new Adam(ps, { lr: 0.01, weightDecay: 0.1 })],
    ['adamw', (ps) => new AdamW(ps, { lr: 0.01, weightDecay: 0.1 })],
  ];
  for (const [name, make] of makers) {
    // scale 0.25: the gradients passed are 4x the reference ones; the trajectory must be the reference one
    const want = trajectory(make);
    const got = trajectory(make, 0.25);
    got.forEach((row, i) => row.forEach((v, j) => assert.ok(Math.abs(v - want[i]![j]!) <= 1e-6, `${name}: step ${i + 1}, element ${j}: ${v} vs ${want[i]![j]}`)));
  }
  const opt = new SGD([{ name: 'w', data: new Float32Array(1) }], { lr: 0.1 });
  for (const bad of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
    assert.throws(() => opt.step([new Float32Array(1)], bad), (e: unknown) => e instanceof BulwarkError && e.code === 'BULWARK_E_ARG' && /scale/.test(e.message));
  }
});

test('Adam first step by hand: θ − lr·g/(|g| + ε) (bias corrections cancel)', () => {
  const p = { name: 'w', data: Float32Array.from([0.25]) };
  const opt = new Adam([p], { lr: 0.1, eps: 0 });
  opt.step([Float32Array.from([-3])]);
  assert.ok(Math.abs(p.data[0]! - 0.35) < 1e-7);
  assert.equal(opt.steps, 1);
});

test('makeOptimizer: names, defaults, and bad options', () => {
  const ps = [{ name: 'w', data: new Float32Array(2) }];
  assert.ok(makeOptimizer('adamw', ps, { lr: 1 }) instanceof AdamW);
  assert.ok(makeOptimizer('sgd', ps, { lr: 1 }) instanceof SGD);
  const code = (f: () => unknown) => assert.throws(f, (e: unknown) => e instanceof BulwarkError && e.code === 'BULWARK_E_ARG');
  code(() => makeOptimizer('rmsprop', ps, { lr: 1 }));
  code(() => new SGD(ps, { lr: 0 }));
  code(() => new SGD(ps, { lr: 0.1, nesterov: true }));
  code(() => new Adam(ps, { lr: 0.1, betas: [0.9, 1] }));
  code(() => new Adam(ps, { lr: 0.1, weightDecay: -1 }));
});

test('schedules match torch.optim.lr_scheduler (CosineAnnealingLR, OneCycleLR) and the step and warmup rules', () => {
  const cosine = [1.0, 0.961939766256, 0.853553390593, 0.691341716183, 0.5, 0.308658283817, 0.146446609407, 0.038060233744];
  cosine.forEach((v, t) => assert.ok(Math.abs(learningRate({ kind: 'cosine' }, 1, t, 8) - v) < 1e-9, `cosine t=${t}`));
  const onecycle = [0.04, 0.52, 1.0, 0.950484632013, 0.81174565395, 0.611262021936, 0.388741978064, 0.18825834605, 0.049519367987, 4e-6];
  onecycle.forEach((v, t) => assert.ok(Math.abs(learningRate({ kind: 'onecycle' }, 1, t, 10) - v) < 1e-9, `onecycle t=${t}`));
  assert.deepEqual([0, 9, 10, 25].map((t) => learningRate({ kind: 'step', stepSize: 10, gamma: 0.5 }, 0.2, t, 30)), [0.2, 0.2, 0.1, 0.05]);
  assert.equal(learningRate({ kind: 'constant' }, 3e-4, 123, 200), 3e-4);
  // Warmup 4 steps: base·1/4, 2/4, 3/4, 4/4, then the cosine runs over the remaining 8 steps.
  const warm = [0, 1, 2, 3, 4, 8].map((t) => learningRate({ kind: 'cosine', warmupSteps: 4 }, 1, t, 12));
  assert.deepEqual(warm.slice(0, 5), [0.25, 0.5, 0.75, 1, 1]);
  assert.ok(Math.abs(warm[5]! - 0.5) < 1e-12);
});

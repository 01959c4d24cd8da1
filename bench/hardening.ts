/**
 * Hardening benchmark: adversarial training of an MNIST CNN at L∞ eps 0.3, then clean accuracy, PGD-40 (3 restarts)
 * and the evaluation ensemble (APGD-CE, APGD-T, FAB-T, Square: runEnsemble, as `bulwark evaluate`) on the first
 * test images, and the training time. Not part of the test suite (tens of minutes to hours on 2 cores).
 * References (REFERENCES.md, AutoAttack README): Madry PGD-AT 98.53 clean / 89.62 reported / 88.50 AutoAttack;
 * Wong et al. 2020 FGSM-RS 98.50 clean / 88.77 PGD-50-10; TRADES 99.48 / 92.76 AutoAttack.
 *
 *   npx tsc -p . && node dist/bench/hardening.js
 *
 * Settings through the environment: BENCH_ADV (pgd | trades | fgsm-rs, default fgsm-rs), BENCH_ARCH (default
 * cnn-small), BENCH_TRAIN (training examples, default 60000), BENCH_EPOCHS (default 10), BENCH_STEPS (inner PGD
 * steps, default 40; fgsm-rs always 1), BENCH_STEP_SIZE (inner step; default 0.01, fgsm-rs 0.375 = 1.25·eps),
 * BENCH_BATCH (default 100), BENCH_LR (Adam, one-cycle; default 5e-3 as Wong et al.), BENCH_RAMP (eps warm-up
 * epochs, default 2), BENCH_TEST (test examples, default 1000), BENCH_SUITE (quick | standard | thorough | none,
 * default standard), BENCH_THREADS (default 1), BENCH_OUT (model path; default /tmp/bulwark-hardening.onnx), BENCH_INIT
 * (an ONNX model of the same architecture to start from, e.g. to fine-tune an FGSM-RS model with PGD-AT).
 */
import { performance } from 'node:perf_hooks';
import * as os from 'node:os';
import { loadData } from '../src/data/spec.js';
import { buildArch } from '../src/nn/zoo.js';
import { pgd } from '../src/evasion/whitebox/pgd.js';
import { runEnsemble } from '../src/evasion/evaluate/ensemble.js';
import type { Budget } from '../src/evasion/evaluate/suites.js';
import { loadModel } from '../src/runtime/model.js';
import { robustTrain, type AdvMethod } from '../src/evasion/defense/adversarial.js';
import { readModel } from '../src/onnx/ir.js';

const env = (k: string, d: number) => Number(process.env[k] ?? d);
const adv = (process.env['BENCH_ADV'] ?? 'fgsm-rs') as AdvMethod;
const arch = process.env['BENCH_ARCH'] ?? 'cnn-small';
const nTrain = env('BENCH_TRAIN', 60000);
const epochs = env('BENCH_EPOCHS', 10);
const steps = adv === 'fgsm-rs' ? 1 : env('BENCH_STEPS', 40);
const stepSize = env('BENCH_STEP_SIZE', adv === 'fgsm-rs' ? 0.375 : 0.01);
const batchSize = env('BENCH_BATCH', 100);
const lr = env('BENCH_LR', 5e-3);
const nTest = env('BENCH_TEST', 1000);
const ramp = env('BENCH_RAMP', 2);
const threads = env('BENCH_THREADS', 1);
const suite = process.env['BENCH_SUITE'] ?? 'standard';
const outPath = process.env['BENCH_OUT'] ?? '/tmp/bulwark-hardening.onnx';
const eps = 0.3;

const log = (o: unknown) => console.log(JSON.stringify(o));
const data = await loadData(`mnist:train[0:${nTrain}]`);
const val = await loadData('mnist:test[9000:10000]');
const test = await loadData(`mnist:test[0:${nTest}]`);
const net = buildArch(arch, { seed: 0 });
const init = process.env['BENCH_INIT'];
if (init) {
  const g = readModel(init);
  for (const p of net.params()) {
    const t = g.initializers.get(p.name);
    if (!t || t.data.length !== p.data.length) throw new Error(`BENCH_INIT ${init} has no weight ${p.name} of ${p.data.length} values`);
    p.data.set(t.data as Float32Array);
  }
}
const t0 = performance.now();
const r = await robustTrain(net, data, {
  epochs,
  batchSize,
  lr,
  optimizer: 'adam',
  schedule: { kind: 'onecycle' },
  adv,
  eps,
  advSteps: steps,
  advStepSize: stepSize,
  epsRamp: ramp,
  validation: val,
  robustEval: { n: 200, steps: 20 },
  threads,
  progress: false,
  onProgress: (e) => {
    if (e.kind === 'epoch') log({ ...e.record, elapsed: (performance.now() - t0) / 1000, load: os.loadavg()[0] });
  },
});
const trainSeconds = (performance.now() - t0) / 1000;
net.saveOnnx(outPath);
log({ saved: outPath, trainSeconds, keptEpoch: r.keptEpoch, stopped: r.stopped ?? null });

const model = await loadModel(outPath, { threads });
const t1 = performance.now();
const attack = await pgd(model, test.x, test.y!, { eps, norm: 'inf', steps: 40, stepSize: 0.01, restarts: 3, seed: 1 });
log({ pgd40x3: attack.summary.robustAccuracy, clean: attack.summary.cleanAccuracy, seconds: (performance.now() - t1) / 1000 });
let ensemble: Record<string, unknown> | null = null;
if (suite !== 'none') {
  const t2 = performance.now();
  const e = await runEnsemble(model, test.x, test.y!, {
    eps,
    norm: 'inf',
    suite: suite as Budget,
    seed: 0,
    onProgress: (p) => log({ ensemble: p, elapsed: (performance.now() - t2) / 1000 }),
  });
  ensemble = { suite, robustAccuracy: e.robustAccuracy, members: e.members.map((m) => ({ name: m.name, status: m.status, attacked: m.attacked, broken: m.broken, robustAccuracyAfter: m.robustAccuracyAfter, seconds: m.seconds })), seconds: (performance.now() - t2) / 1000 };
}
log({
  bench: 'hardening',
  method: adv,
  init: init ?? null,
  arch,
  eps,
  trainExamples: nTrain,
  epochs,
  batchSize,
  lr,
  innerSteps: steps,
  innerStepSize: stepSize,
  epsRamp: ramp,
  keptEpoch: r.keptEpoch,
  stopped: r.stopped ?? null,
  trainSeconds,
  threads,
  cpus: os.cpus().length,
  testExamples: nTest,
  cleanAccuracy: attack.summary.cleanAccuracy,
  pgd40x3RobustAccuracy: attack.summary.robustAccuracy,
  ensemble,
  date: new Date().toISOString(),
  reference: 'Madry et al. PGD-AT 98.53 clean / 88.50 AutoAttack; Wong et al. FGSM-RS 98.50 / 88.77 PGD-50-10',
});
await model.dispose();

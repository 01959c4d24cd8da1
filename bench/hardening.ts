/**
 * Hardening benchmark: PGD adversarial training (Madry et al. 2018) of cnn-small on MNIST at L∞ eps 0.3, then clean
 * accuracy and PGD robust accuracy (40 steps of 0.01, restarts) on the test set, and the training time.
 * Reference (REFERENCES.md, AutoAttack README): Madry PGD-AT 98.53 clean / 89.62 reported / 88.50 AutoAttack.
 * Full run: `npx tsc -p . && node dist/bench/hardening.js` (hours on 2 cores). Smaller runs through the environment:
 * BENCH_TRAIN (training examples, default 60000), BENCH_EPOCHS (default 10), BENCH_STEPS (inner PGD steps, default
 * 40), BENCH_TEST (test examples, default 1000), BENCH_RAMP (eps warm-up epochs, default 2), BENCH_ADV (pgd | trades |
 * fgsm-rs, default pgd), BENCH_STEP_SIZE (inner step, default 0.01), BENCH_THREADS.
 */
import { performance } from 'node:perf_hooks';
import { loadData } from '../src/data/spec.js';
import { buildArch } from '../src/nn/zoo.js';
import { pgd } from '../src/evasion/whitebox/pgd.js';
import { NetworkModel } from '../src/evasion/defense/model.js';
import { robustTrain, type AdvMethod } from '../src/evasion/defense/adversarial.js';

const env = (k: string, d: number) => Number(process.env[k] ?? d);
const nTrain = env('BENCH_TRAIN', 60000);
const epochs = env('BENCH_EPOCHS', 10);
const steps = env('BENCH_STEPS', 40);
const nTest = env('BENCH_TEST', 1000);
const ramp = env('BENCH_RAMP', 2);
const threads = env('BENCH_THREADS', 2);
const adv = (process.env['BENCH_ADV'] ?? 'pgd') as AdvMethod;
const eps = 0.3;

const data = await loadData(`mnist:train[0:${nTrain}]`);
const val = await loadData('mnist:test[9000:10000]');
const test = await loadData(`mnist:test[0:${nTest}]`);
const net = buildArch('cnn-small', { seed: 0 });
const t0 = performance.now();
const r = await robustTrain(net, data, {
  epochs,
  batchSize: 50,
  lr: 1e-3,
  adv,
  eps,
  advSteps: adv === 'fgsm-rs' ? 1 : steps,
  ...(adv === 'fgsm-rs' ? {} : { advStepSize: env('BENCH_STEP_SIZE', 0.01) }),
  epsRamp: ramp,
  validation: val,
  robustEval: { n: 200, steps: 20 },
  threads,
  onProgress: (e) => {
    if (e.kind === 'epoch') console.log(JSON.stringify(e.record));
  },
});
const trainSeconds = (performance.now() - t0) / 1000;
const model = new NetworkModel(net, { threads });
const attack = await pgd(model, test.x, test.y!, { eps, norm: 'inf', steps: 40, stepSize: 0.01, restarts: 3, seed: 1 });
const out = {
  bench: 'hardening',
  method: adv,
  arch: 'cnn-small',
  eps,
  trainExamples: nTrain,
  epochs,
  innerSteps: steps,
  keptEpoch: r.keptEpoch,
  trainSeconds,
  testExamples: nTest,
  cleanAccuracy: attack.summary.cleanAccuracy,
  pgd40x3RobustAccuracy: attack.summary.robustAccuracy,
  reference: 'Madry et al. PGD-AT on MNIST: 98.53 clean / 89.62 PGD (AutoAttack README)',
};
console.log(JSON.stringify(out, null, 2));
await model.dispose();

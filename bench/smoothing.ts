/**
 * Randomized smoothing on MNIST (Cohen et al. 2019, arXiv:1902.02918): for each sigma, a base classifier (cnn-small)
 * trained with Gaussian noise of that sigma, then CERTIFY on the first test images and the certified accuracy at
 * L2 radii 0 to 1.5 in steps of 0.25 (abstentions and wrong classes count as failures). Not part of the test suite.
 *
 *   npx tsc -p . && node dist/bench/smoothing.js
 *
 * Environment: BENCH_SIGMAS (default 0.25,0.5), BENCH_EPOCHS (noise training epochs, default 3), BENCH_TRAIN
 * (training examples, default 60000), BENCH_TEST (certified examples, default 500), BENCH_N (default 10000),
 * BENCH_N0 (default 100), BENCH_ALPHA (default 0.001), BENCH_THREADS (default 1), BENCH_DIR (models; default /tmp).
 * Prints one JSON line per sigma and a markdown table at the end.
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { loadData } from '../src/data/spec.js';
import { buildArch } from '../src/nn/zoo.js';
import { robustTrain } from '../src/evasion/defense/adversarial.js';
import { certifiedAccuracy, smoothCertify } from '../src/evasion/defense/smoothing.js';
import { loadModel } from '../src/runtime/model.js';

const env = (k: string, d: number) => Number(process.env[k] ?? d);
const sigmas = (process.env['BENCH_SIGMAS'] ?? '0.25,0.5').split(',').map(Number);
const epochs = env('BENCH_EPOCHS', 3);
const nTrain = env('BENCH_TRAIN', 60000);
const nTest = env('BENCH_TEST', 500);
const n = env('BENCH_N', 10000);
const n0 = env('BENCH_N0', 100);
const alpha = env('BENCH_ALPHA', 0.001);
const threads = env('BENCH_THREADS', 1);
const dir = process.env['BENCH_DIR'] ?? os.tmpdir();
const radii = [0, 0.25, 0.5, 0.75, 1, 1.25, 1.5];

const train = await loadData(`mnist:train[0:${nTrain}]`);
const test = await loadData(`mnist:test[0:${nTest}]`);
const rows: { sigma: number; curve: { radius: number; accuracy: number }[]; abstentions: number; cleanAccuracy: number; trainSeconds: number; certifySeconds: number }[] = [];
for (const sigma of sigmas) {
  const net = buildArch('cnn-small', { seed: 0 });
  const t0 = performance.now();
  await robustTrain(net, train, { epochs, batchSize: 128, lr: 3e-3, optimizer: 'adam', schedule: { kind: 'onecycle' }, noiseSigma: sigma, threads, progress: false });
  const trainSeconds = (performance.now() - t0) / 1000;
  const file = path.join(dir, `bulwark-smooth-${sigma}.onnx`);
  net.saveOnnx(file);
  const model = await loadModel(file, { threads });
  const pred = (await model.predict(test.x)).data;
  let clean = 0;
  for (let i = 0; i < nTest; i++) {
    let best = 0;
    for (let j = 1; j < 10; j++) if (pred[i * 10 + j]! > pred[i * 10 + best]!) best = j;
    if (best === test.y![i]) clean++;
  }
  const res = await smoothCertify(model, test.x, { sigma, n, n0, alpha, batchSize: 1000, seed: 0 });
  const curve = certifiedAccuracy(res, test.y!, radii);
  const row = { sigma, curve, abstentions: res.abstentions, cleanAccuracy: clean / nTest, trainSeconds, certifySeconds: res.seconds };
  rows.push(row);
  console.log(JSON.stringify({ bench: 'smoothing', ...row, n, n0, alpha, epochs, nTrain, nTest, threads, load: os.loadavg()[0], date: new Date().toISOString() }));
  await model.dispose();
}
const pct = (v: number) => (100 * v).toFixed(1);
console.log(`\n| sigma | base clean acc | ${radii.map((r) => `r = ${r}`).join(' | ')} | abstain |`);
console.log(`|---|---|${radii.map(() => '---').join('|')}|---|`);
for (const r of rows) console.log(`| ${r.sigma} | ${pct(r.cleanAccuracy)} | ${r.curve.map((c) => pct(c.accuracy)).join(' | ')} | ${r.abstentions} |`);

/**
 * DP-SGD on full MNIST at epsilon ~1.2 and ~3 (delta 1e-5) against non-private training of the same network with the
 * same optimizer and batch size: test accuracy and seconds per epoch. Not part of the test suite (minutes of CPU).
 *
 *   npx tsc -p . && node dist/bench/dp.js [--arch A] [--epochs N] [--batch-size B] [--lr X] [--threads T] [--out F.json]
 *
 * Reference figures (shared/REFERENCES.md): Opacus README, MNIST CNN: eps 1.16: 94.63%, eps 2.91: 96.78%, no DP
 * 98.94%; TF Privacy tutorial: eps 1.19: 95.0%, eps 3.01: 96.6%; Opacus on CPU runs DP-SGD ~1.6x slower than
 * non-private training.
 */
import * as fs from 'node:fs';
import { parseArgs } from 'node:util';
import { loadData } from '../src/data/index.js';
import { evaluate, train } from '../src/nn/train.js';
import { buildArch } from '../src/nn/zoo.js';
import { trainDpSgd } from '../src/privacy/dpsgd.js';

const { values } = parseArgs({
  options: {
    arch: { type: 'string', default: 'flatten,dense:256,tanh,dense:10' },
    epochs: { type: 'string', default: '15' },
    'batch-size': { type: 'string', default: '256' },
    lr: { type: 'string', default: '0.1' },
    'max-grad-norm': { type: 'string', default: '1' },
    targets: { type: 'string', default: '1.2,3' },
    threads: { type: 'string', default: '1' },
    out: { type: 'string' },
  },
});
const arch = values.arch!;
const epochs = Number(values.epochs);
const batchSize = Number(values['batch-size']);
const lr = Number(values.lr);
const maxGradNorm = Number(values['max-grad-norm']);
const threads = Number(values.threads);
const targets = values.targets!.split(',').map(Number);

const data = await loadData('mnist:train');
const test = await loadData('mnist:test');
const rows: Record<string, unknown>[] = [];

const base = buildArch(arch, { seed: 0 });
const nonPrivate = await train(base, data, { epochs, batchSize, lr, optimizer: 'sgd', momentum: 0.9, schedule: { kind: 'constant' }, seed: 0, threads, progress: false });
const baseAcc = (await evaluate(base, test)).accuracy;
const baseEpoch = nonPrivate.history.reduce((a, h) => a + h.seconds, 0) / epochs;
rows.push({ run: 'non-private', epsilon: null, accuracy: baseAcc, secondsPerEpoch: baseEpoch });
process.stdout.write(`non-private ${arch}: ${(100 * baseAcc).toFixed(2)}%, ${baseEpoch.toFixed(1)} s/epoch\n`);

for (const target of targets) {
  const net = buildArch(arch, { seed: 0 });
  const r = await trainDpSgd(net, data, { epochs, batchSize, lr, momentum: 0.9, maxGradNorm, targetEpsilon: target, delta: 1e-5, threads, progress: false });
  const acc = (await evaluate(net, test)).accuracy;
  const perEpoch = r.history.reduce((a, h) => a + h.seconds, 0) / epochs;
  rows.push({ run: 'dp-sgd', targetEpsilon: target, epsilon: r.privacy.epsilon, noiseMultiplier: r.privacy.noiseMultiplier, sampleRate: r.privacy.sampleRate, steps: r.privacy.steps, perExample: r.privacy.perExample, accuracy: acc, secondsPerEpoch: perEpoch, slowdown: perEpoch / baseEpoch });
  process.stdout.write(`DP-SGD eps ${r.privacy.epsilon.toFixed(3)} (sigma ${r.privacy.noiseMultiplier.toFixed(3)}, ${r.privacy.steps} steps, ${r.privacy.perExample}): ${(100 * acc).toFixed(2)}%, ${perEpoch.toFixed(1)} s/epoch (${(perEpoch / baseEpoch).toFixed(2)}x)\n`);
}
const report = { arch, epochs, batchSize, lr, maxGradNorm, delta: 1e-5, threads, node: process.version, date: new Date().toISOString(), rows };
if (values.out) fs.writeFileSync(values.out, JSON.stringify(report, null, 2) + '\n');
process.stdout.write(JSON.stringify(report) + '\n');

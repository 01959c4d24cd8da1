import { checkTrainingOutputs, writeTrainingOutputs } from './train-record.js';
import { BulwarkError } from '../core/errors.js';
import { parseDataSpec } from '../data/index.js';
import { ARCH_SPEC_GRAMMAR, ARCHITECTURES, buildArch } from '../nn/zoo.js';
import { resolveTrainOptions, train, type EpochRecord, type TrainEvent } from '../nn/train.js';
import type { OptimizerName, Schedule } from '../nn/optim.js';
import type { TrainResult } from '../nn/train.js';
import type { RobustTrainResult } from '../evasion/defense/adversarial.js';
import { checkParallelism, numberFlag, parseFlags, printJson, required, threadsFlag, workersFlag } from './args.js';
import { loadDataFlag } from './common.js';
import { checkEps } from '../evasion/evaluate/validate.js';

const HELP = `Usage: bulwark train --arch <name|spec> --data SPEC --out M.onnx [options]

Trains a network on a labelled dataset and writes the inference model (ONNX, opset 17) atomically, plus
M.onnx.train.json with the training record (arch, data, hyper-parameters, per-epoch metrics, seed, timings).
The same seed gives the same weights bit for bit.

Options:
      --arch A              built-in name or spec (below)
      --data SPEC           training data, e.g. mnist:train, mnist:train[0:3000], data.npz
  -o, --out M.onnx          where to write the model
      --epochs N            passes over the data (default 3)
      --batch-size B        examples per step (default 64)
      --lr X                base (peak) learning rate (default 0.003)
      --optimizer O         sgd | adam | adamw (default adam)
      --momentum M          SGD momentum (default 0.9)
      --nesterov            SGD with Nesterov momentum
      --weight-decay W      L2 penalty (sgd, adam) or decoupled decay (adamw) (default 0; adamw 0.01)
      --schedule S          onecycle | cosine | constant | step[:E[:G]] (x G every E epochs; default 1, 0.1)
                            (default onecycle: warm up to --lr over 30% of the steps, anneal to ~0)
      --warmup N            linear learning-rate warmup over the first N steps (default 0)
      --label-smoothing E   cross-entropy label smoothing in [0, 1) (default 0)
      --seed S              seed of the weights, the example order and dropout (default 0)
      --val SPEC            evaluate on this data after every epoch, e.g. mnist:test
      --threads T           onnxruntime intra-op threads (default: onnxruntime's choice)
      --workers W           worker threads that share every batch (data parallelism; default 1; networks with
                            BatchNorm train on one); --threads and --workers are each at most the number
                            of cores, their product at most twice that
      --save-npz W.npz      also write the weights as .npz (PyTorch names and layouts)
      --json                print one JSON object (the training record)

Differential privacy (DP-SGD, Abadi et al. 2016; see docs/PRIVACY.md):
      --dp                  train with DP-SGD: Poisson-sampled batches of expected size --batch-size, per-example
                            clipping, Gaussian noise from node:crypto; the record gains a "privacy" section
      --target-epsilon E    calibrate the noise so the run ends at epsilon E (or give --noise-multiplier)
      --noise-multiplier S  noise std / max grad norm
      --delta D             delta (default 1e-5)
      --max-grad-norm C     per-example clipping bound (default 1)
      --accountant A        rdp (default) | prv
      --per-example P       auto (default) | ghost | graph | reference: how per-example gradients are computed
                            (with --dp the defaults become: sgd, lr 0.1, momentum 0.9, constant schedule, batch 256;
                            BatchNorm layers are refused)

Adversarial training (see docs/HARDENING.md); the record gains clean and robust accuracy per epoch:
      --adv M               pgd (Madry et al. 2018) | trades (Zhang et al. 2019) | fgsm-rs (Wong et al. 2020) | ibp
      --eps E               L-inf radius of the training attack (MNIST: 0.3)
      --adv-steps N         inner steps (default 10; fgsm-rs: 1)
      --adv-step-size A     inner step size (default 2.5*eps/steps; fgsm-rs 1.25*eps)
      --trades-beta B       TRADES weight of the KL term (default 6)
      --clean-ratio R       weight of the clean loss in R*CE(x) + (1-R)*CE(x_adv) (default 0)
      --eps-ramp N          grow eps linearly from 0 over the first N epochs (default 0)
      --patience N          stop after N epochs without better robust validation accuracy (needs --val)
      --noise-sigma S       add N(0, S^2) noise to training inputs (randomized smoothing's base classifier)

IBP training (Gowal et al. 2019): minimize k*CE(z) + (1-k)*CE(worst-case logits of interval bounds over the eps-box);
the record's hardening block holds the schedule, each epoch its eps, kappa, robust loss and (with --val) the
IBP-verified validation accuracy. Networks of conv, dense, relu, max/avg pooling and flatten only:
      --adv ibp             (or --ibp) IBP training; --eps E is the final training radius (Gowal: 0.2 for MNIST eps 0.1)
      --ibp-warmup N        epochs (fractions allowed) of clean training before the ramp (default epochs*2/60)
      --ibp-ramp N          epochs over which eps grows from 0 and kappa falls from 1 (default epochs*10/60)
      --ibp-kappa K         final weight of the clean loss (default 0.5)

Built-in architectures:
${Object.entries(ARCHITECTURES).map(([k, a]) => `  ${k.padEnd(12)} ${a.summary}`).join('\n')}

${ARCH_SPEC_GRAMMAR}
`;

const OPTIONS = {
  arch: { type: 'string' },
  data: { type: 'string' },
  out: { type: 'string', short: 'o' },
  epochs: { type: 'string' },
  'batch-size': { type: 'string' },
  lr: { type: 'string' },
  optimizer: { type: 'string' },
  momentum: { type: 'string' },
  nesterov: { type: 'boolean' },
  'weight-decay': { type: 'string' },
  schedule: { type: 'string' },
  warmup: { type: 'string' },
  'label-smoothing': { type: 'string' },
  seed: { type: 'string' },
  val: { type: 'string' },
  threads: { type: 'string' },
  workers: { type: 'string' },
  'save-npz': { type: 'string' },
  json: { type: 'boolean' },
  dp: { type: 'boolean' },
  'target-epsilon': { type: 'string' },
  'noise-multiplier': { type: 'string' },
  delta: { type: 'string' },
  'max-grad-norm': { type: 'string' },
  accountant: { type: 'string' },
  'per-example': { type: 'string' },
  adv: { type: 'string' },
  eps: { type: 'string' },
  'adv-steps': { type: 'string' },
  'adv-step-size': { type: 'string' },
  'trades-beta': { type: 'string' },
  'clean-ratio': { type: 'string' },
  'eps-ramp': { type: 'string' },
  patience: { type: 'string' },
  'noise-sigma': { type: 'string' },
  ibp: { type: 'boolean' },
  'ibp-warmup': { type: 'string' },
  'ibp-ramp': { type: 'string' },
  'ibp-kappa': { type: 'string' },
} as const;

/** Parses --schedule; step sizes are given in epochs and converted to steps. */
function parseSchedule(text: string, warmupSteps: number, stepsPerEpoch: number): Schedule {
  const warm = warmupSteps > 0 ? { warmupSteps } : {};
  const m = /^step(?::(\d+)(?::([0-9.eE-]+))?)?$/.exec(text);
  if (m) {
    const epochs = m[1] === undefined ? 1 : Number(m[1]);
    const gamma = m[2] === undefined ? 0.1 : Number(m[2]);
    if (epochs < 1 || !(gamma > 0 && gamma <= 1)) throw new BulwarkError('BULWARK_E_ARG', `--schedule ${text}: the step size must be >= 1 epoch and the factor in (0, 1]`);
    return { kind: 'step', stepSize: epochs * stepsPerEpoch, gamma, ...warm };
  }
  if (text === 'constant' || text === 'cosine' || text === 'onecycle') return { kind: text, ...warm };
  throw new BulwarkError('BULWARK_E_ARG', `--schedule must be constant, cosine, onecycle or step[:E[:G]], got ${JSON.stringify(text)}`);
}

/** `bulwark train`: see HELP. */
export async function run(argv: string[]): Promise<number> {
  const p = parseFlags(argv, OPTIONS, HELP);
  if (!p) return 0;
  const v = p.values;
  const arch = required(v, 'arch', HELP);
  const dataSpec = required(v, 'data', HELP);
  const out = required(v, 'out', HELP);
  const json = v.json === true;
  parseDataSpec(dataSpec);
  if (typeof v.val === 'string') parseDataSpec(v.val);
  checkTrainingOutputs(out, v['save-npz'], dataSpec, v.val);
  if (v.dp === true) return (await import('./dp.js')).runDpTrain(v, { arch, dataSpec, out, json });
  for (const f of ['target-epsilon', 'noise-multiplier', 'delta', 'max-grad-norm', 'accountant', 'per-example']) {
    if (v[f] !== undefined) throw new BulwarkError('BULWARK_E_USAGE', `--${f} needs --dp`);
  }
  const optimizer = (typeof v.optimizer === 'string' ? v.optimizer : 'adam') as OptimizerName;
  if (!['sgd', 'adam', 'adamw'].includes(optimizer)) throw new BulwarkError('BULWARK_E_ARG', `--optimizer must be sgd, adam or adamw, got ${JSON.stringify(optimizer)}`);
  const lr = numberFlag(v, 'lr', 3e-3);
  if (!(lr > 0)) throw new BulwarkError('BULWARK_E_ARG', `--lr must be > 0, got ${v.lr}`);
  const labelSmoothing = numberFlag(v, 'label-smoothing', 0, 0, 1);
  if (!(labelSmoothing < 1)) throw new BulwarkError('BULWARK_E_ARG', `--label-smoothing must be in [0, 1), got ${v['label-smoothing']}`);
  const seed = numberFlag(v, 'seed', 0, 0, 2 ** 32 - 1, true);
  const weightDecay = v['weight-decay'] === undefined ? undefined : numberFlag(v, 'weight-decay', 0, 0);
  const threads = threadsFlag(v);
  const workers = workersFlag(v);
  checkParallelism(threads, workers);
  const warmup = numberFlag(v, 'warmup', 0, 0, Infinity, true);
  const scheduleText = typeof v.schedule === 'string' ? v.schedule : 'onecycle';
  const base = {
    epochs: numberFlag(v, 'epochs', 3, 1, 1e6, true),
    batchSize: numberFlag(v, 'batch-size', 64, 1, 1 << 20, true),
    lr,
    optimizer,
    momentum: numberFlag(v, 'momentum', 0.9, 0, 1),
    nesterov: v.nesterov === true,
    labelSmoothing,
    seed,
    progress: !json,
    ...(weightDecay === undefined ? {} : { weightDecay }),
    ...(threads === undefined ? {} : { threads }),
    ...(workers === undefined ? {} : { workers }),
  };
  resolveTrainOptions(base);
  parseSchedule(scheduleText, warmup, 1);

  const hardening = hardeningFlags(v);
  const t0 = performance.now();
  const data = await loadDataFlag(dataSpec);
  const validation = typeof v.val === 'string' ? await loadDataFlag(v.val, '--val') : undefined;
  const net = buildArch(arch, { inputShape: data.x.shape.slice(1), numClasses: data.numClasses ?? 10, seed });
  const stepsPerEpoch = Math.ceil(data.x.shape[0]! / base.batchSize);
  const schedule = parseSchedule(scheduleText, warmup, stepsPerEpoch);
  const loadSeconds = (performance.now() - t0) / 1000;
  if (!json) {
    process.stderr.write(`training ${arch} (${net.parameterCount()} parameters) on ${data.name} (${data.x.shape[0]} examples), ${base.epochs} epochs of ${stepsPerEpoch} steps\n`);
  }
  const onProgress = (e: TrainEvent) => {
    if (e.kind === 'epoch' && !json) process.stderr.write(epochLine(e.record) + '\n');
  };
  const result: TrainResult | RobustTrainResult = hardening
    ? await (await import('../evasion/defense/adversarial.js')).robustTrain(net, data, { ...base, schedule, ...(validation ? { validation } : {}), onProgress, ...hardening })
    : await train(net, data, { ...base, schedule, ...(validation ? { validation } : {}), onProgress });
  const record = writeTrainingOutputs({
    out, net, arch, dataSpec, data, valSpec: v.val, validation, seed, threads, loadSeconds, t0,
    hyperparameters: {
      epochs: base.epochs,
      batchSize: base.batchSize,
      lr: base.lr,
      optimizer,
      ...(optimizer === 'sgd' ? { momentum: base.momentum, nesterov: base.nesterov } : {}),
      weightDecay: weightDecay ?? (optimizer === 'adamw' ? 0.01 : 0),
      schedule,
      labelSmoothing: base.labelSmoothing,
    },
    history: result.history, seconds: result.seconds, steps: result.steps,
    savePath: typeof v['save-npz'] === 'string' ? v['save-npz'] : undefined,
    ...(hardening ? { extra: { hardening: { ...(result as RobustTrainResult).settings, keptEpoch: (result as RobustTrainResult).keptEpoch, stopped: (result as RobustTrainResult).stopped ?? null } } } : {}),
  });
  if (json) printJson(record);
  else process.stdout.write(`wrote ${out} and ${out}.train.json (${result.seconds.toFixed(1)} s of training)\n`);
  return 0;
}

/** The adversarial-training and noise flags as robustTrain options, or undefined when none is given. */
function hardeningFlags(flagValues: Record<string, unknown>): Record<string, unknown> | undefined {
  let v = flagValues;
  if (v.ibp === true) {
    if (v.adv !== undefined && v.adv !== 'ibp') throw new BulwarkError('BULWARK_E_USAGE', `--ibp and --adv ${String(v.adv)} contradict each other`);
    v = { ...v, adv: 'ibp' };
  }
  const flags = ['adv', 'eps', 'adv-steps', 'adv-step-size', 'trades-beta', 'clean-ratio', 'eps-ramp', 'patience', 'noise-sigma', 'ibp-warmup', 'ibp-ramp', 'ibp-kappa'];
  if (!flags.some((f) => v[f] !== undefined)) return undefined;
  if (v.adv === undefined && flags.some((f) => f !== 'noise-sigma' && v[f] !== undefined)) throw new BulwarkError('BULWARK_E_USAGE', `--${flags.find((f) => f !== 'noise-sigma' && v[f] !== undefined)} needs --adv pgd|trades|fgsm-rs|ibp`);
  const num = (f: string, key: string, integer = false) => (v[f] === undefined ? {} : { [key]: numberFlag(v, f, 0, 0, Infinity, integer) });
  // trained networks take inputs in [0, 1]: an L∞ radius beyond that width makes every input reachable
  const eps = v.eps === undefined ? 0 : numberFlag(v, 'eps', 0, 0, Infinity);
  if (eps > 0) checkEps(eps, 'inf', [0, 1], 1, '--eps');
  return {
    ...(typeof v.adv === 'string' ? { adv: v.adv } : {}),
    ...num('eps', 'eps'),
    ...num('adv-steps', 'advSteps', true),
    ...num('adv-step-size', 'advStepSize'),
    ...num('trades-beta', 'tradesBeta'),
    ...num('clean-ratio', 'cleanRatio'),
    ...num('eps-ramp', 'epsRamp'),
    ...num('patience', 'patience', true),
    ...num('noise-sigma', 'noiseSigma'),
    ...num('ibp-warmup', 'ibpWarmup'),
    ...num('ibp-ramp', 'ibpRamp'),
    ...num('ibp-kappa', 'ibpKappa'),
  };
}

function epochLine(r: EpochRecord & { robustValAccuracy?: number; verifiedValAccuracy?: number; ibpEps?: number }): string {
  const val = (r.valAccuracy === undefined ? '' : `  val acc ${(100 * r.valAccuracy).toFixed(2)}%  val loss ${r.valLoss!.toFixed(4)}`) + (r.robustValAccuracy === undefined ? '' : `  robust val acc ${(100 * r.robustValAccuracy).toFixed(2)}%`) + (r.ibpEps === undefined ? '' : `  ibp eps ${r.ibpEps.toFixed(3)}`) + (r.verifiedValAccuracy === undefined ? '' : `  IBP-verified val acc ${(100 * r.verifiedValAccuracy).toFixed(2)}%`);
  return `epoch ${r.epoch}: loss ${r.loss.toFixed(4)}  train acc ${(100 * r.trainAccuracy).toFixed(2)}%${val}  lr ${r.lr.toExponential(2)}  ${r.seconds.toFixed(1)} s`;
}

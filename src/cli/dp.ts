import { writeTrainingOutputs } from './train-record.js';
import { BulwarkError } from '../core/errors.js';
import { ACCOUNTANTS, calibrateNoise, computeEpsilon, type AccountantName, type EpsilonOptions } from '../privacy/accounting/index.js';
import { parseDecimal, parseSubcommand, printJson, required, threadsFlag } from './args.js';

const HELP = `Usage: bulwark dp <epsilon|calibrate> [options]

Privacy accounting for DP-SGD with Poisson sampling (the sampled Gaussian mechanism).

  bulwark dp epsilon --sample-rate Q --noise-multiplier S --steps N --delta D [--accountant rdp|prv] [--json]
      epsilon after N steps at sampling rate Q and noise multiplier S
  bulwark dp calibrate --target-epsilon E --sample-rate Q --steps N --delta D [--accountant rdp|prv] [--json]
      the smallest noise multiplier whose epsilon after N steps is at most E

Options:
      --sample-rate Q       Poisson sampling rate in (0, 1]: expected batch size / dataset size (a/b is accepted)
      --noise-multiplier S  noise std / max grad norm (> 0)
      --steps N             optimizer steps (epochs / Q)
      --delta D             target delta in (0, 1), well below 1/dataset size
      --target-epsilon E    (calibrate) the epsilon to reach
      --accountant A        rdp (default; Mironov et al. 2019 with the Balle et al. 2020 conversion) or prv
                            (Gopi et al. 2021; reports the upper bound as epsilon)
      --conversion C        rdp only: balle (default) or classic (eps = rdp + log(1/delta)/(alpha-1))
      --eps-error E         prv only: half-width of the epsilon interval (default 0.01)
      --json                print one JSON object; its last line is {"epsilon": ..., "alpha": ..., ...}
`;

const OPTIONS = {
  'sample-rate': { type: 'string' },
  'noise-multiplier': { type: 'string' },
  steps: { type: 'string' },
  delta: { type: 'string' },
  'target-epsilon': { type: 'string' },
  accountant: { type: 'string' },
  conversion: { type: 'string' },
  'eps-error': { type: 'string' },
  json: { type: 'boolean' },
} as const;

/** Parses a number flag that may be written as a fraction a/b (240/60000). */
function numeric(values: Record<string, unknown>, name: string): number {
  const text = required(values, name, HELP).trim();
  const m = /^([^/]+)\/([^/]+)$/.exec(text);
  const v = m ? parseDecimal(m[1]!.trim()) / parseDecimal(m[2]!.trim()) : parseDecimal(text);
  if (text === '' || !Number.isFinite(v)) throw new BulwarkError('BULWARK_E_ARG', `--${name} must be a number, got ${JSON.stringify(text)}`);
  return v;
}

function accountingOptions(v: Record<string, unknown>): EpsilonOptions {
  const accountant = (typeof v.accountant === 'string' ? v.accountant : 'rdp') as AccountantName;
  if (!(ACCOUNTANTS as readonly string[]).includes(accountant)) throw new BulwarkError('BULWARK_E_ARG', `--accountant must be rdp or prv, got ${JSON.stringify(accountant)}`);
  const conversion = typeof v.conversion === 'string' ? v.conversion : 'balle';
  if (conversion !== 'balle' && conversion !== 'classic') throw new BulwarkError('BULWARK_E_ARG', `--conversion must be balle or classic, got ${JSON.stringify(conversion)}`);
  const opts: EpsilonOptions = { accountant, conversion };
  if (v['eps-error'] !== undefined) opts.prv = { epsError: numeric(v, 'eps-error') };
  return opts;
}

function steps(v: Record<string, unknown>): number {
  const n = numeric(v, 'steps');
  if (!Number.isSafeInteger(n) || n < 0) throw new BulwarkError('BULWARK_E_ARG', `--steps must be an integer >= 0, got ${n}`);
  return n;
}

/** `bulwark dp`: see HELP. */
export async function run(argv: string[]): Promise<number> {
  const parsed = parseSubcommand(argv, 'dp', { epsilon: OPTIONS, calibrate: OPTIONS }, HELP);
  if (typeof parsed === 'number') return parsed;
  const { sub, flags: p } = parsed;
  const v = p.values;
  const opts = accountingOptions(v);
  const sampleRate = numeric(v, 'sample-rate');
  const delta = numeric(v, 'delta');
  if (sub === 'epsilon') {
    const r = computeEpsilon({ sampleRate, noiseMultiplier: numeric(v, 'noise-multiplier'), steps: steps(v), delta }, opts);
    if (v.json === true) printJson({ ...r, epsilon: r.epsilon, alpha: r.alpha });
    else {
      const how = r.accountant === 'rdp' ? `RDP, ${r.conversion} conversion, at alpha ${r.alpha}` : `PRV upper bound; estimate ${r.estimate!.toFixed(4)}, lower bound ${r.lower!.toFixed(4)}`;
      process.stdout.write(`epsilon ${r.epsilon.toFixed(4)} at delta ${delta} (${how})\n`);
    }
    return 0;
  }
  const target = numeric(v, 'target-epsilon');
  const c = calibrateNoise(target, { sampleRate, steps: steps(v), delta }, opts);
  if (v.json === true) printJson({ noiseMultiplier: c.noiseMultiplier, targetEpsilon: target, epsilon: c.epsilon.epsilon, alpha: c.epsilon.alpha, delta, accountant: c.epsilon.accountant });
  else process.stdout.write(`noise multiplier ${c.noiseMultiplier.toFixed(4)} gives epsilon ${c.epsilon.epsilon.toFixed(4)} <= ${target} at delta ${delta} (${c.epsilon.accountant})\n`);
  return 0;
}

/**
 * `bulwark train --dp`: DP-SGD training with the train command's flags (called by cli/train.ts). Writes the model and
 * M.onnx.train.json with a "privacy" section (epsilon, delta, sigma, q, steps, accountant, noise source).
 * @param v the parsed train flags
 * @param ctx the required flags, already read (train has checked the --data and --val specs)
 */
export async function runDpTrain(v: Record<string, unknown>, ctx: { arch: string; dataSpec: string; out: string; json: boolean }): Promise<number> {
  const { loadDataFlag } = await import('./common.js');
  const { buildArch } = await import('../nn/zoo.js');
  const { trainDpSgd } = await import('../privacy/dpsgd.js');
  const { numberFlag } = await import('./args.js');
  const { arch, dataSpec, out, json } = ctx;
  const target = v['target-epsilon'] === undefined ? undefined : numberFlag(v, 'target-epsilon', 0, 0);
  const sigma = v['noise-multiplier'] === undefined ? undefined : numberFlag(v, 'noise-multiplier', 0, 0);
  if ((target === undefined) === (sigma === undefined)) throw new BulwarkError('BULWARK_E_USAGE', '--dp needs exactly one of --target-epsilon and --noise-multiplier');
  const accountant = (typeof v.accountant === 'string' ? v.accountant : 'rdp') as AccountantName;
  if (!(ACCOUNTANTS as readonly string[]).includes(accountant)) throw new BulwarkError('BULWARK_E_ARG', `--accountant must be rdp or prv, got ${JSON.stringify(accountant)}`);
  const perExample = typeof v['per-example'] === 'string' ? v['per-example'] : 'auto';
  if (!['auto', 'reference', 'ghost', 'graph'].includes(perExample)) throw new BulwarkError('BULWARK_E_ARG', `--per-example must be auto, reference, ghost or graph, got ${JSON.stringify(perExample)}`);
  const schedule = typeof v.schedule === 'string' ? v.schedule : 'constant';
  if (schedule !== 'constant' && schedule !== 'cosine') throw new BulwarkError('BULWARK_E_ARG', `with --dp, --schedule must be constant or cosine, got ${JSON.stringify(schedule)}`);
  const optimizer = (typeof v.optimizer === 'string' ? v.optimizer : 'sgd') as 'sgd' | 'adam' | 'adamw';
  const seed = numberFlag(v, 'seed', 0, 0, 2 ** 32 - 1, true);
  const threads = threadsFlag(v);
  const opts = {
    epochs: numberFlag(v, 'epochs', 3, 1, Infinity, true),
    batchSize: numberFlag(v, 'batch-size', 256, 1, Infinity, true),
    lr: numberFlag(v, 'lr', 0.1, 0),
    optimizer,
    momentum: numberFlag(v, 'momentum', 0.9, 0, 1),
    maxGradNorm: numberFlag(v, 'max-grad-norm', 1, 0),
    delta: numberFlag(v, 'delta', 1e-5, 0, 1),
    accountant,
    schedule: { kind: schedule } as const,
    perExample: perExample as 'auto' | 'reference' | 'ghost' | 'graph',
    seed,
    progress: !json,
    ...(target === undefined ? {} : { targetEpsilon: target }),
    ...(sigma === undefined ? {} : { noiseMultiplier: sigma }),
    ...(v['weight-decay'] === undefined ? {} : { weightDecay: numberFlag(v, 'weight-decay', 0, 0) }),
    ...(threads === undefined ? {} : { threads }),
  };
  const t0 = performance.now();
  const data = await loadDataFlag(dataSpec);
  const validation = typeof v.val === 'string' ? await loadDataFlag(v.val, '--val') : undefined;
  const net = buildArch(arch, { inputShape: data.x.shape.slice(1), numClasses: data.numClasses ?? 10, seed });
  const loadSeconds = (performance.now() - t0) / 1000;
  if (!json) process.stderr.write(`DP-SGD training ${arch} (${net.parameterCount()} parameters) on ${data.name} (${data.x.shape[0]} examples), ${opts.epochs} epochs\n`);
  const result = await trainDpSgd(net, data, {
    ...opts,
    ...(validation ? { validation } : {}),
    onProgress: (e) => {
      const r = e.record;
      if (!json) process.stderr.write(`epoch ${r.epoch}: loss ${r.loss.toFixed(4)}  train acc ${(100 * r.trainAccuracy).toFixed(2)}%${r.valAccuracy === undefined ? '' : `  val acc ${(100 * r.valAccuracy).toFixed(2)}%`}  epsilon ${r.epsilon.toFixed(3)}  clipped ${(100 * r.clippedFraction).toFixed(0)}%  ${r.seconds.toFixed(1)} s\n`);
    },
  });
  const record = writeTrainingOutputs({
    out, net, arch, dataSpec, data, valSpec: v.val, validation, seed, threads, loadSeconds, t0,
    hyperparameters: { epochs: opts.epochs, batchSize: opts.batchSize, lr: opts.lr, optimizer, ...(optimizer === 'sgd' ? { momentum: opts.momentum } : {}), weightDecay: opts.weightDecay ?? 0, schedule: opts.schedule },
    history: result.history, seconds: result.seconds, steps: result.steps,
    savePath: typeof v['save-npz'] === 'string' ? v['save-npz'] : undefined,
    extra: { privacy: result.privacy },
    finalExtra: { epsilon: result.privacy.epsilon },
  });
  if (json) printJson(record);
  else process.stdout.write(`wrote ${out} and ${out}.train.json: epsilon ${result.privacy.epsilon.toFixed(3)} at delta ${result.privacy.delta} (sigma ${result.privacy.noiseMultiplier.toFixed(3)}, q ${result.privacy.sampleRate.toPrecision(3)}, ${result.steps} steps, ${result.privacy.accountant})\n`);
  return 0;
}

/**
 * `bulwark detect fit|score|evaluate`: the feature-squeezing detector (Xu et al. 2018, arXiv:1704.01155) from the
 * command line: fit its threshold at a false-positive rate and save it, score inputs with a saved detector, and
 * evaluate it against PGD, C&W and the detector-aware adaptive attack.
 */
import { createHash } from 'node:crypto';
import { BulwarkError } from '../core/errors.js';
import { readFileChecked, refuseOutputOverInput, writeFileAtomic } from '../core/fsio.js';
import { sliceRows } from '../core/tensor.js';
import { dataSpecFiles, parseDataSpec } from '../data/index.js';
import { encodeNpy } from '../data/npy.js';
import { DEFAULT_SQUEEZERS, featureSqueezing, formatSqueezer, parseSqueezers, type FeatureSqueezingDetector, type SqueezerSpec } from '../evasion/defense/squeeze.js';
import type { OnnxModel } from '../runtime/model.js';
import { numberFlag, parseDecimal, parseSubcommand, printJson, required, withShared } from './args.js';
import { MODEL_FLAGS, checkLocalModel, inputsFromFlags, loadDataFlag, modelFromFlags } from './common.js';

const HELP = `Usage: bulwark detect fit --model M.onnx --data SPEC [--fpr F] [--squeezers LIST] --out D.json
       bulwark detect score --model M.onnx --detector D.json (--input X.npy | --data SPEC) [--out S.npy]
       bulwark detect evaluate --model M.onnx --data SPEC --eps E [--fpr F] [--adaptive]

Feature squeezing (Xu et al. 2018, arXiv:1704.01155): an input's score is the largest L1 distance between the
model's softmax output on it and on a squeezed copy of it; inputs scoring above a threshold are flagged. The
threshold is the (1 - fpr) quantile of the scores of clean data.

  fit       fits the threshold on clean data (--data) and writes the detector (squeezers, threshold, fpr, the
            model's sha256) to --out, atomically
  score     scores inputs with a detector file and decides (1 = flagged); a detector fitted for another model
            (sha256) is refused; --out writes the scores as float64 .npy
  evaluate  fits on the first --fit examples of --data (default half), then on the rest: held-out clean FPR, the
            detection rate of successful PGD (L-inf, --eps) and C&W L2 examples, and with --adaptive the evasion
            rate (misclassified and not flagged) of the detector-aware adaptive attack (He et al. 2017, Sharma &
            Chen 2018) at L-inf --eps and at the L2 budget --l2-eps (default: the median L2 of the C&W examples)

Options:
  -m, --model M.onnx        the classifier
      --data SPEC           data, e.g. mnist:test[0:300] (fit: clean examples; evaluate: labelled)
      --fpr F               false-positive rate on the fitting data, in (0, 1) (default 0.05)
      --squeezers LIST      bit:B, median:K, jpeg:Q, comma-separated (default ${DEFAULT_SQUEEZERS}, Xu et al.'s MNIST)
      --detector D.json     score: the detector file written by fit
      --input X.npy         score: float32 inputs (instead of --data)
      --out FILE            fit: the detector file; score: the scores (.npy)
      --eps E               evaluate: L-inf radius of PGD and of the adaptive attack
      --l2-eps B            evaluate: L2 budget of the adaptive L2 attack (default: median C&W L2)
      --fit N               evaluate: examples used to fit (default half of --data, at least 20)
      --steps N             evaluate: PGD steps (default 40) and adaptive steps per lambda round (default 100)
      --lambda-steps N      evaluate: rounds of the adaptive attack's lambda search (default 3)
      --cw-steps N          evaluate: C&W Adam steps per binary-search step (default 100; 5 search steps)
      --adaptive            evaluate: also run the adaptive attack
      --seed S              evaluate: seed of the attacks (default 0)
      --json                print one JSON object as the last stdout line
      --threads T, --workers W, --batch-size B, --output-kind auto|logits|probs   model execution
`;

const SHARED = { ...MODEL_FLAGS, model: { type: 'string', short: 'm' }, json: { type: 'boolean' } } as const;
const SUBS = withShared(
  {
    fit: { data: { type: 'string' }, fpr: { type: 'string' }, squeezers: { type: 'string' }, out: { type: 'string' } },
    score: { detector: { type: 'string' }, input: { type: 'string' }, data: { type: 'string' }, out: { type: 'string' } },
    evaluate: {
      data: { type: 'string' },
      fpr: { type: 'string' },
      squeezers: { type: 'string' },
      eps: { type: 'string' },
      'l2-eps': { type: 'string' },
      fit: { type: 'string' },
      steps: { type: 'string' },
      'lambda-steps': { type: 'string' },
      'cw-steps': { type: 'string' },
      adaptive: { type: 'boolean' },
      seed: { type: 'string' },
    },
  },
  SHARED,
);

/** The detector file format. */
export const DETECTOR_FORMAT = 'bulwark.detector/1';

/** What `detect fit` writes. */
export interface DetectorFile {
  format: typeof DETECTOR_FORMAT;
  kind: 'feature-squeezing';
  paper: string;
  squeezers: string[];
  threshold: number;
  /** The false-positive rate asked for. */
  fpr: number;
  /** The rate of fitting examples above the threshold. */
  fitFpr: number;
  fitExamples: number;
  data: string;
  model: { path: string; sha256: string };
  createdAt: string;
}

function fileSha256(file: string): string {
  return createHash('sha256').update(readFileChecked(file, '--model')).digest('hex');
}

function fprFlag(v: Record<string, unknown>): number {
  const fpr = numberFlag(v, 'fpr', 0.05);
  if (!(fpr > 0 && fpr < 1)) throw new BulwarkError('BULWARK_E_ARG', `--fpr must be in (0, 1), got ${v['fpr'] as string}`, { hint: 'A false-positive rate such as 0.05 (5% of clean inputs flagged).' });
  return fpr;
}

/**
 * Reads and validates a detector file.
 * @throws BulwarkError BULWARK_E_DETECTOR_FILE (not JSON, unknown format, bad fields), BULWARK_E_SQUEEZER
 */
export function readDetectorFile(file: string): DetectorFile {
  const text = readFileChecked(file, '--detector', 1 << 20).toString('utf8');
  let o: unknown;
  try {
    o = JSON.parse(text);
  } catch (e) {
    throw new BulwarkError('BULWARK_E_DETECTOR_FILE', `--detector ${file} is not valid JSON: ${(e as Error).message}`);
  }
  const bad = (what: string): never => {
    throw new BulwarkError('BULWARK_E_DETECTOR_FILE', `--detector ${file}: ${what}`);
  };
  if (typeof o !== 'object' || o === null || Array.isArray(o)) bad('not a JSON object');
  const d = o as Record<string, unknown>;
  if (d['format'] !== DETECTOR_FORMAT) bad(`format is ${JSON.stringify(d['format'])}, expected ${JSON.stringify(DETECTOR_FORMAT)}`);
  if (d['kind'] !== 'feature-squeezing') bad(`kind is ${JSON.stringify(d['kind'])}, expected "feature-squeezing"`);
  const sq = d['squeezers'];
  if (!Array.isArray(sq) || sq.length === 0 || sq.some((s) => typeof s !== 'string')) bad('squeezers must be a non-empty list of strings such as "bit:1"');
  parseSqueezers((sq as string[]).join(','));
  const th = d['threshold'];
  if (typeof th !== 'number' || !Number.isFinite(th) || th < 0) bad(`threshold must be a finite number >= 0, got ${JSON.stringify(th)}`);
  const fpr = d['fpr'];
  if (typeof fpr !== 'number' || !(fpr > 0 && fpr < 1)) bad(`fpr must be a number in (0, 1), got ${JSON.stringify(fpr)}`);
  const m = d['model'] as Record<string, unknown> | undefined;
  if (typeof m !== 'object' || m === null || typeof m['sha256'] !== 'string' || !/^[0-9a-f]{64}$/.test(m['sha256'])) bad('model.sha256 must be a 64-digit lowercase hex SHA-256');
  return d as unknown as DetectorFile;
}

function rate(flags: ArrayLike<number>, mask?: ArrayLike<number>): { n: number; flagged: number; rate: number } {
  let n = 0;
  let f = 0;
  for (let i = 0; i < flags.length; i++) if (!mask || mask[i]) {
    n++;
    f += flags[i]!;
  }
  return { n, flagged: f, rate: n ? f / n : 0 };
}

function pct(r: number): string {
  return `${(100 * r).toFixed(1)}%`;
}

/** `bulwark detect`: see HELP. */
export async function run(argv: string[]): Promise<number> {
  const parsed = parseSubcommand(argv, 'detect', SUBS, HELP);
  if (typeof parsed === 'number') return parsed;
  const { sub, flags } = parsed;
  const v = flags.values;
  const json = v['json'] === true;
  const modelPath = required(v, 'model', HELP);
  checkLocalModel(modelPath);
  if (sub === 'fit') return fit(v, modelPath, json);
  if (sub === 'score') return score(v, modelPath, json);
  return evaluate(v, modelPath, json);
}

async function fit(v: Record<string, unknown>, modelPath: string, json: boolean): Promise<number> {
  const spec = required(v, 'data', HELP);
  const out = required(v, 'out', HELP);
  refuseOutputOverInput([['--out', out]], [['--model', modelPath], ...dataSpecFiles(spec).map((f): [string, string] => ['--data', f])]);
  const fpr = fprFlag(v);
  const specs = parseSqueezers((v['squeezers'] as string | undefined) ?? DEFAULT_SQUEEZERS);
  parseDataSpec(spec);
  const sha256 = fileSha256(modelPath);
  const model = await modelFromFlags(v, modelPath);
  try {
    const data = await loadDataFlag(spec);
    const det = featureSqueezing(model, specs);
    const r = await det.fit(data.x, fpr);
    const file: DetectorFile = {
      format: DETECTOR_FORMAT,
      kind: 'feature-squeezing',
      paper: 'Xu, Evans & Qi 2018, https://arxiv.org/abs/1704.01155',
      squeezers: specs.map(formatSqueezer),
      threshold: r.threshold,
      fpr,
      fitFpr: r.fpr,
      fitExamples: data.x.shape[0]!,
      data: spec,
      model: { path: modelPath, sha256 },
      createdAt: new Date().toISOString(),
    };
    writeFileAtomic(out, JSON.stringify(file, null, 2) + '\n', '--out');
    if (json) printJson({ detector: out, ...file });
    else process.stdout.write(`feature squeezing (${file.squeezers.join(', ')}) fitted on ${file.fitExamples} examples of ${spec}: threshold ${r.threshold.toPrecision(6)} (${pct(r.fpr)} of them above it) -> ${out}\n`);
  } finally {
    await model.dispose();
  }
  return 0;
}

async function score(v: Record<string, unknown>, modelPath: string, json: boolean): Promise<number> {
  const detPath = required(v, 'detector', HELP);
  if (typeof v['out'] === 'string') {
    refuseOutputOverInput([['--out', v['out']]], [['--model', modelPath], ['--detector', detPath], ['--input', v['input'] as string | undefined], ...dataSpecFiles(v['data']).map((f): [string, string] => ['--data', f])]);
  }
  const file = readDetectorFile(detPath);
  const sha256 = fileSha256(modelPath);
  if (sha256 !== file.model.sha256) {
    throw new BulwarkError('BULWARK_E_DETECTOR_MODEL', `--detector ${detPath} was fitted for a model with sha256 ${file.model.sha256.slice(0, 16)}…; --model ${modelPath} has sha256 ${sha256.slice(0, 16)}…`);
  }
  const model = await modelFromFlags(v, modelPath);
  try {
    const { x, source } = await inputsFromFlags(v, { labels: 'optional', model });
    const det = featureSqueezing(model, parseSqueezers(file.squeezers.join(',')), { threshold: file.threshold });
    const scores = await det.score(x);
    const decisions = Uint8Array.from(scores, (s) => (s > file.threshold ? 1 : 0));
    const out = v['out'] as string | undefined;
    if (out) writeFileAtomic(out, encodeNpy({ data: scores, shape: [scores.length], dtype: 'float64' }), '--out');
    const r = rate(decisions);
    if (json) printJson({ detector: detPath, source, threshold: file.threshold, squeezers: file.squeezers, n: r.n, flagged: r.flagged, flaggedRate: r.rate, scores: Array.from(scores), decisions: Array.from(decisions), ...(out ? { out } : {}) });
    else process.stdout.write(`${r.flagged} of ${r.n} inputs flagged (${pct(r.rate)}) at threshold ${file.threshold.toPrecision(6)}${out ? `; scores -> ${out}` : ''}\n`);
  } finally {
    await model.dispose();
  }
  return 0;
}

async function evaluate(v: Record<string, unknown>, modelPath: string, json: boolean): Promise<number> {
  const spec = required(v, 'data', HELP);
  const epsText = required(v, 'eps', HELP);
  const eps = parseDecimal(epsText);
  if (!(eps > 0 && Number.isFinite(eps))) throw new BulwarkError('BULWARK_E_ARG', `--eps must be a positive number, got ${JSON.stringify(epsText)}`);
  const fpr = fprFlag(v);
  const specs: SqueezerSpec[] = parseSqueezers((v['squeezers'] as string | undefined) ?? DEFAULT_SQUEEZERS);
  const l2Given = v['l2-eps'] === undefined ? undefined : numberFlag(v, 'l2-eps', 0, 0);
  if (l2Given !== undefined && !(l2Given > 0)) throw new BulwarkError('BULWARK_E_ARG', `--l2-eps must be > 0, got ${l2Given}`);
  const seed = numberFlag(v, 'seed', 0, 0, 2 ** 32 - 1, true);
  const cwSteps = numberFlag(v, 'cw-steps', 100, 1, 1e6, true);
  const lambdaSteps = numberFlag(v, 'lambda-steps', 3, 1, 20, true);
  const adaptive = v['adaptive'] === true;
  parseDataSpec(spec);
  const model: OnnxModel = await modelFromFlags(v, modelPath);
  try {
    const data = await loadDataFlag(spec);
    if (!data.y) throw new BulwarkError('BULWARK_E_LABELS', `--data ${spec} has no labels; evaluate needs them`);
    const n = data.x.shape[0]!;
    // the detector needs 20 clean examples to fit, and the evaluation at least one more
    if (n < 21) throw new BulwarkError('BULWARK_E_ARG', `--data ${spec} has ${n} examples; evaluate needs at least 21 (20 to fit the detector, the rest to evaluate it)`, { hint: 'Pass more data, e.g. --data mnist:test[0:300] (default --fit: half of it, at least 20).' });
    const nFit = numberFlag(v, 'fit', Math.min(n - 1, Math.max(20, Math.floor(n / 2))), 20, n - 1, true);
    const fitX = sliceRows(data.x, 0, nFit);
    const evX = sliceRows(data.x, nFit, n);
    const evY = data.y.slice(nFit);
    const det: FeatureSqueezingDetector = featureSqueezing(model, specs);
    const fitted = await det.fit(fitX, fpr);
    const cleanFlags = await det.decide(evX);
    const { pgd } = await import('../evasion/whitebox/pgd.js');
    const { cw } = await import('../evasion/whitebox/cw.js');
    const pgdSteps = numberFlag(v, 'steps', 40, 1, 1e6, true);
    const p = await pgd(model, evX, evY, { eps, norm: 'inf', steps: pgdSteps, seed });
    const pgdDet = rate(await det.decide(p.adversarial), p.success);
    const c = await cw(model, evX, evY, { steps: cwSteps, binarySearchSteps: 5, seed });
    const cwFlags = await det.decide(c.adversarial);
    const cwDet = rate(cwFlags, c.success);
    const l2s = Array.from(c.norms.l2).filter((_, i) => c.success[i]).sort((a, b) => a - b);
    const medianL2 = l2s.length ? l2s[Math.floor((l2s.length - 1) / 2)]! : NaN;
    const l2Budget = l2Given ?? (Number.isFinite(medianL2) ? Math.ceil(medianL2 * 100) / 100 : undefined);
    const cwWithin = rate(cwFlags, Uint8Array.from(c.success, (s, i) => (s && l2Budget !== undefined && c.norms.l2[i]! <= l2Budget + 1e-6 ? 1 : 0)));
    const out: Record<string, unknown> = {
      model: modelPath,
      data: spec,
      squeezers: specs.map(formatSqueezer),
      fpr,
      fitExamples: nFit,
      evalExamples: n - nFit,
      threshold: fitted.threshold,
      fitFpr: fitted.fpr,
      heldOutFpr: rate(cleanFlags).rate,
      pgd: { eps, steps: pgdSteps, successful: pgdDet.n, detected: pgdDet.flagged, detectionRate: pgdDet.rate },
      cw: { successful: cwDet.n, detected: cwDet.flagged, detectionRate: cwDet.rate, medianL2, l2Budget: l2Budget ?? null, withinBudget: cwWithin.n, detectionRateWithinBudget: cwWithin.rate },
    };
    if (adaptive) {
      const { squeezeAdaptiveAttack } = await import('../evasion/defense/squeeze-adaptive.js');
      const adaptiveSteps = numberFlag(v, 'steps', 100, 1, 1e6, true);
      const a = await squeezeAdaptiveAttack(det, evX, evY, { norm: 'inf', eps, steps: adaptiveSteps, lambdaSteps, seed });
      out['adaptive'] = { norm: 'inf', eps, steps: adaptiveSteps, lambdaSteps, attacked: a.attacked.reduce((s, b) => s + b, 0), evasionRate: a.evasionRate, misclassifiedRate: a.misclassifiedRate, seconds: a.seconds };
      if (l2Budget !== undefined) {
        const b = await squeezeAdaptiveAttack(det, evX, evY, { norm: 2, eps: l2Budget, steps: adaptiveSteps, lambdaSteps, seed });
        out['adaptiveL2'] = { norm: 2, eps: l2Budget, steps: adaptiveSteps, lambdaSteps, attacked: b.attacked.reduce((s, x) => s + x, 0), evasionRate: b.evasionRate, misclassifiedRate: b.misclassifiedRate, seconds: b.seconds };
      }
    }
    if (json) printJson(out);
    else {
      const w = process.stdout;
      w.write(`feature squeezing (${specs.map(formatSqueezer).join(', ')}), threshold ${fitted.threshold.toPrecision(6)} fitted on ${nFit} examples at ${pct(fpr)} FPR\n`);
      w.write(`held-out clean FPR          ${pct(out['heldOutFpr'] as number)} of ${n - nFit}\n`);
      w.write(`PGD L-inf eps ${eps}           ${pct(pgdDet.rate)} of ${pgdDet.n} successful examples detected\n`);
      w.write(`C&W L2                      ${pct(cwDet.rate)} of ${cwDet.n} successful examples detected (median L2 ${Number.isFinite(medianL2) ? medianL2.toFixed(3) : 'n/a'})\n`);
      const ad = out['adaptive'] as { evasionRate: number; misclassifiedRate: number; attacked: number } | undefined;
      if (ad) w.write(`adaptive L-inf eps ${eps}      ${pct(ad.evasionRate)} of ${ad.attacked} evade (misclassified and not flagged); ${pct(ad.misclassifiedRate)} misclassified\n`);
      const a2 = out['adaptiveL2'] as { evasionRate: number; misclassifiedRate: number; attacked: number; eps: number } | undefined;
      if (a2) w.write(`adaptive L2 eps ${a2.eps}        ${pct(a2.evasionRate)} of ${a2.attacked} evade; ${pct(a2.misclassifiedRate)} misclassified\n`);
    }
  } finally {
    await model.dispose();
  }
  return 0;
}

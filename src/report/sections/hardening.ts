/**
 * The hardening section: what the model's defenses are worth.
 * - the training record (M.onnx.train.json): training method (PGD-AT, TRADES, FGSM-RS, Gaussian noise, plain),
 *   per-epoch clean / robust accuracy, and whether the robust accuracy it claims survives the scan's attacks;
 * - randomized smoothing (Cohen et al. 2019): certified accuracy against L2 radius, when the record says the model
 *   was noise-trained or the user gives --sigma;
 * - the feature-squeezing detector (Xu et al. 2018): threshold fitted at 5% FPR on clean data outside the assessed
 *   examples, ROC and rates on the scan's own adversarial examples, and an adaptive attack against it;
 * - preprocessing defenses (median filter, JPEG-like, bit depth): accuracy on transferred adversarial examples beside
 *   the accuracy under the adaptive (BPDA) attack (Athalye et al. 2018).
 */
import { BulwarkError } from '../../core/errors.js';
import { gatherRows, sliceRows, type Float32Tensor } from '../../core/tensor.js';
import type { RobustnessEvaluation } from '../../evasion/evaluate/index.js';
import { bitDepth, certifiedAccuracy, featureSqueezing, jpegLike, medianFilter, preprocessedModel, smoothCertify, squeezeAdaptiveAttack, squeezeAdaptiveModel, type CertifyResult, type Squeezer } from '../../evasion/defense/index.js';
import { argmax } from '../../evasion/geometry.js';
import { pgd } from '../../evasion/whitebox/pgd.js';
import { rocCurve } from '../../privacy/membership/index.js';
import type { Model } from '../../runtime/model.js';
import { makeFinding } from '../taxonomy.js';
import type { ReportSection, Severity } from '../types.js';
import { nothingEvaluated, sectionParts, sectionScaffold, statusFromFindings, type AssessmentContext, type SectionProvider } from './common.js';
import { budgetIndex, keptEpoch, readTrainRecord, rocPoints, sampleOutside, type TrainRecord } from './record.js';

/** Gate-able metrics of the hardening section. */
export const HARDENING_METRICS = ['certified-accuracy', 'detector-tpr', 'detector-auc', 'detector-adaptive-evasion', 'preprocessing-adaptive-accuracy'] as const;

/** Parts of the section (`--sections hardening.<part>`). */
export const HARDENING_PARTS = ['record', 'smoothing', 'detector', 'preprocessing'] as const;

/** Sizes per budget (quick, standard, thorough). */
export const HARDENING_SIZES = [
  // clean: clean rows to fit the detector on (and as many again to measure its FPR); adaptive: examples the
  // adaptive attacks run on; steps: their PGD steps; cert: examples certified, n / n0: CERTIFY's samples
  { clean: 100, adaptive: 32, steps: 20, cert: 20, n: 500, n0: 32 },
  { clean: 500, adaptive: 200, steps: 40, cert: 50, n: 10000, n0: 100 },
  { clean: 1000, adaptive: 500, steps: 100, cert: 200, n: 100000, n0: 100 },
] as const;

/** CERTIFY's error probability. */
export const SMOOTHING_ALPHA = 0.001;

/** The detector's target false-positive rate on clean data. */
export const DETECTOR_FPR = 0.05;

/** Certified-accuracy curve radii, in units of sigma. */
const RADII_OVER_SIGMA = [0, 0.25, 0.5, 0.75, 1, 1.25, 1.5, 1.75, 2, 2.5, 3];

/** Severity of the adaptive attack's evasion rate against the detector. */
export function detectorEvasionSeverity(rate: number): Severity {
  return rate >= 0.1 ? 'high' : rate >= 0.02 ? 'medium' : rate > 0 ? 'low' : 'info';
}

/** Severity of a certified accuracy at the headline radius. */
export function certifiedSeverity(acc: number): Severity {
  return acc < 0.1 ? 'medium' : acc < 0.5 ? 'low' : 'info';
}

/** The L2 radius the certified-accuracy metric is read at: eps for an L2 scan, else one sigma. */
export function headlineRadius(norm: 'inf' | 2, eps: number, sigma: number): number {
  return norm === 2 ? eps : sigma;
}

function methodText(r: TrainRecord | undefined): string {
  const h = r?.hardening;
  if (!r) return 'unknown (no training record)';
  if (!h) return 'standard training (no adversarial training, no noise)';
  if (h.adv === 'none' || !h.adv) return (h.noiseSigma ?? 0) > 0 ? `Gaussian noise augmentation (sigma ${h.noiseSigma})` : 'standard training';
  return `${h.adv} adversarial training at L∞ eps ${h.eps}${(h.noiseSigma ?? 0) > 0 ? ` with Gaussian noise (sigma ${h.noiseSigma})` : ''}`;
}

function methodShort(r: TrainRecord | undefined): string {
  const h = r?.hardening;
  if (!r) return 'unknown';
  if (!h || !h.adv || h.adv === 'none') return (h?.noiseSigma ?? 0) > 0 ? `noise σ ${h!.noiseSigma}` : 'standard';
  return `${h.adv}${(h.noiseSigma ?? 0) > 0 ? ' + noise' : ''}`;
}

function accuracyOf(pred: Int32Array, y: ArrayLike<number>, rows?: ArrayLike<number>): number {
  const idx = rows ?? Array.from({ length: pred.length }, (_, i) => i);
  if (idx.length === 0) return 0;
  let ok = 0;
  for (let k = 0; k < idx.length; k++) if (pred[k] === y[idx[k]!]) ok++;
  return ok / idx.length;
}

/** The adversarial examples the detector and the preprocessing comparison use. */
interface AdversarialSet {
  source: 'evasion' | 'pgd';
  /** Adversarial inputs for every assessed example (the clean input where no attack succeeded). */
  adversarial: Float32Tensor;
  /** Per example: an attack flipped a correct prediction. */
  success: Uint8Array;
  /** Robust accuracy those attacks leave, and on how many examples. */
  robustAccuracy: number;
  n: number;
  description: string;
}

async function adversarialSet(ctx: AssessmentContext, steps: number, limit: number): Promise<AdversarialSet | undefined> {
  const ev = ctx.shared?.get('evasion') as RobustnessEvaluation | undefined;
  if (ev) {
    const ens = ev.ensemble;
    return {
      source: 'evasion',
      adversarial: ens.adversarial,
      success: Uint8Array.from(ens.brokenBy, (b) => (b === null ? 0 : 1)),
      robustAccuracy: ev.robustAccuracy,
      n: ev.n,
      description: `the evasion section's ensemble (${ens.members.filter((m) => m.status !== 'skipped').map((m) => m.name).join(', ')})`,
    };
  }
  const model = ctx.model as Model;
  if (!model.lossAndGradient) return undefined;
  const n = Math.min(limit, ctx.x.shape[0]!);
  const x = sliceRows(ctx.x, 0, n);
  const y = ctx.y.subarray(0, n);
  const r = await pgd(model, x, y, { eps: ctx.settings.eps, norm: ctx.settings.norm, steps, seed: ctx.settings.seed });
  return { source: 'pgd', adversarial: r.adversarial, success: r.success, robustAccuracy: r.summary.robustAccuracy, n, description: `PGD-${steps} (the evasion section did not run)` };
}

/** Renders the certification result (used by the provider and by tests). */
export function smoothingSummary(res: CertifyResult, y: ArrayLike<number>, sigma: number, norm: 'inf' | 2, eps: number): { radius: number; certifiedAccuracy: number; curve: { radius: number; accuracy: number }[] } {
  const radius = headlineRadius(norm, eps, sigma);
  const curve = certifiedAccuracy(res, y, RADII_OVER_SIGMA.map((k) => +(k * sigma).toPrecision(12)));
  return { radius, certifiedAccuracy: certifiedAccuracy(res, y, [radius])[0]!.accuracy, curve };
}

/** The hardening section provider. */
export const hardeningProvider: SectionProvider = {
  id: 'hardening',
  title: 'Hardening: defenses and certificates',
  domain: 'hardening',
  metrics: [...HARDENING_METRICS],
  async run(ctx: AssessmentContext): Promise<ReportSection> {
    const t0 = performance.now();
    const model = ctx.model as Model;
    const size = HARDENING_SIZES[budgetIndex(ctx.settings.budget)];
    const { parts, explicit } = sectionParts(ctx, 'hardening', HARDENING_PARTS, HARDENING_PARTS);
    const { eps, norm, seed } = ctx.settings;
    const threat = `${norm === 'inf' ? 'L∞' : 'L2'} eps ${eps}`;
    const { blocks, findings, metrics, details, notes, partFailed, progress } = sectionScaffold(ctx, 'hardening', parts);
    const lookup = readTrainRecord(ctx.modelPath, ctx.modelSha256);
    const rec = lookup.record;
    const white = typeof model.lossAndGradient === 'function';
    let advCache: AdversarialSet | undefined | null = null;
    const adv = async () => {
      if (advCache === null) advCache = await adversarialSet(ctx, size.steps, size.adaptive);
      return advCache;
    };

    const timings: Record<string, number> = {};
    let tPart = performance.now();
    const lap = (part: string) => {
      const now = performance.now();
      timings[part] = (now - tPart) / 1000;
      tPart = now;
    };
    // --- the training record ---
    if (parts.has('record')) {
      const h = rec?.hardening;
      const method = methodText(rec);
      details['record'] = { path: lookup.path, found: rec !== undefined, problem: lookup.problem ?? null, method, hardening: h ?? null, history: rec?.history ?? [] };
      blocks.push({
        kind: 'metrics',
        id: 'hardening-record',
        items: [
          { label: 'training method', value: methodShort(rec), format: 'text' },
          ...(h && h.adv && h.adv !== 'none' ? [{ label: 'training eps (L∞)', value: h.eps, format: 'number' as const }, { label: 'inner steps', value: h.advSteps ?? 0, format: 'count' as const }] : []),
          ...((h?.noiseSigma ?? 0) > 0 ? [{ label: 'noise sigma', value: h!.noiseSigma!, format: 'number' as const }] : []),
          ...(h?.keptEpoch !== undefined ? [{ label: 'kept epoch', value: h.keptEpoch, format: 'count' as const }] : []),
          ...(h?.stopped ? [{ label: 'stopped', value: h.stopped, format: 'text' as const }] : []),
          { label: 'epochs recorded', value: rec?.history?.length ?? 0, format: 'count' },
        ],
      });
      blocks.push({ kind: 'text', text: rec ? `Training record ${lookup.path}: ${method}.` : `No usable training record: ${lookup.problem}.` });
      const hist = rec?.history ?? [];
      if (hist.length > 0) {
        const keys: [keyof (typeof hist)[number], string][] = [['trainAccuracy', 'train accuracy'], ['valAccuracy', 'validation accuracy'], ['robustValAccuracy', 'robust validation accuracy (PGD-20)'], ['guardPgdAccuracy', 'guard PGD-10 accuracy']];
        const series = keys
          .filter(([k]) => hist.some((e) => typeof e[k] === 'number'))
          .map(([k, name]) => ({ name, style: 'line' as const, points: hist.filter((e) => typeof e[k] === 'number').map((e) => ({ x: e.epoch, y: e[k] as number })) }));
        blocks.push({ kind: 'chart', id: 'training-curve', caption: `Per-epoch accuracy from the training record (${method})`, xLabel: 'epoch', yLabel: 'accuracy', yRange: [0, 1], yFormat: 'percent', series });
        blocks.push({
          kind: 'table',
          id: 'training-epochs',
          caption: 'Training record, per epoch',
          columns: [
            { key: 'epoch', label: 'epoch', format: 'count' },
            { key: 'loss', label: 'loss', format: 'number' },
            { key: 'trainAccuracy', label: 'train accuracy', format: 'percent' },
            { key: 'valAccuracy', label: 'validation accuracy', format: 'percent' },
            { key: 'robustValAccuracy', label: 'robust validation accuracy', format: 'percent' },
            { key: 'guardPgdAccuracy', label: 'guard PGD accuracy', format: 'percent' },
          ],
          rows: hist.map((e) => ({ epoch: e.epoch, loss: e.loss ?? null, trainAccuracy: e.trainAccuracy ?? null, valAccuracy: e.valAccuracy ?? null, robustValAccuracy: e.robustValAccuracy ?? null, guardPgdAccuracy: e.guardPgdAccuracy ?? null })),
        });
      }
      findings.push(makeFinding('hardening-training-method', {
        title: rec ? `Training method from the record: ${method}` : `No training record: ${lookup.problem}`,
        metric: 'training-method',
        value: rec ? (h?.adv && h.adv !== 'none' ? h.adv : (h?.noiseSigma ?? 0) > 0 ? 'noise' : 'standard') : 'unknown',
        evidence: { record: lookup.path, problem: lookup.problem ?? null, hardening: h ?? null },
      }));
      // does the robust accuracy the record claims survive the scan's attacks?
      const kept = rec ? keptEpoch(rec) : undefined;
      const claim = kept?.robustValAccuracy ?? kept?.guardPgdAccuracy;
      if (h && h.adv && h.adv !== 'none' && claim !== undefined) {
        const claimN = kept?.robustValAccuracy !== undefined ? Math.min(500, rec?.validation?.n ?? 500) : 256;
        const comparable = norm === 'inf' && eps <= h.eps * (1 + 1e-9);
        const a = comparable ? await adv() : undefined;
        const claimRow: Record<string, unknown> = { claim, claimEps: h.eps, claimAttack: kept?.robustValAccuracy !== undefined ? 'PGD-20 on validation rows' : 'PGD-10 guard batch', claimN, comparable };
        if (!comparable) notes.push(`The record's robust accuracy (${(100 * claim).toFixed(1)}% at L∞ eps ${h.eps}) is not compared: the scan's threat (${threat}) is not an L∞ ball inside the training one.`);
        else if (a) {
          const measured = a.robustAccuracy;
          const se = Math.sqrt((claim * (1 - claim)) / claimN + (measured * (1 - measured)) / Math.max(1, a.n));
          const margin = Math.max(0.05, 3 * se);
          Object.assign(claimRow, { measured, measuredN: a.n, measuredBy: a.description, margin, contradicted: measured < claim - margin });
          if (measured < claim - margin) {
            findings.push(makeFinding('hardening-robustness-claim-contradicted', {
              title: `The training record claims ${(100 * claim).toFixed(1)}% robust accuracy at L∞ eps ${h.eps}; the scan leaves ${(100 * measured).toFixed(1)}% at ${threat}`,
              metric: 'robust-accuracy',
              value: measured,
              threshold: +(claim - margin).toFixed(6),
              evidence: claimRow,
            }));
          }
        }
        details['claim'] = claimRow;
      }
      lap('record');
    }

    // --- randomized smoothing ---
    if (parts.has('smoothing')) try {
      const recSigma = rec?.hardening?.noiseSigma;
      const sigma = ctx.options?.sigma ?? (recSigma !== undefined && recSigma > 0 ? recSigma : undefined);
      if (sigma === undefined) {
        findings.push(makeFinding('hardening-certified-robustness', {
          title: 'No certified robustness: the model was not trained with Gaussian noise (per its record) and no --sigma was given',
          severity: 'info',
          metric: 'certified-accuracy',
          value: 'not evaluated',
          evidence: { record: lookup.path, noiseSigma: recSigma ?? null },
        }));
        details['smoothing'] = { ran: false, reason: 'no sigma: not noise-trained per the record, no --sigma' };
      } else {
        const c = Math.min(size.cert, ctx.x.shape[0]!);
        const xs = sliceRows(ctx.x, 0, c);
        const ys = ctx.y.subarray(0, c);
        progress('certify', 0, 1);
        const res = await smoothCertify(model, xs, { sigma, n: size.n, n0: size.n0, alpha: SMOOTHING_ALPHA, seed });
        progress('certify', 1, 1);
        const s = smoothingSummary(res, ys, sigma, norm, eps);
        metrics['certified-accuracy'] = s.certifiedAccuracy;
        details['smoothing'] = {
          ran: true,
          sigma,
          sigmaFrom: ctx.options?.sigma !== undefined ? '--sigma' : 'training record',
          examples: c,
          indices: Array.from(ctx.indices.subarray(0, c)),
          settings: res.settings,
          radius: s.radius,
          certifiedAccuracy: s.certifiedAccuracy,
          curve: s.curve,
          abstentions: res.abstentions,
          warnings: res.warnings,
          perExample: Array.from({ length: c }, (_, i) => ({ index: ctx.indices[i], label: ys[i], prediction: res.prediction[i], radius: res.radius[i], pALower: res.pALower[i] })),
          seconds: res.seconds,
        };
        blocks.push({ kind: 'metrics', id: 'smoothing-metrics', items: [
          { label: `certified accuracy at L2 radius ${+s.radius.toPrecision(4)}`, value: s.certifiedAccuracy, format: 'percent', metric: 'certified-accuracy' },
          { label: 'sigma', value: sigma, format: 'number' },
          { label: 'examples certified', value: c, format: 'count' },
          { label: 'abstentions', value: res.abstentions, format: 'count' },
          { label: 'samples n / n0', value: `${size.n} / ${size.n0}`, format: 'text' },
          { label: 'certification time', value: res.seconds, format: 'seconds' },
        ] });
        blocks.push({ kind: 'chart', id: 'certified-accuracy', caption: `Certified accuracy of the smoothed classifier against L2 radius (Cohen et al. 2019; sigma ${sigma}, n ${size.n}, n0 ${size.n0}, alpha ${SMOOTHING_ALPHA}, ${c} examples)`, xLabel: 'L2 radius', yLabel: 'certified accuracy', yRange: [0, 1], yFormat: 'percent', series: [{ name: 'certified accuracy', style: 'line', points: s.curve.map((p) => ({ x: p.radius, y: p.accuracy })) }] });
        blocks.push({ kind: 'table', id: 'certified-points', caption: 'Certified accuracy per radius', columns: [{ key: 'radius', label: 'L2 radius', format: 'number' }, { key: 'accuracy', label: 'certified accuracy', format: 'percent' }], rows: s.curve.map((p) => ({ radius: p.radius, accuracy: p.accuracy })) });
        for (const w of res.warnings) notes.push(`Smoothing: ${w}.`);
        findings.push(makeFinding('hardening-certified-robustness', {
          title: `Certified accuracy ${(100 * s.certifiedAccuracy).toFixed(1)}% at L2 radius ${+s.radius.toPrecision(4)} (randomized smoothing, sigma ${sigma})`,
          severity: certifiedSeverity(s.certifiedAccuracy),
          metric: 'certified-accuracy',
          value: s.certifiedAccuracy,
          threshold: ctx.gates.find((g) => g.metric === 'certified-accuracy')?.value ?? null,
          evidence: { sigma, radius: s.radius, n: size.n, n0: size.n0, alpha: SMOOTHING_ALPHA, examples: c, abstentions: res.abstentions, curve: s.curve },
        }));
      }
      lap('smoothing');
    } catch (e) {
      partFailed('smoothing', e);
    }

    // --- the feature-squeezing detector ---
    const total = ctx.dataset?.x.shape[0] ?? 0;
    if (parts.has('detector')) try {
      const a = await adv();
      lap('adversarial');
      const m = Math.min(size.clean, Math.floor(total / 2));
      if (!a) details['detector'] = { ran: false, reason: 'no adversarial examples: the evasion section did not run and the model has no gradients' };
      else if (m < 20) details['detector'] = { ran: false, reason: `too little clean data to fit the detector (${total} rows; at least 40 are needed)` };
      else {
        progress('detector', 0, 3);
        const rows = sampleOutside(total, ctx.indices, 2 * m, seed ^ 0x51ee2e);
        const fitX = gatherRows(ctx.dataset!.x, rows.subarray(0, m));
        const testX = gatherRows(ctx.dataset!.x, rows.subarray(m));
        // Xu et al.'s settings: 1-bit depth and a 2×2 median on grey images, 5 bits and the median on colour, bit
        // depth alone on inputs that are not images
        const shape = ctx.x.shape;
        const grey = shape.length === 4 && shape[1] === 1;
        const img = shape.length === 4;
        const sq: [string, Squeezer][] = [[`bit depth ${grey ? 1 : 5}`, bitDepth(grey ? 1 : 5, model.bounds)], ...(img ? [['median 2×2', medianFilter(2)] as [string, Squeezer]] : [])];
        const squeezers = sq.map(([, f]) => f);
        const squeezerNames = sq.map(([n]) => n).join(' + ');
        const det = featureSqueezing(model, squeezers);
        const fit = await det.fit(fitX, DETECTOR_FPR);
        const threshold = fit.threshold;
        const clean = await det.score(testX);
        progress('detector', 1, 3);
        const pos = Array.from(a.success).map((s, i) => (s ? i : -1)).filter((i) => i >= 0);
        const advScores = pos.length ? await det.score(gatherRows(a.adversarial, pos)) : new Float64Array(0);
        const tpr = pos.length ? advScores.filter((v) => v > threshold).length / pos.length : NaN;
        const heldFpr = clean.filter((v) => v > threshold).length / clean.length;
        const det0: Record<string, unknown> = { ran: true, squeezers: sq.map(([n]) => n), fpr: DETECTOR_FPR, fitN: m, testN: m, fitRows: Array.from(rows.subarray(0, m)), testRows: Array.from(rows.subarray(m)), threshold, fitFpr: fit.fpr, heldOutFpr: heldFpr, positives: pos.length, source: a.source, tpr: pos.length ? tpr : null };
        if (pos.length > 0) {
          const roc = rocCurve([...advScores, ...clean], [...pos.map(() => true), ...Array.from(clean, () => false)]);
          det0['auc'] = roc.auc;
          det0['roc'] = rocPoints(roc);
          metrics['detector-tpr'] = tpr;
          metrics['detector-auc'] = roc.auc;
          blocks.push({ kind: 'chart', id: 'detector-roc', caption: `Feature-squeezing detector ROC: ${pos.length} adversarial examples from ${a.description} against ${m} held-out clean examples (AUC ${roc.auc.toFixed(3)})`, xLabel: 'false-positive rate (clean flagged)', yLabel: 'true-positive rate (adversarial flagged)', yRange: [0, 1], yFormat: 'percent', series: [{ name: 'ROC', style: 'line', points: rocPoints(roc) }, { name: 'fitted threshold', style: 'points', points: [{ x: heldFpr, y: tpr }] }] });
          if (tpr < 0.5) {
            findings.push(makeFinding('hardening-detector-weak', {
              title: `The feature-squeezing detector flags only ${(100 * tpr).toFixed(1)}% of the scan's adversarial examples at its ${100 * DETECTOR_FPR}% FPR threshold`,
              metric: 'detector-tpr',
              value: tpr,
              threshold: 0.5,
              evidence: { threshold, heldOutFpr: heldFpr, positives: pos.length, auc: roc.auc },
            }));
          }
        }
        // plain against adaptive, on the same examples
        const nA = Math.min(size.adaptive, a.n);
        const rowsA = Array.from({ length: nA }, (_, i) => i);
        const xA = sliceRows(ctx.x, 0, nA);
        const yA = ctx.y.subarray(0, nA);
        const cleanPredA = argmax(await model.predict(xA));
        const attackedA = rowsA.filter((i) => cleanPredA[i] === yA[i]);
        const advA = sliceRows(a.adversarial, 0, nA);
        const plainFlags = await det.decide(advA);
        const plainPred = argmax(await model.predict(advA));
        const rateRow = (name: string, short: string, pred: Int32Array, flags: Uint8Array) => {
          const mis = attackedA.filter((i) => pred[i] !== yA[i]);
          const flagged = mis.filter((i) => flags[i] === 1).length;
          const evaded = mis.length - flagged;
          return { attack: name, short, attacked: attackedA.length, misclassified: mis.length, flagged, evaded, evasionRate: attackedA.length ? evaded / attackedA.length : 0, tpr: mis.length ? flagged / mis.length : null };
        };
        const rowsT = [rateRow(`plain: ${a.source === 'evasion' ? 'evasion ensemble' : `PGD-${size.steps}`}`, 'plain', plainPred, plainFlags)];
        progress('detector', 2, 3);
        if (white) {
          const am = squeezeAdaptiveModel(model, squeezers);
          const r = await pgd(am, xA, yA, { eps, norm, steps: size.steps, seed });
          const adPred = argmax(await model.predict(r.adversarial));
          const adFlags = await det.decide(r.adversarial);
          const row = rateRow(`adaptive: PGD-${size.steps} on mean logits of f(x), f(squeeze(x)) (BPDA)`, 'mean-logit PGD', adPred, adFlags);
          rowsT.push(row);
          const candidates: [Int32Array, Uint8Array][] = [[plainPred, plainFlags], [adPred, adFlags]];
          // the detector-aware attack costs several times the rest of the part: budget quick runs it only when asked
          // (margins of every view plus the detector's own L1 score, with a per-example λ search; the section re-scores
          // its adversarial inputs itself)
          if (ctx.settings.budget !== 'quick' || explicit) {
            try {
              const r2 = await squeezeAdaptiveAttack(det, xA, yA, { eps, norm, steps: size.steps, seed });
              const p2 = argmax(await model.predict(r2.adversarial));
              const f2 = await det.decide(r2.adversarial);
              rowsT.push(rateRow(`adaptive: detector-aware, margins + L1 score with a λ search, ${size.steps} steps per round (BPDA)`, 'detector-aware', p2, f2));
              candidates.push([p2, f2]);
            } catch (e) {
              if (!(e instanceof BulwarkError) || e.code === 'BULWARK_E_INTERNAL') throw e;
              notes.push(`The detector-aware attack could not run: ${e.code}: ${e.message}.`);
            }
          }
          // the attacker keeps, per example, whichever input gets through
          const evades = (pred: Int32Array, flags: Uint8Array, i: number) => pred[i] !== yA[i] && flags[i] === 0;
          const pick = (i: number) => candidates.find(([p, f]) => evades(p, f, i)) ?? candidates[candidates.length - 1]!;
          const bestPred = Int32Array.from({ length: nA }, (_, i) => pick(i)[0][i]!);
          const bestFlags = Uint8Array.from({ length: nA }, (_, i) => pick(i)[1][i]!);
          const both = rateRow(`adaptive attacker: the best of the ${candidates.length} per example`, 'best', bestPred, bestFlags);
          rowsT.push(both);
          metrics['detector-adaptive-evasion'] = both.evasionRate;
          findings.push(makeFinding('hardening-detector-evaded', {
            title: `An attacker who knows the detector evades it on ${(100 * both.evasionRate).toFixed(1)}% of the examples (misclassified and not flagged; ${rowsT.slice(0, -1).map((r) => `${r.short} ${(100 * r.evasionRate).toFixed(1)}%`).join(', ')})`,
            severity: detectorEvasionSeverity(both.evasionRate),
            metric: 'detector-adaptive-evasion',
            value: both.evasionRate,
            threshold: ctx.gates.find((g) => g.metric === 'detector-adaptive-evasion')?.value ?? 0.1,
            evidence: { threat: { norm, eps }, threshold, attacks: rowsT, note: 'adaptive attacks give a lower bound on what an attacker achieves' },
          }));
        } else notes.push('The adaptive attack on the detector needs gradients; the model has none.');
        progress('detector', 3, 3);
        lap('detector');
        det0['attacks'] = rowsT;
        details['detector'] = det0;
        blocks.push({ kind: 'metrics', id: 'detector-metrics', items: [
          { label: `detector TPR at ${100 * DETECTOR_FPR}% FPR threshold`, value: pos.length ? tpr : 'no adversarial examples', format: pos.length ? 'percent' : 'text', metric: 'detector-tpr' },
          { label: 'held-out clean FPR', value: heldFpr, format: 'percent' },
          { label: 'threshold (L1 distance)', value: threshold, format: 'number' },
          ...(metrics['detector-auc'] !== undefined ? [{ label: 'detector AUC', value: metrics['detector-auc'], format: 'number' as const, metric: 'detector-auc' }] : []),
          ...(metrics['detector-adaptive-evasion'] !== undefined ? [{ label: 'adaptive evasion rate', value: metrics['detector-adaptive-evasion'], format: 'percent' as const, metric: 'detector-adaptive-evasion' }] : []),
        ] });
        blocks.push({
          kind: 'table',
          id: 'detector-attacks',
          caption: `Feature squeezing (${squeezerNames}, Xu et al. 2018) at the fitted threshold, plain against adaptive attacks on the first ${nA} examples (${threat})`,
          columns: [
            { key: 'attack', label: 'attack', format: 'text' },
            { key: 'attacked', label: 'attacked', format: 'count' },
            { key: 'misclassified', label: 'misclassified', format: 'count' },
            { key: 'flagged', label: 'flagged', format: 'count' },
            { key: 'evaded', label: 'evaded (misclassified, not flagged)', format: 'count' },
            { key: 'evasionRate', label: 'evasion rate', format: 'percent' },
            { key: 'tpr', label: 'TPR', format: 'percent' },
          ],
          rows: rowsT,
        });
      }
    } catch (e) {
      partFailed('detector', e);
    }

    // --- preprocessing defenses: transferred against adaptive (BPDA) ---
    if (parts.has('preprocessing')) try {
      const a = await adv();
      if (!a) details['preprocessing'] = { ran: false, reason: 'no adversarial examples: the evasion section did not run and the model has no gradients' };
      else if (!white) details['preprocessing'] = { ran: false, reason: 'BPDA needs gradients; the model has none' };
      else {
        const image = ctx.x.shape.length === 4;
        const channels = image ? ctx.x.shape[1]! : 0;
        const bits = channels === 1 ? 1 : 5;
        const defenses: [string, Squeezer][] = [
          ...(image ? [['median 3×3', medianFilter(3)], ['JPEG-like q 0.1', jpegLike(0.1, model.bounds)]] as [string, Squeezer][] : []),
          [`bit depth ${bits}`, bitDepth(bits, model.bounds)],
        ];
        const nA = Math.min(size.adaptive, a.n);
        const xA = sliceRows(ctx.x, 0, nA);
        const yA = ctx.y.subarray(0, nA);
        const advA = sliceRows(a.adversarial, 0, nA);
        const rows: Record<string, number | string | null>[] = [];
        const base = argmax(await model.predict(xA));
        const baseAdv = argmax(await model.predict(advA));
        rows.push({ defense: 'none', clean: accuracyOf(base, yA), transferred: accuracyOf(baseAdv, yA), adaptive: accuracyOf(baseAdv, yA), gap: 0 });
        let k = 0;
        for (const [name, t] of defenses) {
          progress('preprocessing', k++, defenses.length);
          const pm = preprocessedModel(model, t);
          const clean = accuracyOf(argmax(await pm.predict(xA)), yA);
          const transferred = accuracyOf(argmax(await pm.predict(advA)), yA);
          const r = await pgd(pm, xA, yA, { eps, norm, steps: size.steps, seed });
          const adaptive = r.summary.robustAccuracy;
          rows.push({ defense: name, clean, transferred, adaptive, gap: transferred - adaptive });
        }
        progress('preprocessing', defenses.length, defenses.length);
        lap('preprocessing');
        const defended = rows.slice(1);
        const best = Math.max(...defended.map((r) => r['adaptive'] as number));
        metrics['preprocessing-adaptive-accuracy'] = best;
        details['preprocessing'] = { ran: true, examples: nA, steps: size.steps, source: a.source, defenses: rows };
        blocks.push({
          kind: 'table',
          id: 'preprocessing-defenses',
          caption: `Preprocessing defenses on the first ${nA} examples (${threat}): accuracy on clean inputs, on adversarial examples transferred from the undefended model (${a.description}), and under PGD-${size.steps} through the defense by BPDA (the adaptive attack, Athalye et al. 2018)`,
          columns: [
            { key: 'defense', label: 'defense', format: 'text' },
            { key: 'clean', label: 'clean accuracy', format: 'percent' },
            { key: 'transferred', label: 'plain (transferred) accuracy', format: 'percent' },
            { key: 'adaptive', label: 'adaptive (BPDA) accuracy', format: 'percent' },
            { key: 'gap', label: 'overstated by', format: 'percent' },
          ],
          rows,
        });
        const worst = defended.reduce((w, r) => ((r['gap'] as number) > (w['gap'] as number) ? r : w), defended[0]!);
        if ((worst['gap'] as number) >= 0.1) {
          findings.push(makeFinding('hardening-preprocessing-bypassed', {
            title: `Preprocessing overstates robustness: ${worst['defense']} keeps ${(100 * (worst['transferred'] as number)).toFixed(1)}% against transferred examples but ${(100 * (worst['adaptive'] as number)).toFixed(1)}% under BPDA`,
            // The figure of the defense the title names (the section's gate metric is the best defense's accuracy).
            metric: 'preprocessing-overstated-by',
            value: worst['gap'] as number,
            threshold: null,
            evidence: { threat: { norm, eps }, examples: nA, defense: worst['defense'], defenses: rows },
          }));
        }
      }
    } catch (e) {
      partFailed('preprocessing', e);
    }

    for (const part of ['detector', 'preprocessing'] as const) {
      const d = details[part] as { ran?: boolean; reason?: string } | undefined;
      if (d && d.ran === false) notes.push(`${part === 'detector' ? 'Detector' : 'Preprocessing defenses'} not evaluated: ${d.reason}.`);
    }
    details['timings'] = timings;
    if (notes.length > 0) blocks.push({ kind: 'text', text: notes.join(' ') });
    blocks.push({ kind: 'text', text: 'Methods: randomized smoothing CERTIFY (Cohen, Rosenfeld & Kolter 2019, arXiv:1902.02918); feature squeezing (Xu, Evans & Qi 2018, arXiv:1704.01155) with its threshold at the 95th percentile of clean scores; BPDA (Athalye, Carlini & Wagner 2018, arXiv:1802.00420). A defense is judged by the adaptive attack, never by transferred examples alone.' });
    const ran = ['smoothing', 'detector', 'preprocessing'].filter((p) => (details[p] as { ran?: boolean } | undefined)?.ran);
    const bits: string[] = [];
    if (parts.has('record')) bits.push(`Training method: ${methodText(rec)}.`);
    if (metrics['certified-accuracy'] !== undefined) bits.push(`Certified accuracy ${(100 * metrics['certified-accuracy']).toFixed(1)}% at L2 radius ${(details['smoothing'] as { radius: number }).radius}.`);
    if (metrics['detector-tpr'] !== undefined) bits.push(`The feature-squeezing detector flags ${(100 * metrics['detector-tpr']).toFixed(1)}% of the scan's adversarial examples at a ${100 * DETECTOR_FPR}% FPR threshold${metrics['detector-adaptive-evasion'] !== undefined ? `; an adaptive attack evades it on ${(100 * metrics['detector-adaptive-evasion']).toFixed(1)}% of examples` : ''}.`);
    if (metrics['preprocessing-adaptive-accuracy'] !== undefined) {
      const rows = (details['preprocessing'] as { defenses: { defense: string; adaptive: number }[] }).defenses.slice(1);
      const best = rows.find((r) => r.adaptive === metrics['preprocessing-adaptive-accuracy'])!;
      bits.push(`The best preprocessing defense, ${best.defense}, keeps ${(100 * best.adaptive).toFixed(1)}% under BPDA.`);
    }
    // A section that evaluated nothing is skipped, not passed, and says why in its summary
    const nothing = ran.length === 0 && !parts.has('record');
    if (nothing) bits.push(nothingEvaluated(notes));
    return {
      id: 'hardening',
      title: 'Hardening: defenses and certificates',
      domain: 'hardening',
      status: nothing && findings.length === 0 ? 'skipped' : statusFromFindings(findings),
      summary: bits.join(' '),
      metrics,
      findings,
      blocks,
      details,
      seconds: (performance.now() - t0) / 1000,
    };
  },
};

/** Validates --sigma. */
export function checkSigma(sigma: number): void {
  if (!(Number.isFinite(sigma) && sigma > 0)) throw new BulwarkError('BULWARK_E_SMOOTHING', `--sigma must be a finite noise level > 0, got ${sigma}`, { hint: 'Pass the sigma the model was trained with (bulwark train --noise-sigma S), e.g. --sigma 0.25.' });
}

/**
 * The privacy section: what the model reveals about its training data and its function.
 * - differential privacy: (epsilon, delta, sigma) of a DP-SGD run from the training record (M.onnx.train.json);
 * - membership inference (with --train-data): the loss-threshold attack (Yeom et al. 2018) and, with --shadows K,
 *   offline LiRA (Carlini et al. 2022) on members against holdout data (default: the scan's --data): ROC, AUC and
 *   TPR at 0.1% and 1% FPR;
 * - extraction: the agreement of a Knockoff-Nets clone (Orekondy et al. 2019) with the model against queries spent;
 * - inversion: MI-Face class representatives (Fredrikson et al. 2015) as images, with their similarity to the real
 *   class means.
 * Extraction and inversion train or optimize for seconds to minutes, so they run by default only at budget standard
 * and thorough, or when asked (`--sections privacy`, `--sections privacy.inversion`).
 */
import { gatherRows, sliceRows } from '../../core/tensor.js';
import type { Dataset } from '../../data/index.js';
import { buildArch, train, type Network } from '../../nn/index.js';
import type { OptimizerName, Schedule } from '../../nn/optim.js';
import { trainDpSgd } from '../../privacy/dpsgd.js';
import { knockoffNets } from '../../privacy/extraction/index.js';
import { classMeans, invertClasses, scoreReconstructions } from '../../privacy/inversion/index.js';
import { auditMembership, type AuditReport, type ShadowOptions } from '../../privacy/membership/index.js';
import type { Model, OnnxModel } from '../../runtime/model.js';
import { encodePng, imagePixels, pngDataUri } from '../png.js';
import { makeFinding } from '../taxonomy.js';
import type { ImageRow, ReportSection, Severity } from '../types.js';
import { nothingEvaluated, sectionParts, sectionScaffold, statusFromFindings, type AssessmentContext, type SectionProvider } from './common.js';
import { budgetIndex, readTrainRecord, rocPoints, sampleOutside, type TrainRecord } from './record.js';

/** Gate-able metrics of the privacy section. */
export const PRIVACY_METRICS = ['dp-epsilon', 'mia-auc', 'mia-tpr-at-1fpr', 'extraction-fidelity', 'inversion-own-class-rate'] as const;

/** Parts of the section (`--sections privacy.<part>`). */
export const PRIVACY_PARTS = ['dp', 'membership', 'extraction', 'inversion'] as const;

/** Sizes per budget (quick, standard, thorough). */
export const PRIVACY_SIZES = [
  { members: 500, extraction: { budget: 300, checkpoints: [100, 300], epochs: 5, eval: 200 }, inversion: { steps: 50, restarts: 2 } },
  { members: 2000, extraction: { budget: 1000, checkpoints: [100, 300, 1000], epochs: 8, eval: 500 }, inversion: { steps: 100, restarts: 4 } },
  { members: 5000, extraction: { budget: 3000, checkpoints: [100, 300, 1000, 3000], epochs: 10, eval: 1000 }, inversion: { steps: 300, restarts: 6 } },
] as const;

/** Severity of a DP guarantee. */
export function dpSeverity(epsilon: number, delta: number, n: number | undefined, isPrivate: boolean | undefined): Severity {
  let s: Severity = epsilon <= 1 ? 'info' : epsilon <= 10 ? 'low' : 'medium';
  if ((n !== undefined && n > 0 && delta > 1 / n) || isPrivate === false) s = s === 'info' || s === 'low' ? 'medium' : s;
  return s;
}

/** Severity of a membership attack from its TPR at 1% FPR relative to chance. */
export function membershipSeverity(tprAt1: number): Severity {
  const ratio = tprAt1 / 0.01;
  return ratio >= 10 ? 'high' : ratio >= 3 ? 'medium' : ratio >= 1.5 ? 'low' : 'info';
}

/** Severity of an extraction from the clone's final agreement with the model. */
export function extractionSeverity(fidelity: number): Severity {
  return fidelity >= 0.9 ? 'medium' : fidelity >= 0.5 ? 'low' : 'info';
}

/** Severity of an inversion from the share of classes whose reconstruction is nearest its own class mean. */
export function inversionSeverity(rate: number): Severity {
  return rate >= 0.8 ? 'medium' : rate >= 0.5 ? 'low' : 'info';
}

function subset(d: Dataset, n: number, seed: number, name: string): Dataset {
  const total = d.x.shape[0]!;
  if (n >= total) return d;
  const rows = sampleOutside(total, [], n, seed).sort();
  return { name, x: gatherRows(d.x, rows), y: d.y ? Int32Array.from(rows, (i) => d.y![i]!) : undefined, numClasses: d.numClasses };
}

function tprAt(r: AuditReport, fpr: number): { tpr: number; belowResolution: boolean } {
  const t = r.tprAtFpr.find((p) => p.fpr === fpr);
  return { tpr: t?.tpr ?? NaN, belowResolution: t?.belowResolution ?? true };
}

/** LiRA shadow options from the model's metadata and training record (the target's recipe). */
function shadowOptions(model: Model, rec: TrainRecord | undefined, shadows: number, inputShape: number[], seed: number, threads: number | undefined): ShadowOptions | string {
  const meta = (model as Partial<OnnxModel>).graph?.metadata as Record<string, string> | undefined;
  const arch = meta?.['bulwark.arch'] ?? rec?.arch;
  if (!arch) return 'LiRA needs the shadow architecture: the model has no bulwark.arch metadata and no training record names one';
  const h = (rec?.hyperparameters ?? {}) as { epochs?: number; batchSize?: number; lr?: number; optimizer?: OptimizerName; momentum?: number; nesterov?: boolean; weightDecay?: number; schedule?: Schedule; labelSmoothing?: number };
  const epochs = h.epochs ?? 20;
  const lr = h.lr ?? 3e-3;
  const batchSize = h.batchSize ?? rec?.privacy?.expectedBatchSize ?? 64;
  const optimizer = h.optimizer ?? 'adam';
  const dp = rec?.privacy;
  const numClasses = model.numClasses;
  return {
    shadows,
    seed,
    makeNetwork: (i: number) => buildArch(arch, { inputShape, numClasses, seed: seed * 1000 + i + 1 }),
    trainer: async (net: Network, data: Dataset, s: number): Promise<void> => {
      if (dp) {
        // shadows of a DP target follow its DP recipe; their noise is the auditor's and need not be private
        await trainDpSgd(net, data, { epochs, batchSize: Math.min(batchSize, data.x.shape[0]!), lr, optimizer, momentum: h.momentum ?? 0, noiseMultiplier: dp.noiseMultiplier, maxGradNorm: dp.maxGradNorm ?? 1, delta: dp.delta, noise: { seed: s }, seed: s, progress: false, ...(threads === undefined ? {} : { threads }) });
      } else {
        await train(net, data, { epochs, batchSize, lr, optimizer, momentum: h.momentum ?? 0.9, nesterov: h.nesterov ?? false, schedule: h.schedule ?? { kind: 'onecycle' }, labelSmoothing: h.labelSmoothing ?? 0, ...(h.weightDecay === undefined ? {} : { weightDecay: h.weightDecay }), seed: s, progress: false, ...(threads === undefined ? {} : { threads }) });
      }
    },
    ...(threads === undefined ? {} : { threads }),
  };
}

/** The privacy section provider. */
export const privacyProvider: SectionProvider = {
  id: 'privacy',
  title: 'Privacy: training data and model confidentiality',
  domain: 'privacy',
  metrics: [...PRIVACY_METRICS],
  async run(ctx: AssessmentContext): Promise<ReportSection> {
    const t0 = performance.now();
    const model = ctx.model as Model;
    const b = budgetIndex(ctx.settings.budget);
    const size = PRIVACY_SIZES[b];
    const { parts, explicit } = sectionParts(ctx, 'privacy', PRIVACY_PARTS, b === 0 ? ['dp', 'membership'] : PRIVACY_PARTS);
    const seed = ctx.settings.seed;
    const threads = ctx.options?.threads;
    const { blocks, findings, metrics, details, notes, partFailed, progress } = sectionScaffold(ctx, 'privacy', parts);
    const lookup = readTrainRecord(ctx.modelPath, ctx.modelSha256);
    const rec = lookup.record;
    const white = typeof model.lossAndGradient === 'function';
    const summary: string[] = [];

    // --- differential privacy from the training record ---
    if (parts.has('dp')) {
      const dp = rec?.privacy;
      if (dp && typeof dp.epsilon === 'number') {
        const n = rec?.data?.n;
        const eps = dp.epsilon;
        metrics['dp-epsilon'] = eps;
        details['dp'] = { record: lookup.path, ...dp, trainingExamples: n ?? null };
        blocks.push({ kind: 'metrics', id: 'dp-metrics', items: [
          { label: 'epsilon (DP-SGD)', value: eps, format: 'number', metric: 'dp-epsilon' },
          { label: 'delta', value: dp.delta, format: 'number' },
          { label: 'noise multiplier sigma', value: dp.noiseMultiplier, format: 'number' },
          ...(dp.sampleRate !== undefined ? [{ label: 'sample rate q', value: dp.sampleRate, format: 'number' as const }] : []),
          ...(dp.steps !== undefined ? [{ label: 'steps', value: dp.steps, format: 'count' as const }] : []),
          ...(dp.maxGradNorm !== undefined ? [{ label: 'clipping norm C', value: dp.maxGradNorm, format: 'number' as const }] : []),
          { label: 'accountant', value: dp.accountant ?? 'unknown', format: 'text' },
          { label: 'noise source', value: dp.private === false ? 'seeded (NOT PRIVATE)' : 'CSPRNG', format: 'text' },
        ] });
        const eh = (rec?.history ?? []).filter((e) => typeof e.epsilon === 'number');
        if (eh.length > 1) blocks.push({ kind: 'chart', id: 'dp-epsilon-curve', caption: 'Epsilon spent after each epoch (from the training record)', xLabel: 'epoch', yLabel: 'epsilon', yFormat: 'number', series: [{ name: 'epsilon', style: 'line', points: eh.map((e) => ({ x: e.epoch, y: e.epsilon! })) }] });
        const tooBigDelta = n !== undefined && n > 0 && dp.delta > 1 / n;
        findings.push(makeFinding('privacy-dp-epsilon', {
          title: `Trained with DP-SGD: epsilon ${+eps.toPrecision(4)} at delta ${dp.delta}${dp.private === false ? ' (seeded noise: NOT PRIVATE)' : ''}${tooBigDelta ? ` (delta above 1/n = ${(1 / n!).toPrecision(3)})` : ''}`,
          severity: dpSeverity(eps, dp.delta, n, dp.private),
          metric: 'dp-epsilon',
          value: eps,
          threshold: ctx.gates.find((g) => g.metric === 'dp-epsilon')?.value ?? 10,
          evidence: { delta: dp.delta, noiseMultiplier: dp.noiseMultiplier, sampleRate: dp.sampleRate ?? null, steps: dp.steps ?? null, accountant: dp.accountant ?? null, private: dp.private ?? null, trainingExamples: n ?? null, record: lookup.path },
        }));
        summary.push(`Trained with DP-SGD at epsilon ${+eps.toPrecision(4)}, delta ${dp.delta}.`);
      } else {
        details['dp'] = { record: lookup.path, found: false, problem: lookup.problem ?? 'the record has no privacy section' };
        findings.push(makeFinding('privacy-no-dp', {
          title: rec ? 'Not trained with differential privacy (the training record has no DP-SGD section)' : `No differential-privacy guarantee on record: ${lookup.problem}`,
          metric: 'dp-epsilon',
          value: 'none',
          evidence: { record: lookup.path, problem: lookup.problem ?? null },
        }));
        summary.push(rec ? 'Not trained with differential privacy.' : 'No training record, so no differential-privacy guarantee.');
      }
    }

    // --- membership inference ---
    if (parts.has('membership')) try {
      const td = ctx.options?.trainData;
      if (!td) {
        details['membership'] = { ran: false, reason: 'no --train-data (the members)' };
        if (explicit) notes.push('Membership inference needs the training examples: pass --train-data SPEC (holdout: --data, or --holdout-data).');
      } else {
        const hold = ctx.options?.holdoutData ?? (ctx.dataset ? { spec: ctx.dataSpec, data: { name: ctx.dataSpec, x: ctx.dataset.x, y: ctx.dataset.y, numClasses: model.numClasses } as Dataset } : undefined);
        if (!hold) details['membership'] = { ran: false, reason: 'no holdout data' };
        else {
          const m = Math.min(size.members, td.data.x.shape[0]!, hold.data.x.shape[0]!);
          const members = subset(td.data, m, seed ^ 0x3e3b, `${td.spec} (${m} members)`);
          const holdout = subset(hold.data, m, seed ^ 0x401d, `${hold.spec} (${m} non-members)`);
          progress('membership', 0, 1);
          const audits: AuditReport[] = [await auditMembership(model, members, holdout, { attack: 'loss' })];
          const shadows = ctx.options?.shadows;
          let liraProblem: string | undefined;
          if (shadows !== undefined) {
            const so = shadowOptions(model, rec, shadows, members.x.shape.slice(1), seed, threads);
            if (typeof so === 'string') liraProblem = so;
            else {
              so.onShadow = (done, total) => progress('lira shadows', done, total);
              audits.push(await auditMembership(model, members, holdout, { attack: 'lira', variant: 'offline', shadow: so }));
            }
          }
          progress('membership', 1, 1);
          const rows = audits.map((a) => ({ attack: a.attack, auc: a.auc, tpr01: tprAt(a, 0.001).tpr, tpr1: tprAt(a, 0.01).tpr, balancedAccuracy: a.balancedAccuracy, members: a.members, nonMembers: a.nonMembers }));
          const worstAuc = Math.max(...audits.map((a) => a.auc));
          const worst = audits.reduce((w, a) => (tprAt(a, 0.01).tpr > tprAt(w, 0.01).tpr ? a : w), audits[0]!);
          const tpr1 = tprAt(worst, 0.01);
          metrics['mia-auc'] = worstAuc;
          metrics['mia-tpr-at-1fpr'] = tpr1.tpr;
          details['membership'] = {
            ran: true,
            members: { spec: td.spec, n: m },
            holdout: { spec: hold.spec, n: m },
            fprResolution: 1 / m,
            attacks: audits.map((a) => ({ attack: a.attack, auc: a.auc, tprAtFpr: a.tprAtFpr, balancedAccuracy: a.balancedAccuracy, lira: a.lira, roc: a.roc })),
            ...(liraProblem ? { liraSkipped: liraProblem } : {}),
          };
          if (liraProblem) notes.push(`LiRA not run: ${liraProblem}.`);
          blocks.push({ kind: 'metrics', id: 'membership-metrics', items: [
            { label: 'membership AUC (strongest attack)', value: worstAuc, format: 'number', metric: 'mia-auc' },
            { label: 'TPR at 1% FPR', value: tpr1.tpr, format: 'percent', metric: 'mia-tpr-at-1fpr' },
            { label: 'TPR at 0.1% FPR', value: tprAt(worst, 0.001).tpr, format: 'percent' },
            { label: 'members / non-members', value: `${m} / ${m}`, format: 'text' },
          ] });
          blocks.push({
            kind: 'chart',
            id: 'membership-roc',
            caption: `Membership-inference ROC: ${m} members of ${td.spec} against ${m} non-members of ${hold.spec} (FPR resolution ${(1 / m).toPrecision(2)})`,
            xLabel: 'false-positive rate',
            yLabel: 'true-positive rate',
            yRange: [0, 1],
            yFormat: 'percent',
            series: [
              ...audits.map((a) => ({ name: a.attack, style: 'line' as const, points: rocPoints({ fpr: Float64Array.from(a.roc.fpr), tpr: Float64Array.from(a.roc.tpr) }) })),
              { name: 'chance', style: 'line' as const, points: [{ x: 0, y: 0 }, { x: 1, y: 1 }] },
            ],
          });
          blocks.push({
            kind: 'table',
            id: 'membership-attacks',
            caption: 'Membership-inference attacks (TPR read off the ROC by linear interpolation)',
            columns: [
              { key: 'attack', label: 'attack', format: 'text' },
              { key: 'auc', label: 'AUC', format: 'number' },
              { key: 'tpr01', label: 'TPR at 0.1% FPR', format: 'percent' },
              { key: 'tpr1', label: 'TPR at 1% FPR', format: 'percent' },
              { key: 'balancedAccuracy', label: 'best balanced accuracy', format: 'percent' },
              { key: 'members', label: 'members', format: 'count' },
              { key: 'nonMembers', label: 'non-members', format: 'count' },
            ],
            rows,
          });
          findings.push(makeFinding('privacy-membership-inference', {
            title: `Membership inference (${worst.attack}): TPR ${(100 * tpr1.tpr).toFixed(2)}% at 1% FPR, AUC ${worst.auc.toFixed(3)}`,
            severity: membershipSeverity(tpr1.tpr),
            metric: 'mia-tpr-at-1fpr',
            value: tpr1.tpr,
            threshold: ctx.gates.find((g) => g.metric === 'mia-tpr-at-1fpr')?.value ?? 0.01,
            evidence: { attacks: rows, members: td.spec, holdout: hold.spec, n: m, belowResolution: tpr1.belowResolution },
          }));
          summary.push(`Membership inference: AUC ${worstAuc.toFixed(3)}, TPR ${(100 * tpr1.tpr).toFixed(2)}% at 1% FPR (${worst.attack}).`);
        }
      }
    } catch (e) {
      partFailed('membership', e);
    }

    // --- extraction ---
    if (parts.has('extraction')) try {
      const total = ctx.dataset?.x.shape[0] ?? 0;
      const outside = total - ctx.indices.length;
      const budget = Math.min(size.extraction.budget, outside);
      if (!ctx.dataset || budget < 50) {
        details['extraction'] = { ran: false, reason: `too few data rows outside the assessed examples for a query pool (${Math.max(0, outside)}; at least 50)` };
        notes.push(`Extraction not run: ${(details['extraction'] as { reason: string }).reason}.`);
      } else {
        const evalN = Math.min(size.extraction.eval, ctx.x.shape[0]!);
        const evalSet: Dataset = { name: 'assessed examples', x: sliceRows(ctx.x, 0, evalN), y: ctx.y.slice(0, evalN), numClasses: model.numClasses };
        const rows = sampleOutside(total, ctx.indices, budget, seed ^ 0xe7c7).slice(0, budget);
        const pool: Dataset = { name: `${ctx.dataSpec} (query pool)`, x: gatherRows(ctx.dataset.x, rows), y: undefined, numClasses: undefined };
        const checkpoints = [...size.extraction.checkpoints.filter((c) => c < budget), budget];
        progress('extraction', 0, 1);
        const r = await knockoffNets(model, pool, {
          budget,
          checkpoints,
          evalSet,
          epochs: size.extraction.epochs,
          seed,
          ...(ctx.x.shape.length === 4 ? {} : { arch: 'dense:128,relu,dense:{K}' }),
          ...(threads === undefined ? {} : { threads }),
        });
        progress('extraction', 1, 1);
        const last = r.curve[r.curve.length - 1]!;
        metrics['extraction-fidelity'] = last.fidelity;
        details['extraction'] = { ran: true, attack: 'knockoff-nets (random)', pool: { spec: ctx.dataSpec, n: budget }, evalN, queries: r.queries, evalQueries: r.evalQueries, epochs: size.extraction.epochs, curve: r.curve, seconds: r.seconds };
        blocks.push({ kind: 'chart', id: 'extraction-curve', caption: `Knockoff-Nets clone (random queries from ${ctx.dataSpec} outside the assessed examples, trained on the model's top-1 answers): agreement with the model on ${evalN} assessed examples against queries`, xLabel: 'queries', yLabel: 'agreement', yRange: [0, 1], yFormat: 'percent', series: [
          { name: 'agreement', style: 'line', points: r.curve.map((p) => ({ x: p.queries, y: p.fidelity })) },
          { name: 'clone accuracy', style: 'line', points: r.curve.filter((p) => Number.isFinite(p.accuracy)).map((p) => ({ x: p.queries, y: p.accuracy })) },
        ] });
        blocks.push({ kind: 'table', id: 'extraction-points', caption: 'Extraction curve', columns: [{ key: 'queries', label: 'queries', format: 'count' }, { key: 'fidelity', label: 'agreement', format: 'percent' }, { key: 'accuracy', label: 'clone accuracy', format: 'percent' }], rows: r.curve.map((p) => ({ queries: p.queries, fidelity: p.fidelity, accuracy: Number.isFinite(p.accuracy) ? p.accuracy : null })) });
        findings.push(makeFinding('privacy-model-extraction', {
          title: `A clone trained on ${r.queries} answers agrees with the model on ${(100 * last.fidelity).toFixed(1)}% of held-out inputs`,
          severity: extractionSeverity(last.fidelity),
          metric: 'extraction-fidelity',
          value: last.fidelity,
          threshold: ctx.gates.find((g) => g.metric === 'extraction-fidelity')?.value ?? 0.9,
          evidence: { queries: r.queries, curve: r.curve, evalN },
        }));
        summary.push(`A Knockoff clone reaches ${(100 * last.fidelity).toFixed(1)}% agreement after ${r.queries} queries.`);
      }
    } catch (e) {
      partFailed('extraction', e);
    }

    // --- inversion ---
    if (parts.has('inversion')) try {
      const shape = ctx.x.shape;
      const image = shape.length === 4 && (shape[1] === 1 || shape[1] === 3);
      if (!white || !image) {
        details['inversion'] = { ran: false, reason: !white ? 'MI-Face needs gradients; the model has none' : 'MI-Face images need [N,1|3,H,W] inputs' };
        notes.push(`Inversion not run: ${(details['inversion'] as { reason: string }).reason}.`);
      } else {
        const k = model.numClasses;
        const classes = Array.from({ length: Math.min(k, 10) }, (_, i) => i);
        const ref: Dataset = ctx.options?.trainData?.data ?? { name: ctx.dataSpec, x: ctx.dataset?.x ?? ctx.x, y: ctx.dataset?.y ?? ctx.y, numClasses: k };
        const refSpec = ctx.options?.trainData?.spec ?? ctx.dataSpec;
        progress('inversion', 0, 1);
        const r = await invertClasses(model, classes, { steps: size.inversion.steps, restarts: size.inversion.restarts, seed });
        progress('inversion', 1, 1);
        const { means } = classMeans(ref, k);
        const range = model.bounds[1] - model.bounds[0];
        const centered = scoreReconstructions(r, means, { range, center: true });
        const plain = scoreReconstructions(r, means, { range });
        const rate = centered.ownNearestRate;
        metrics['inversion-own-class-rate'] = rate;
        const [, c, h, w] = shape as [number, number, number, number];
        const d = c * h * w;
        const png = (data: Float32Array, off: number) => {
          const px = imagePixels(data, off, c, h, w, model.bounds);
          return pngDataUri(encodePng(px.pixels, w, h, px.channels));
        };
        const rowsI: ImageRow[] = classes.map((cls, i) => {
          const s = centered.scores[i]!;
          return {
            label: `class ${cls}: p ${r.confidence[i]!.toFixed(3)}, cosine to its class mean ${plain.scores[i]!.cosine.toFixed(3)} (centered ${s.cosine.toFixed(3)}), SSIM ${s.ssim.toFixed(3)}, nearest mean ${s.nearestMean}`,
            images: [
              { caption: `reconstruction ${cls}`, png: png(r.images.data, i * d), width: w, height: h },
              { caption: `class mean ${cls}`, png: png(means.data, cls * d), width: w, height: h },
            ],
          };
        });
        details['inversion'] = {
          ran: true,
          classes,
          steps: size.inversion.steps,
          restarts: size.inversion.restarts,
          means: { spec: refSpec },
          ownNearestRate: rate,
          scores: classes.map((cls, i) => ({ class: cls, confidence: r.confidence[i], cosine: plain.scores[i]!.cosine, centeredCosine: centered.scores[i]!.cosine, ssim: centered.scores[i]!.ssim, nearestMean: centered.scores[i]!.nearestMean, margin: centered.scores[i]!.margin })),
          queries: r.queries,
          seconds: r.seconds,
        };
        blocks.push({ kind: 'images', id: 'inversion-images', caption: `MI-Face reconstructions (${size.inversion.restarts} restarts × ${size.inversion.steps} steps, averaged) beside the class means of ${refSpec}`, rows: rowsI });
        blocks.push({ kind: 'table', id: 'inversion-scores', caption: 'Similarity of each reconstruction to its class mean', columns: [
          { key: 'class', label: 'class', format: 'count' },
          { key: 'confidence', label: 'model confidence', format: 'percent' },
          { key: 'cosine', label: 'cosine', format: 'number' },
          { key: 'centeredCosine', label: 'centered cosine', format: 'number' },
          { key: 'ssim', label: 'SSIM', format: 'number' },
          { key: 'nearestMean', label: 'nearest class mean', format: 'count' },
        ], rows: (details['inversion'] as { scores: Record<string, number>[] }).scores.map((s) => ({ class: s['class']!, confidence: s['confidence']!, cosine: s['cosine']!, centeredCosine: s['centeredCosine']!, ssim: s['ssim']!, nearestMean: s['nearestMean']! })) });
        findings.push(makeFinding('privacy-model-inversion', {
          title: `MI-Face reconstructions of ${Math.round(rate * classes.length)} of ${classes.length} classes are nearest their own class mean`,
          severity: inversionSeverity(rate),
          metric: 'inversion-own-class-rate',
          value: rate,
          evidence: { classes: classes.length, steps: size.inversion.steps, restarts: size.inversion.restarts, means: refSpec },
        }));
        summary.push(`Model inversion: ${Math.round(rate * classes.length)} of ${classes.length} class reconstructions resemble their class.`);
      }
    } catch (e) {
      partFailed('inversion', e);
    }

    if (!parts.has('extraction') && !parts.has('inversion') && !explicit) notes.push('Extraction and inversion run at budget standard and thorough, or with --sections privacy.');
    if (notes.length > 0) blocks.push({ kind: 'text', text: notes.join(' ') });
    return {
      id: 'privacy',
      title: 'Privacy: training data and model confidentiality',
      domain: 'privacy',
      // a section that evaluated nothing is skipped, not passed, and says why in its summary
      status: summary.length === 0 && findings.length === 0 ? 'skipped' : statusFromFindings(findings),
      summary: summary.join(' ') || nothingEvaluated(notes),
      metrics,
      findings,
      blocks,
      details,
      seconds: (performance.now() - t0) / 1000,
    };
  },
};

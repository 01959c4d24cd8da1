/**
 * The evasion section: the robustness evaluation (AutoAttack-style ensemble, curve, gradient-masking checks) as
 * findings, figures, tables and example images.
 */
import type { Float32Tensor } from '../../core/tensor.js';
import { evaluateRobustness, summarizeEvaluation, type EvalProgress, type RobustnessEvaluation } from '../../evasion/evaluate/index.js';
import { ENSEMBLE_PAPERS } from '../../evasion/evaluate/suites.js';
import type { Model } from '../../runtime/model.js';
import { imagePixels, encodePng, perturbationPixels, pngDataUri } from '../png.js';
import { makeFinding } from '../taxonomy.js';
import type { Block, Finding, ImageRow, ReportSection, Severity } from '../types.js';
import { statusFromFindings, type AssessmentContext, type SectionProvider } from './common.js';

/** Gate-able metrics of the evasion section. */
export const EVASION_METRICS = ['clean-accuracy', 'robust-accuracy'] as const;

/** Most example images shown. */
const MAX_IMAGES = 8;

/** Severity of the adversarial-examples finding from the share of correct predictions that survive. */
export function vulnerabilitySeverity(clean: number, robust: number): Severity {
  const kept = clean > 0 ? robust / clean : 1;
  return kept < 0.1 ? 'high' : kept < 0.5 ? 'medium' : kept < 0.9 ? 'low' : 'info';
}

function normText(norm: 'inf' | 2): string {
  return norm === 'inf' ? 'L∞' : 'L2';
}

/** The findings of an evaluation. */
export function evasionFindings(ev: RobustnessEvaluation, gateValue: number | undefined): Finding[] {
  const out: Finding[] = [];
  const ens = ev.ensemble;
  const broken = ens.brokenBy.filter((b) => b !== null).length;
  const threat = `${normText(ev.norm)} eps ${ev.eps}`;
  if (broken > 0) {
    const byAttack: Record<string, number> = {};
    for (const b of ens.brokenBy) if (b !== null) byAttack[b] = (byAttack[b] ?? 0) + 1;
    const blackBox = ens.members.some((m) => m.kind === 'black-box' && m.broken > 0);
    const examples = ens.brokenBy.map((b, i) => (b === null ? -1 : i)).filter((i) => i >= 0).slice(0, 50);
    out.push(makeFinding('evasion-adversarial-examples', {
      title: `Adversarial examples within ${threat}: robust accuracy ${(100 * ev.robustAccuracy).toFixed(1)}% against clean ${(100 * ev.cleanAccuracy).toFixed(1)}%`,
      severity: vulnerabilitySeverity(ev.cleanAccuracy, ev.robustAccuracy),
      metric: 'robust-accuracy',
      value: ev.robustAccuracy,
      threshold: gateValue ?? null,
      evidence: { threat: { norm: ev.norm, eps: ev.eps }, n: ev.n, cleanAccuracy: ev.cleanAccuracy, broken, brokenBy: byAttack, examples },
      atlas: ['AML.T0043', 'AML.T0043.000', ...(blackBox ? ['AML.T0043.001'] : []), 'AML.T0015'],
    }));
  }
  for (const c of ev.checks) {
    if (c.status !== 'flag') continue;
    out.push(makeFinding(`evasion-masking-${c.id}`, {
      severity: c.severity,
      metric: `masking.${c.id}`,
      value: c.value ?? 0,
      threshold: c.threshold,
      evidence: { message: c.message, reference: c.reference, ...c.evidence },
    }));
  }
  const skipped = ens.members.filter((m) => m.status === 'skipped');
  if (skipped.length > 0) {
    out.push(makeFinding('evasion-incomplete', {
      title: `Robustness evaluated without ${skipped.map((m) => m.name).join(', ')}`,
      metric: 'skipped-attacks',
      value: skipped.length,
      evidence: { skipped: skipped.map((m) => ({ attack: m.name, reason: m.reason })) },
    }));
  }
  return out;
}

/** Example images: original, adversarial and perturbation, for up to 8 broken examples (one per attack first). */
export function exampleImages(ev: RobustnessEvaluation, x: Float32Tensor, bounds: [number, number], indices: ArrayLike<number>): ImageRow[] {
  if (x.shape.length !== 4) return [];
  // NCHW, or NHWC (a model exported from TensorFlow): channels are the axis of 1 or 3.
  const s = x.shape as [number, number, number, number];
  const channelsLast = s[1] !== 1 && s[1] !== 3 && (s[3] === 1 || s[3] === 3);
  const [c, h, w] = channelsLast ? [s[3], s[1], s[2]] : [s[1], s[2], s[3]];
  if (c !== 1 && c !== 3) return [];
  const ens = ev.ensemble;
  const order: number[] = [];
  const seen = new Set<string>();
  ens.brokenBy.forEach((b, i) => {
    if (b !== null && !seen.has(b)) {
      seen.add(b);
      order.push(i);
    }
  });
  ens.brokenBy.forEach((b, i) => {
    if (b !== null && !order.includes(i)) order.push(i);
  });
  const d = c * h * w;
  return order.slice(0, MAX_IMAGES).map((i) => {
    const off = i * d;
    const orig = imagePixels(x.data, off, c, h, w, bounds, channelsLast);
    const adv = imagePixels(ens.adversarial.data, off, c, h, w, bounds, channelsLast);
    const scale = ev.norm === 'inf' ? ev.eps : Math.max(1e-12, ...Array.from({ length: d }, (_, j) => Math.abs(ens.adversarial.data[off + j]! - x.data[off + j]!)));
    const pert = perturbationPixels(ens.adversarial.data, x.data, off, c, h, w, scale, channelsLast);
    const img = (caption: string, px: Uint8Array, ch: 1 | 3) => ({ caption, png: pngDataUri(encodePng(px, w, h, ch)), width: w, height: h });
    const norm = ev.norm === 'inf' ? ens.norms.linf[i]! : ens.norms.l2[i]!;
    return {
      label: `example ${indices[i]}: label ${ens.labels[i]} → ${ens.adversarialPredictions[i]} by ${ens.brokenBy[i]} (${normText(ev.norm)} ${norm.toFixed(3)})`,
      images: [
        img(`original (${ens.cleanPredictions[i]})`, orig.pixels, orig.channels),
        img(`adversarial (${ens.adversarialPredictions[i]})`, adv.pixels, adv.channels),
        img(`perturbation (±${+scale.toPrecision(3)})`, pert, 3),
      ],
    };
  });
}

/** Renders an evaluation as a report section. */
export function evasionSection(ev: RobustnessEvaluation, ctx: { x: Float32Tensor; bounds: [number, number]; indices: ArrayLike<number>; dataSpec: string; gateValue?: number; seconds: number }): ReportSection {
  const ens = ev.ensemble;
  const findings = evasionFindings(ev, ctx.gateValue);
  const threat = `${normText(ev.norm)} eps ${ev.eps}`;
  const flagged = ev.checks.filter((c) => c.status === 'flag');
  const blocks: Block[] = [];
  blocks.push({
    kind: 'metrics',
    id: 'evasion-metrics',
    items: [
      { label: 'clean accuracy', value: ev.cleanAccuracy, format: 'percent', metric: 'clean-accuracy' },
      { label: `robust accuracy (${threat})`, value: ev.robustAccuracy, format: 'percent', metric: 'robust-accuracy' },
      { label: 'examples', value: ev.n, format: 'count' },
      { label: 'budget', value: ev.budget, format: 'text' },
      { label: 'gradient-masking flags', value: flagged.length, format: 'count' },
      { label: 'evaluation time', value: ev.timings.totalSeconds, format: 'seconds' },
    ],
  });
  if (ev.curve) {
    const curve = ev.curve;
    const series = [
      { name: 'worst case', style: 'line' as const, points: curve.points.map((p) => ({ x: p.eps, y: p.worstCaseRobustAccuracy })) },
      { name: 'independent runs', style: 'points' as const, points: curve.points.map((p) => ({ x: p.eps, y: p.robustAccuracy })) },
      { name: 'full ensemble', style: 'points' as const, points: [{ x: ev.eps, y: ev.robustAccuracy }] },
    ];
    blocks.push({
      kind: 'chart',
      id: 'robustness-curve',
      caption: `Robust accuracy against ${normText(ev.norm)} eps on the first ${curve.n} examples (attacks at each eps: ${curve.members.join(', ')}; the full ensemble at eps ${ev.eps} on all ${ev.n})`,
      xLabel: `eps (${normText(ev.norm)})`,
      yLabel: 'robust accuracy',
      yRange: [0, 1],
      yFormat: 'percent',
      series,
    });
    blocks.push({
      kind: 'table',
      id: 'curve-points',
      caption: 'Robustness curve',
      columns: [
        { key: 'eps', label: 'eps', format: 'number' },
        { key: 'robustAccuracy', label: 'robust accuracy (independent)', format: 'percent' },
        { key: 'worstCaseRobustAccuracy', label: 'robust accuracy (worst case)', format: 'percent' },
        { key: 'regressions', label: 'regressions', format: 'count' },
        { key: 'seconds', label: 'time', format: 'seconds' },
      ],
      rows: curve.points.map((p) => ({ eps: p.eps, robustAccuracy: p.robustAccuracy, worstCaseRobustAccuracy: p.worstCaseRobustAccuracy, regressions: p.regressions, seconds: p.seconds })),
    });
  }
  blocks.push({
    kind: 'table',
    id: 'per-attack',
    caption: `Attacks at ${threat}, in order; each runs only on the examples the earlier ones left robust`,
    columns: [
      { key: 'attack', label: 'attack', format: 'text' },
      { key: 'kind', label: 'kind', format: 'text' },
      { key: 'status', label: 'status', format: 'text' },
      { key: 'attacked', label: 'attacked', format: 'count' },
      { key: 'broken', label: 'broken', format: 'count' },
      { key: 'robustAccuracyAfter', label: 'robust accuracy after', format: 'percent' },
      { key: 'queries', label: 'queries', format: 'count' },
      { key: 'seconds', label: 'time', format: 'seconds' },
    ],
    rows: ens.members.map((m) => ({ attack: m.name, kind: m.kind, status: m.status, attacked: m.attacked, broken: m.broken, robustAccuracyAfter: m.robustAccuracyAfter, queries: m.queries, seconds: m.seconds })),
  });
  blocks.push({
    kind: 'table',
    id: 'masking-checks',
    caption: 'Gradient-masking checks (a flag means the robust accuracy may be overstated)',
    columns: [
      { key: 'check', label: 'check', format: 'text' },
      { key: 'status', label: 'status', format: 'text' },
      { key: 'value', label: 'value', format: 'number' },
      { key: 'threshold', label: 'flags above', format: 'number' },
      { key: 'message', label: 'finding', format: 'text' },
    ],
    rows: ev.checks.map((c) => ({ check: c.title, status: c.status, value: c.value, threshold: c.threshold, message: c.message })),
  });
  const rows = exampleImages(ev, ctx.x, ctx.bounds, ctx.indices);
  if (rows.length > 0) blocks.push({ kind: 'images', id: 'adversarial-examples', caption: 'Adversarial examples beside the originals (prediction in brackets) and their perturbation (red: brighter, blue: darker)', rows });
  blocks.push({
    kind: 'text',
    text: `Method: the ensemble of Croce & Hein (2020, AutoAttack): ${ens.members.map((m) => m.name).join(', then ')}, each run on the examples every earlier attack failed on; an example counts as robust only if it survives all of them. Successes are recomputed on the model inside the threat model. References: ${ENSEMBLE_PAPERS.autoattack}; ${ENSEMBLE_PAPERS.fab}; ${ENSEMBLE_PAPERS.square}; masking checks after ${ENSEMBLE_PAPERS.masking} and ${ENSEMBLE_PAPERS.checklist}.`,
  });
  const reliability = flagged.length === 0 ? 'No gradient-masking check raised a flag.' : `${flagged.length} gradient-masking check${flagged.length === 1 ? '' : 's'} raised a flag (${flagged.map((c) => c.id).join(', ')}): treat the robust accuracy as an upper bound.`;
  const summary = `On ${ev.n} examples of ${ctx.dataSpec} the model is correct on ${(100 * ev.cleanAccuracy).toFixed(1)}%; within ${threat} the ensemble leaves ${(100 * ev.robustAccuracy).toFixed(1)}% robust (budget ${ev.budget}). ${reliability}`;
  const perExample = Array.from({ length: ev.n }, (_, i) => ({
    index: ctx.indices[i],
    label: ens.labels[i],
    cleanPrediction: ens.cleanPredictions[i],
    adversarialPrediction: ens.adversarialPredictions[i],
    robust: ens.robust[i] === 1,
    brokenBy: ens.brokenBy[i],
    linf: ens.norms.linf[i],
    l2: ens.norms.l2[i],
  }));
  return {
    id: 'evasion',
    title: 'Evasion: adversarial robustness',
    domain: 'evasion',
    status: statusFromFindings(findings),
    summary,
    metrics: { 'clean-accuracy': ev.cleanAccuracy, 'robust-accuracy': ev.robustAccuracy },
    findings,
    blocks,
    details: {
      summary: summarizeEvaluation(ev),
      members: ens.members,
      curve: ev.curve ? { n: ev.curve.n, members: ev.curve.members, points: ev.curve.points } : null,
      checks: ev.checks,
      timings: ev.timings,
      perExample,
    },
    seconds: ctx.seconds,
  };
}

/** The evasion section provider: evaluates robustness at the assessment's eps and norm. */
export const evasionProvider: SectionProvider = {
  id: 'evasion',
  title: 'Evasion: adversarial robustness',
  domain: 'evasion',
  metrics: [...EVASION_METRICS],
  async run(ctx: AssessmentContext): Promise<ReportSection> {
    const t0 = performance.now();
    const onProgress = (p: EvalProgress) => ctx.progress({ section: 'evasion', stage: p.stage, done: p.done, total: p.total, status: [p.member, p.eps === undefined ? undefined : `eps ${p.eps}`].filter(Boolean).join(' @ ') });
    const ev = await evaluateRobustness(ctx.model as Model, ctx.x, ctx.y, { eps: ctx.settings.eps, norm: ctx.settings.norm, suite: ctx.settings.budget, seed: ctx.settings.seed, indices: ctx.indices, onProgress });
    // later sections (hardening: the detector, preprocessing defenses, the record's claim) reuse the evaluation
    ctx.shared?.set('evasion', ev);
    const gate = ctx.gates.find((g) => g.metric === 'robust-accuracy')?.value;
    return evasionSection(ev, { x: ctx.x, bounds: ctx.model.bounds, indices: ctx.indices, dataSpec: ctx.dataSpec, ...(gate === undefined ? {} : { gateValue: gate }), seconds: (performance.now() - t0) / 1000 });
  },
};

/**
 * The shared attack runner. It validates options once (strict schema), checks that the model can serve the attack
 * and that the data fits the model, runs the attack on the examples the model gets right, projects whatever the
 * attack returns onto the threat model (bounds ∩ eps-ball, with a small tolerance for float rounding) and recomputes
 * success by predicting on the model. An attack's own claim of success is never used.
 */
import { BulwarkError } from '../core/errors.js';
import { Rng } from '../core/rng.js';
import { shapeStr, type Float32Tensor } from '../core/tensor.js';
import { argmax, clone, perturbationNorms, pixelLayout, project, rowNorm, rowSize, scatterRows, takeIdx, takeRows } from './geometry.js';
import { normName } from './options.js';
import { streamRng } from './streams.js';
import type { AttackDefinition, AttackFn, AttackResult, AttackSummary, CommonOptions, Criterion, CraftOutput, GradientModel, Model, ThreatModel } from './types.js';

/** The black-box alternatives named when a white-box attack meets a model without gradients. */
export const BLACK_BOX_HINT = 'Use a black-box attack: square (score-based, Andriushchenko et al. 2020), hsj (decision-based HopSkipJump, Chen et al. 2020), or a gradient estimator (nes / spsa).';

const REGISTRY = new Map<string, AttackDefinition<CommonOptions>>();

/**
 * Registers an attack definition under its name (for {@link runAttack} by name and for listings).
 * @throws BulwarkError BULWARK_E_INTERNAL when another definition already has the name
 */
export function registerAttack<O extends CommonOptions>(def: AttackDefinition<O>): AttackDefinition<O> {
  const prev = REGISTRY.get(def.name);
  if (prev && prev !== (def as unknown)) throw new BulwarkError('BULWARK_E_INTERNAL', `two attacks are named ${def.name}`);
  REGISTRY.set(def.name, def as unknown as AttackDefinition<CommonOptions>);
  return def;
}

/** The registered attack with this name, or undefined. */
export function getAttack(name: string): AttackDefinition<CommonOptions> | undefined {
  return REGISTRY.get(name);
}

/** Every registered attack, by name. */
export function listAttacks(): AttackDefinition<CommonOptions>[] {
  return [...REGISTRY.values()].sort((a, b) => a.name.localeCompare(b.name));
}

/**
 * Registers a definition and returns it as an attack function `(model, x, y, options) => Promise<AttackResult>`.
 * @example export const pgd = defineAttack(pgdDefinition); const r = await pgd(model, x, y, { eps: 0.3 });
 */
export function defineAttack<O extends CommonOptions, I = Partial<O>>(def: AttackDefinition<O>): AttackFn<I> & { definition: AttackDefinition<O> } {
  registerAttack(def);
  const fn = (model: Model, x: Float32Tensor, y: ArrayLike<number>, options?: I) => runAttack(def, model, x, y, (options ?? {}) as Record<string, unknown>);
  return Object.assign(fn, { definition: def });
}

/** Options of the runner itself (not of the attack). */
export interface RunOptions {
  /** Attack also the examples the model already misclassifies (default false: they are kept clean, as AutoAttack does). */
  attackMisclassified?: boolean;
  /** Absolute tolerance added to eps when checking the raw output (float rounding); default 1e-5 (L0: 0). */
  tolerance?: number;
  /**
   * Global index of each example of x (non-negative integers), which keys its random streams (`streams.ts`):
   * pass the examples' indices in the full data when attacking it in pieces or a subset, and the adversarial
   * inputs equal those of one run on all of it. Default: the position in x (0..N−1).
   */
  indices?: ArrayLike<number>;
}

/**
 * Runs an attack under the shared rules and returns the verified result.
 * @param attack a definition, or the name of a registered one
 * @param model the model under attack (white-box attacks need `lossAndGradient`)
 * @param x clean inputs [N, ...] inside the model's bounds
 * @param y true labels [N]
 * @param options the attack's options (validated by its strict schema; unknown keys are refused)
 * @returns adversarial inputs projected onto the threat model, success recomputed on the model, norms, queries, time
 * @throws BulwarkError BULWARK_E_ARG (bad option, absurd eps, unknown attack), BULWARK_E_MODEL (white-box attack on
 *   a model without gradients), BULWARK_E_UNSUPPORTED_OP, BULWARK_E_SHAPE, BULWARK_E_LABELS
 * @example const r = await runAttack('pgd', model, x, y, { eps: 0.3, norm: 'inf', steps: 40 }); r.summary.robustAccuracy
 */
export async function runAttack(attack: string | AttackDefinition<CommonOptions> | AttackDefinition<never>, model: Model, x: Float32Tensor, y: ArrayLike<number>, options: Record<string, unknown> = {}, run: RunOptions = {}): Promise<AttackResult> {
  const def = resolveDefinition(attack);
  const opts = def.schema.parse(options, def.name);
  const threat = def.threat ? def.threat(opts, model.bounds, x.shape) : { norm: opts.norm, eps: opts.eps };
  checkOptions(def, opts, threat, model, x);
  checkModel(def, model);
  checkData(def, model, x, y);
  const n = x.shape[0]!;
  const ids = checkIndices(def, run.indices, n);

  const cleanScores = await model.predict(x);
  const labels = checkLabels(def, classCount(def, model, cleanScores, n), y);
  const clean = argmax(cleanScores);
  const targets = resolveTargets(def, opts.criterion, n, model.numClasses);
  const attacked = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    // an example whose target is its own label has nothing to attack (universal targeted attacks meet these)
    const trivial = targets !== undefined && targets[i] === labels[i];
    attacked[i] = !trivial && (run.attackMisclassified || clean[i] === labels[i]) ? 1 : 0;
  }

  const adversarial = clone(x);
  const outOfThreat = new Uint8Array(n);
  const extras: Record<string, unknown> = {};
  const rng = new Rng(opts.seed);
  const tol = run.tolerance ?? (threat.norm === 0 ? 0 : 1e-5);
  let queries = 0;
  const idx = Int32Array.from({ length: n }, (_, i) => i).filter((i) => attacked[i] === 1);
  let seconds = 0;
  const usedTargets = targets ? Int32Array.from(targets) : undefined;

  const craftOn = async (rows: Int32Array, tg: Int32Array | undefined, r: Rng, round: number): Promise<void> => {
    if (rows.length === 0) return;
    const xs = takeRows(x, rows);
    const q0 = model.queries;
    const rowIds = takeIdx(ids, rows);
    const stream = (row: number, restart = 0, sub = 0): Rng => {
      const index = rowIds[row];
      if (index === undefined) throw new BulwarkError('BULWARK_E_INTERNAL', `${def.name} asked for the stream of row ${row} of ${rows.length}`);
      return streamRng({ seed: opts.seed, attack: def.name, round, index, restart, stream: sub });
    };
    const out = await def.craft({ model, x: xs, y: takeIdx(labels, rows), targets: tg ? takeIdx(tg, rows) : undefined, threat, bounds: model.bounds, options: opts, rng: r, index: rows, ids: rowIds, stream });
    queries += model.queries - q0;
    const adv = unwrap(out, extras, def.name);
    if (adv.data.length !== xs.data.length || adv.shape.length !== xs.shape.length || adv.shape.some((d, i) => d !== xs.shape[i])) {
      throw new BulwarkError('BULWARK_E_INTERNAL', `${def.name} returned adversarial inputs of shape ${shapeStr(adv.shape)} for inputs of shape ${shapeStr(xs.shape)}`);
    }
    const raw = { data: new Float32Array(adv.data), shape: [...xs.shape], dtype: 'float32' as const };
    const bad = violations(raw, xs, def.minimumNorm ? { ...threat, eps: Infinity } : threat, model.bounds, tol);
    project(raw, xs, threat.norm, threat.eps, model.bounds);
    for (let r2 = 0; r2 < rows.length; r2++) if (bad[r2]) outOfThreat[rows[r2]!] = 1;
    scatterRows(adversarial, raw, rows, Int32Array.from({ length: rows.length }, (_, k) => k));
  };

  if (opts.criterion.kind === 'targeted-topk') {
    // APGD-T: one run per target class (the k-th most likely class other than the label), on the survivors only.
    const k = Math.min(opts.criterion.k, model.numClasses - 1);
    const ranked = rankOthers(cleanScores, labels);
    const finalTargets = new Int32Array(n).fill(-1);
    let alive = idx;
    for (let t = 0; t < k && alive.length > 0; t++) {
      const tg = new Int32Array(n);
      for (const i of alive) tg[i] = ranked[i]![t]!;
      const before = clone(adversarial);
      const ts = performance.now();
      await craftOn(alive, tg, rng.fork(), t + 1);
      seconds += (performance.now() - ts) / 1000;
      const pred = argmax(await model.predict(takeRows(adversarial, alive)));
      const next: number[] = [];
      for (let r2 = 0; r2 < alive.length; r2++) {
        const i = alive[r2]!;
        finalTargets[i] = tg[i]!;
        if (pred[r2] === labels[i]) {
          next.push(i);
          // keep the first round's attempt for examples that never break (later rounds overwrite only on success)
          if (t > 0) scatterRows(adversarial, before, [i]);
        }
      }
      alive = Int32Array.from(next);
    }
    extras['targets'] = finalTargets;
  } else {
    const ts = performance.now();
    if (def.wholeBatch) await craftOn(Int32Array.from({ length: n }, (_, i) => i), usedTargets, rng, 0);
    else await craftOn(idx, usedTargets, rng, 0);
    seconds = (performance.now() - ts) / 1000;
  }

  const predictions = argmax(await model.predict(adversarial));
  const success = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    if (!attacked[i]) continue;
    success[i] = usedTargets && opts.criterion.kind === 'targeted' ? (predictions[i] === usedTargets[i] ? 1 : 0) : predictions[i] !== labels[i] ? 1 : 0;
  }
  const norms = perturbationNorms(adversarial, x);
  const summary = summarize(def.name, n, clean, predictions, labels, attacked, success, norms, queries, seconds, outOfThreat, threat, opts.criterion);
  const { criterion, ...rest } = opts as CommonOptions & Record<string, unknown>;
  // Large option values (a targeted HopSkipJump's image pool) are reported by their schema's summary.
  for (const [k, f] of Object.entries(def.schema.fields)) if (f.type === 'custom' && f.summarize && rest[k] !== undefined) rest[k] = f.summarize(rest[k]);
  return {
    attack: def.name,
    adversarial,
    success,
    attacked,
    cleanPredictions: clean,
    predictions,
    labels,
    targets: usedTargets ?? (extras['targets'] as Int32Array | undefined),
    norms,
    outOfThreat,
    threat,
    criterion: criterion.kind,
    queries,
    seconds,
    options: { ...rest, criterion: criterion.kind === 'targeted-topk' ? criterion : { kind: criterion.kind } },
    extras,
    summary,
  };
}

function resolveDefinition(attack: string | AttackDefinition<CommonOptions> | AttackDefinition<never>): AttackDefinition<CommonOptions> {
  if (typeof attack !== 'string') return attack as unknown as AttackDefinition<CommonOptions>;
  const def = REGISTRY.get(attack);
  if (!def) throw new BulwarkError('BULWARK_E_ARG', `unknown attack ${JSON.stringify(attack)}`, { hint: `Registered attacks: ${[...REGISTRY.keys()].sort().join(', ') || '(none loaded)'}.` });
  return def;
}

function unwrap(out: CraftOutput, extras: Record<string, unknown>, name: string): Float32Tensor {
  if (out && 'adversarial' in out) {
    if (out.extras) Object.assign(extras, out.extras);
    return out.adversarial;
  }
  if (!out || !(out as Float32Tensor).data) throw new BulwarkError('BULWARK_E_INTERNAL', `${name} returned no adversarial inputs`);
  return out as Float32Tensor;
}

/** Refuses absurd radii: negative, NaN, or larger than the whole box in that norm. */
function checkOptions(def: AttackDefinition<CommonOptions>, opts: CommonOptions, threat: ThreatModel, model: Model, x: Float32Tensor): void {
  if (!def.norms.includes(opts.norm)) {
    throw new BulwarkError('BULWARK_E_ARG', `${def.name} does not support the ${normName(opts.norm)} norm; it supports ${def.norms.map(normName).join(', ')}`);
  }
  if (!def.targeted && opts.criterion.kind !== 'untargeted') {
    throw new BulwarkError('BULWARK_E_ARG', `${def.name} is untargeted only; drop the targeted criterion`);
  }
  const eps = threat.eps;
  if (!(eps >= 0)) throw new BulwarkError('BULWARK_E_ARG', `${def.name}: eps must be >= 0, got ${eps}`);
  if (!Number.isFinite(eps)) return;
  const range = model.bounds[1] - model.bounds[0];
  const d = rowSize(x);
  const maxEps = threat.norm === 'inf' ? range : threat.norm === 2 ? range * Math.sqrt(d) : threat.norm === 1 ? range * d : pixelLayout(x.shape).positions;
  if (eps > maxEps) {
    throw new BulwarkError('BULWARK_E_ARG', `${def.name}: eps ${eps} in ${normName(threat.norm)} exceeds the diameter of the input box (${+maxEps.toPrecision(6)} for bounds [${model.bounds.join(', ')}] and ${d} values per example)`, {
      hint: threat.norm === 'inf' ? `An L∞ eps is in input units: for [0, 1] images 8/255 ≈ 0.031 or 0.3 (MNIST) are usual; did you give it in 0-255 units?` : 'Give eps in input units of the model bounds.',
    });
  }
}

function checkModel(def: AttackDefinition<CommonOptions>, model: Model): void {
  if (!def.whiteBox) return;
  if (typeof model.lossAndGradient !== 'function') {
    throw new BulwarkError('BULWARK_E_MODEL', `${def.name} is a white-box attack and needs gradients, but this model only predicts (a black-box model)`, { hint: BLACK_BOX_HINT });
  }
  const unsupported = (model as { unsupportedOps?: () => string[] }).unsupportedOps?.() ?? [];
  if (unsupported.length > 0) {
    throw new BulwarkError('BULWARK_E_UNSUPPORTED_OP', `${def.name} is a white-box attack, but the model has ops without gradients (${unsupported.join(', ')})`, { hint: BLACK_BOX_HINT });
  }
}

function checkData(def: AttackDefinition<CommonOptions>, model: Model, x: Float32Tensor, y: ArrayLike<number>): void {
  const want = model.inputShape;
  const got = x.shape;
  if (got.length !== want.length || got.some((d, i) => i > 0 && want[i]! > 0 && d !== want[i])) {
    const hint = got.length === want.length - 1 ? ' (add a batch dimension)' : got.length === 2 && want.length === 4 ? ' (reshape flat rows to the image shape)' : '';
    throw new BulwarkError('BULWARK_E_SHAPE', `${def.name}: input has shape ${shapeStr(got)}; the model expects ${shapeStr(want.map((d, i) => (i === 0 && d < 0 ? 'N' : d < 0 ? '?' : d)))}${hint}`);
  }
  const n = got[0]!;
  if (n === 0) throw new BulwarkError('BULWARK_E_SHAPE', `${def.name}: input has no examples`);
  if (!(x.data instanceof Float32Array)) throw new BulwarkError('BULWARK_E_DTYPE', `${def.name}: input must be float32`);
  const [lo, hi] = model.bounds;
  const slack = 1e-6 * Math.max(1, hi - lo);
  for (let j = 0; j < x.data.length; j++) {
    const v = x.data[j]!;
    if (!(v >= lo - slack && v <= hi + slack)) {
      if (!Number.isFinite(v)) throw new BulwarkError('BULWARK_E_NONFINITE', `${def.name}: input holds a non-finite value (${v}) at flat index ${j}`);
      throw new BulwarkError('BULWARK_E_ARG', `${def.name}: input value ${v} at flat index ${j} (example ${Math.floor(j / rowSize(x))}) is outside the model bounds [${lo}, ${hi}]`, {
        hint: 'Scale the data to the model bounds (e.g. divide 0-255 pixels by 255), or load the model with matching bounds.',
      });
    }
  }
  if (y.length !== n) throw new BulwarkError('BULWARK_E_LABELS', `${def.name}: ${y.length} labels for ${n} inputs`);
}

/**
 * The number of classes K from the model's clean scores, which must be [N, K] with K ≥ 2: an attack flips a
 * decision between classes, and a model with one score (or scores of another shape) has none to flip.
 */
function classCount(def: AttackDefinition<CommonOptions>, model: Model, scores: Float32Tensor, n: number): number {
  const k = scores.shape.length === 2 && scores.shape[0] === n ? scores.shape[1]! : -1;
  if (k < 0) {
    throw new BulwarkError('BULWARK_E_MODEL', `${def.name}: the model's output has shape ${shapeStr(scores.shape)} for ${n} inputs; attacks need class scores [N, K]`, {
      hint: 'Use a classifier whose output is one score per class, [N, K] (`bulwark info` shows the output shape).',
    });
  }
  if (k < 2) {
    throw new BulwarkError('BULWARK_E_MODEL', `${def.name}: the model outputs ${k} class score${k === 1 ? '' : 's'} per example; an attack needs at least 2 classes to flip a decision between`, {
      hint: 'A one-score model (a detector or regressor) has no class decision to attack: export it with one score per class, e.g. [1 - p, p].',
    });
  }
  if (model.numClasses > 0 && model.numClasses !== k) {
    throw new BulwarkError('BULWARK_E_MODEL', `${def.name}: the model declares ${model.numClasses} classes but returned ${k} scores per example`);
  }
  return k;
}

function checkLabels(def: AttackDefinition<CommonOptions>, k: number, y: ArrayLike<number>): Int32Array {
  const n = y.length;
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const v = y[i]!;
    if (!Number.isInteger(v) || v < 0 || (k > 0 && v >= k)) throw new BulwarkError('BULWARK_E_LABELS', `${def.name}: label[${i}] = ${v} is not a class id in [0, ${k})`);
    labels[i] = v;
  }
  return labels;
}

/** The global example indices of the rows (default 0..n−1). */
function checkIndices(def: AttackDefinition<CommonOptions>, indices: ArrayLike<number> | undefined, n: number): Int32Array {
  if (indices === undefined) return Int32Array.from({ length: n }, (_, i) => i);
  if (indices.length !== n) throw new BulwarkError('BULWARK_E_ARG', `${def.name}: ${indices.length} example indices for ${n} inputs`);
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const v = indices[i]!;
    if (!Number.isInteger(v) || v < 0 || v > 0x7fffffff) throw new BulwarkError('BULWARK_E_ARG', `${def.name}: example index [${i}] = ${v} is not an integer in [0, 2^31)`);
    out[i] = v;
  }
  return out;
}

function resolveTargets(def: AttackDefinition<CommonOptions>, c: Criterion, n: number, k: number): Int32Array | undefined {
  if (c.kind !== 'targeted') return undefined;
  if (c.targets.length !== n) throw new BulwarkError('BULWARK_E_LABELS', `${def.name}: ${c.targets.length} target classes for ${n} inputs`);
  const t = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const v = c.targets[i]!;
    if (!Number.isInteger(v) || v < 0 || (k > 0 && v >= k)) throw new BulwarkError('BULWARK_E_LABELS', `${def.name}: target[${i}] = ${v} is not a class id in [0, ${k})`);
    t[i] = v;
  }
  return t;
}

/** For each example, the classes other than its label, most likely first. */
function rankOthers(scores: Float32Tensor, labels: Int32Array): Int32Array[] {
  const n = scores.shape[0]!;
  const k = scores.data.length / n;
  const out: Int32Array[] = [];
  for (let i = 0; i < n; i++) {
    const cls = Array.from({ length: k }, (_, j) => j).filter((j) => j !== labels[i]);
    cls.sort((a, b) => scores.data[i * k + b]! - scores.data[i * k + a]! || a - b);
    out.push(Int32Array.from(cls));
  }
  return out;
}

/** Flags rows that leave bounds or the eps-ball beyond the tolerance. */
function violations(adv: Float32Tensor, x: Float32Tensor, threat: ThreatModel, bounds: [number, number], tol: number): Uint8Array {
  const n = x.shape[0]!;
  const d = rowSize(x);
  const out = new Uint8Array(n);
  const delta = new Float64Array(d);
  const layout = pixelLayout(x.shape);
  for (let i = 0; i < n; i++) {
    let bad = false;
    for (let j = 0; j < d; j++) {
      const v = adv.data[i * d + j]!;
      if (!Number.isFinite(v) || v < bounds[0] - tol || v > bounds[1] + tol) bad = true;
      delta[j] = Math.abs(v - x.data[i * d + j]!) > 1e-7 ? v - x.data[i * d + j]! : 0;
    }
    if (!bad && Number.isFinite(threat.eps)) {
      if (threat.norm === 0) {
        let c = 0;
        for (let p = 0; p < layout.positions; p++) {
          for (let ch = 0; ch < layout.channels; ch++) {
            if (delta[ch * layout.positions + p] !== 0) {
              c++;
              break;
            }
          }
        }
        bad = c > threat.eps + tol;
      } else {
        bad = rowNorm(delta, 0, d, threat.norm) > threat.eps * (1 + 1e-5) + tol;
      }
    }
    out[i] = bad ? 1 : 0;
  }
  return out;
}

function summarize(
  name: string,
  n: number,
  clean: Int32Array,
  pred: Int32Array,
  labels: Int32Array,
  attacked: Uint8Array,
  success: Uint8Array,
  norms: { linf: Float32Array; l2: Float32Array },
  queries: number,
  seconds: number,
  outOfThreat: Uint8Array,
  threat: ThreatModel,
  criterion: Criterion,
): AttackSummary {
  let cleanOk = 0;
  let robust = 0;
  let nAttacked = 0;
  let nSuccess = 0;
  let linf = 0;
  let l2 = 0;
  let bad = 0;
  for (let i = 0; i < n; i++) {
    if (clean[i] === labels[i]) cleanOk++;
    if (pred[i] === labels[i]) robust++;
    if (attacked[i] && clean[i] === labels[i]) nAttacked++;
    if (success[i] && clean[i] === labels[i]) {
      nSuccess++;
      linf += norms.linf[i]!;
      l2 += norms.l2[i]!;
    }
    bad += outOfThreat[i]!;
  }
  const nA = attacked.reduce((a, v) => a + v, 0);
  return {
    attack: name,
    n,
    cleanAccuracy: cleanOk / n,
    robustAccuracy: robust / n,
    successRate: nAttacked ? nSuccess / nAttacked : 0,
    meanPerturbation: { linf: nSuccess ? linf / nSuccess : 0, l2: nSuccess ? l2 / nSuccess : 0 },
    queries,
    seconds,
    imagesPerSecond: seconds > 0 ? nA / seconds : 0,
    outOfThreat: bad,
    norm: threat.norm,
    eps: threat.eps,
    targeted: criterion.kind !== 'untargeted',
  };
}

/**
 * The per-example worst case over several results on the same inputs (AutoAttack's lesson: report the worst case,
 * never an average): an example is robust only if every attack failed on it; its adversarial input is the first
 * successful one.
 * @throws BulwarkError BULWARK_E_ARG when results differ in size
 */
export function worstCase(results: AttackResult[]): { robust: Uint8Array; robustAccuracy: number; adversarial: Float32Tensor; by: string[] } {
  if (results.length === 0) throw new BulwarkError('BULWARK_E_ARG', 'worstCase needs at least one result');
  const n = results[0]!.labels.length;
  if (results.some((r) => r.labels.length !== n)) throw new BulwarkError('BULWARK_E_ARG', 'worstCase: results cover different numbers of examples');
  const robust = new Uint8Array(n);
  const by = new Array<string>(n).fill('');
  const adversarial = clone(results[0]!.adversarial);
  for (let i = 0; i < n; i++) {
    let ok = 1;
    for (const r of results) {
      if (r.predictions[i] !== r.labels[i]) {
        ok = 0;
        if (!by[i]) {
          by[i] = r.attack;
          scatterRows(adversarial, r.adversarial, [i]);
        }
      }
    }
    robust[i] = ok;
  }
  return { robust, robustAccuracy: robust.reduce((a, v) => a + v, 0) / n, adversarial, by };
}

/** Narrows a model to one with gradients (callers checked `whiteBox` through the runner). */
export function gradientModel(model: Model): GradientModel {
  if (typeof model.lossAndGradient !== 'function') throw new BulwarkError('BULWARK_E_MODEL', 'this attack needs gradients', { hint: BLACK_BOX_HINT });
  return model as GradientModel;
}

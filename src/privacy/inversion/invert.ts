/**
 * Model inversion: class-representative reconstruction, MI-Face (Fredrikson, Jha, Ristenpart, "Model Inversion
 * Attacks that Exploit Confidence Information and Basic Countermeasures", CCS 2015,
 * https://doi.org/10.1145/2810103.2813677): gradient descent on the input to minimize c(x) = 1 − p_class(x) plus
 * optional image priors (squared total variation, L2), each step projected to the model's input bounds; the image
 * with the lowest cost seen is kept.
 */
import { BulwarkError } from '../../core/errors.js';
import { Rng } from '../../core/rng.js';
import { sizeOf, type Float32Tensor } from '../../core/tensor.js';
import type { Dataset } from '../../data/index.js';
import type { Model } from '../../runtime/model.js';
import { cosineSimilarity, ssim } from './similarity.js';

/** Options of {@link invertClasses}. */
export interface InversionOptions {
  /** Gradient steps (the paper's alpha); default 500. */
  steps?: number;
  /** Step size (the paper's lambda); default 0.1. */
  lr?: number;
  /**
   * '1-p' (default): the paper's cost 1 − p_class(x); its gradient is p·∇CE, small while p is small, so steps are
   * taken on the gradient scaled to unit max-abs value ('normalize', default true). 'ce': −log p_class(x).
   */
  objective?: '1-p' | 'ce';
  /** Scale each step's gradient to max-abs 1 per example (signSGD-like, robust to the tiny 1 − p gradients at the start); default true. */
  normalize?: boolean;
  /** Weight of the squared total variation prior Σ (x[i+1,j]−x[i,j])² + (x[i,j+1]−x[i,j])²; default 0.01. */
  tvWeight?: number;
  /** Weight of the L2 prior ‖x‖²; default 0.001. */
  l2Weight?: number;
  /** Stop a class when its cost has not improved for this many steps (the paper's beta); default 100. */
  patience?: number;
  /** Stop a class when 1 − p falls to this (the paper's gamma); default 0 (never). */
  gamma?: number;
  /** Start image: zeros (the paper), the middle of the bounds, or seeded uniform noise; default zeros. */
  init?: 'zeros' | 'mid' | 'uniform';
  /**
   * Independent runs per class from seeded uniform-noise starts, averaged into the class representative (the
   * per-run images are mostly adversarial noise that averages out, while the class-consistent strokes remain);
   * default 1 (one run from `init`). With restarts > 1 the init is always uniform.
   */
  restarts?: number;
  seed?: number;
}

/** What {@link invertClasses} returns. */
export interface InversionResult {
  classes: number[];
  /** Reconstructions [classes.length, ...inputShape], in the model's bounds. */
  images: Float32Tensor;
  /** The model's probability of the class on its reconstruction (mean over restarts). */
  confidence: Float32Array;
  /** Final cost (objective + priors) of each reconstruction. */
  cost: Float32Array;
  /** Steps taken per class (summed over restarts). */
  steps: Int32Array;
  /** Model evaluations (forward + gradient), examples. */
  queries: number;
  seconds: number;
}

/**
 * Reconstructs a representative input of each class from a white-box model (MI-Face). All classes run as one batch.
 * @param model a white-box model (lossAndGradient)
 * @param classes the classes to reconstruct
 * @param opts steps, step size, objective, priors, stopping rules
 * @returns the images and their confidences
 * @throws BulwarkError BULWARK_E_MODEL (no gradient or dynamic input shape), BULWARK_E_LABELS, BULWARK_E_ARG
 * @example const r = await invertClasses(model, [0, 1, 2], { steps: 300 });
 */
export async function invertClasses(model: Model, classes: number[], opts: InversionOptions = {}): Promise<InversionResult> {
  const restarts = opts.restarts ?? 1;
  if (!Number.isInteger(restarts) || restarts < 1) throw new BulwarkError('BULWARK_E_ARG', `restarts must be a positive integer, got ${restarts}`);
  if (restarts === 1) return invertOnce(model, classes, opts);
  const t0 = performance.now();
  const runs = await invertOnce(model, Array.from({ length: restarts }, () => classes).flat(), { ...opts, init: 'uniform' });
  const n = classes.length;
  const d = runs.images.data.length / runs.classes.length;
  const avg = new Float32Array(n * d);
  const conf = new Float32Array(n);
  const cost = new Float32Array(n);
  const steps = new Int32Array(n);
  for (let r = 0; r < restarts; r++) {
    for (let i = 0; i < n; i++) {
      const src = r * n + i;
      for (let j = 0; j < d; j++) avg[i * d + j]! += runs.images.data[src * d + j]! / restarts;
      conf[i]! += runs.confidence[src]! / restarts;
      cost[i]! += runs.cost[src]! / restarts;
      steps[i]! += runs.steps[src]!;
    }
  }
  return { classes: [...classes], images: { data: avg, shape: [n, ...runs.images.shape.slice(1)], dtype: 'float32' }, confidence: conf, cost, steps, queries: runs.queries, seconds: (performance.now() - t0) / 1000 };
}

async function invertOnce(model: Model, classes: number[], opts: InversionOptions): Promise<InversionResult> {
  const t0 = performance.now();
  if (!model.lossAndGradient) throw new BulwarkError('BULWARK_E_MODEL', 'model inversion (MI-Face) needs a white-box model with gradients', { hint: 'Load the ONNX file with loadModel; remote and hardened models only predict.' });
  const per = model.inputShape.slice(1);
  if (per.some((d) => !(d > 0))) throw new BulwarkError('BULWARK_E_MODEL', `the model's input shape [${model.inputShape.join(',')}] has dynamic dims; inversion needs a fixed image shape`);
  const k = model.numClasses;
  for (const c of classes) if (!Number.isInteger(c) || c < 0 || (k > 0 && c >= k)) throw new BulwarkError('BULWARK_E_LABELS', `class ${c} is not in [0, ${k})`);
  const steps = opts.steps ?? 500;
  const lr = opts.lr ?? 0.1;
  const tvW = opts.tvWeight ?? 0.01;
  const l2W = opts.l2Weight ?? 0.001;
  const patience = opts.patience ?? 100;
  const gamma = opts.gamma ?? 0;
  const objective = opts.objective ?? '1-p';
  const normalize = opts.normalize ?? true;
  if (!Number.isInteger(steps) || steps < 1) throw new BulwarkError('BULWARK_E_ARG', `steps must be a positive integer, got ${steps}`);
  if (!(lr > 0) || !(tvW >= 0) || !(l2W >= 0)) throw new BulwarkError('BULWARK_E_ARG', 'lr must be > 0 and the prior weights >= 0');
  if (objective !== '1-p' && objective !== 'ce') throw new BulwarkError('BULWARK_E_ARG', `objective must be 1-p or ce, got ${JSON.stringify(objective)}`);
  const [lo, hi] = model.bounds;
  const n = classes.length;
  const d = sizeOf(per);
  const x = new Float32Array(n * d);
  const init = opts.init ?? 'zeros';
  if (init === 'mid') x.fill((lo + hi) / 2);
  else if (init === 'uniform') new Rng(opts.seed ?? 0).fillUniform(x, lo, hi);
  else x.fill(Math.min(hi, Math.max(lo, 0)));
  const best = new Float32Array(x);
  const bestCost = new Float64Array(n).fill(Infinity);
  const bestConf = new Float32Array(n);
  const sinceBest = new Int32Array(n);
  const done = new Uint8Array(n);
  const taken = new Int32Array(n);
  const [h, w] = per.length >= 2 ? [per[per.length - 2]!, per[per.length - 1]!] : [1, d];
  const planes = d / (h * w);
  let queries = 0;
  const g = new Float32Array(d);
  for (let s = 0; s < steps && done.some((v) => v === 0); s++) {
    const res = await model.lossAndGradient({ data: x, shape: [n, ...per], dtype: 'float32' }, classes, { kind: 'ce' });
    queries += n;
    for (let i = 0; i < n; i++) {
      if (done[i]) continue;
      const p = Math.exp(-res.loss[i]!);
      const xi = x.subarray(i * d, (i + 1) * d);
      const gi = res.grad.data.subarray(i * d, (i + 1) * d);
      const scale = objective === '1-p' ? p : 1;
      let cost = objective === '1-p' ? 1 - p : res.loss[i]!;
      for (let j = 0; j < d; j++) g[j] = scale * gi[j]! + 2 * l2W * xi[j]!;
      cost += l2W * xi.reduce((a, v) => a + v * v, 0);
      if (tvW > 0) cost += tvW * addTvGrad(xi, g, planes, h, w, tvW);
      if (cost < bestCost[i]!) {
        bestCost[i] = cost;
        bestConf[i] = p;
        best.set(xi, i * d);
        sinceBest[i] = 0;
      } else if (++sinceBest[i]! >= patience) {
        done[i] = 1;
        continue;
      }
      if (objective === '1-p' ? 1 - p <= gamma : false) {
        done[i] = 1;
        continue;
      }
      let m = 0;
      if (normalize) for (let j = 0; j < d; j++) m = Math.max(m, Math.abs(g[j]!));
      const step = normalize ? (m > 0 ? lr / m : 0) : lr;
      for (let j = 0; j < d; j++) xi[j] = Math.min(hi, Math.max(lo, xi[j]! - step * g[j]!));
      taken[i]!++;
    }
  }
  return { classes: [...classes], images: { data: best, shape: [n, ...per], dtype: 'float32' }, confidence: bestConf, cost: Float32Array.from(bestCost), steps: taken, queries, seconds: (performance.now() - t0) / 1000 };
}

/** Adds tvW·∇TV(x) to g and returns TV(x) (squared differences of neighbours, per plane). */
function addTvGrad(x: Float32Array, g: Float32Array, planes: number, h: number, w: number, tvW: number): number {
  let tv = 0;
  for (let p = 0; p < planes; p++) {
    const o = p * h * w;
    for (let y = 0; y < h; y++) {
      for (let c = 0; c < w; c++) {
        const i = o + y * w + c;
        if (c + 1 < w) {
          const dx = x[i + 1]! - x[i]!;
          tv += dx * dx;
          g[i]! -= 2 * tvW * dx;
          g[i + 1]! += 2 * tvW * dx;
        }
        if (y + 1 < h) {
          const dy = x[i + w]! - x[i]!;
          tv += dy * dy;
          g[i]! -= 2 * tvW * dy;
          g[i + w]! += 2 * tvW * dy;
        }
      }
    }
  }
  return tv;
}

/**
 * Per-class mean images of a labelled dataset (the reference for reconstructions).
 * @param data labelled data
 * @param numClasses class count
 * @returns [numClasses, ...] means (zeros for a class without examples) and the counts
 * @throws BulwarkError BULWARK_E_LABELS when the data has no labels
 */
export function classMeans(data: Dataset, numClasses: number): { means: Float32Tensor; counts: Int32Array } {
  if (!data.y) throw new BulwarkError('BULWARK_E_LABELS', `${data.name} has no labels; class means need them`);
  const n = data.x.shape[0]!;
  const d = data.x.data.length / n;
  const sums = new Float64Array(numClasses * d);
  const counts = new Int32Array(numClasses);
  for (let i = 0; i < n; i++) {
    const c = data.y[i]!;
    if (c < 0 || c >= numClasses) continue;
    counts[c]!++;
    for (let j = 0; j < d; j++) sums[c * d + j]! += data.x.data[i * d + j]!;
  }
  const means = new Float32Array(numClasses * d);
  for (let c = 0; c < numClasses; c++) if (counts[c]! > 0) for (let j = 0; j < d; j++) means[c * d + j] = sums[c * d + j]! / counts[c]!;
  return { means: { data: means, shape: [numClasses, ...data.x.shape.slice(1)], dtype: 'float32' }, counts };
}

/** How a reconstruction compares with the class means. */
export interface ReconstructionScore {
  class: number;
  /** Cosine similarity with its own class's mean image (both centered on the dataset mean when `center` is on). */
  cosine: number;
  /** Mean SSIM with its own class's mean image. */
  ssim: number;
  /** Cosine similarity with each class's mean. */
  cosineToMeans: number[];
  /** The class whose mean is most cosine-similar. */
  nearestMean: number;
  /** Own-class cosine minus the best other-class cosine (> 0: closest to its own class). */
  margin: number;
}

/**
 * Scores reconstructions against the real class means.
 * @param res the inversion result
 * @param means class means [K, ...] from {@link classMeans}
 * @param opts range: pixel range for SSIM (default 1); center: subtract the average of the class means from both images
 *   before the cosine (default false), so that the score measures class-specific structure rather than the shared
 *   background every digit has
 * @returns one score per reconstructed class, and the fraction whose nearest mean is their own class
 */
export function scoreReconstructions(res: InversionResult, means: Float32Tensor, opts: { range?: number; center?: boolean } = {}): { scores: ReconstructionScore[]; ownNearestRate: number } {
  const d = res.images.data.length / res.classes.length;
  const k = means.shape[0]!;
  const range = opts.range ?? 1;
  const shape = res.images.shape.slice(1);
  const mu = new Float32Array(d);
  if (opts.center ?? false) for (let j = 0; j < k; j++) for (let t = 0; t < d; t++) mu[t]! += means.data[j * d + t]! / k;
  const centered = (v: Float32Array) => v.map((x, t) => x - mu[t]!);
  const cmeans = Array.from({ length: k }, (_, j) => centered(means.data.subarray(j * d, (j + 1) * d)));
  const scores = res.classes.map((c, i) => {
    const img = res.images.data.subarray(i * d, (i + 1) * d);
    const cimg = centered(img);
    const cos = cmeans.map((m) => cosineSimilarity(cimg, m));
    let nearest = 0;
    for (let j = 1; j < k; j++) if (cos[j]! > cos[nearest]!) nearest = j;
    const other = Math.max(...cos.filter((_, j) => j !== c));
    return { class: c, cosine: cos[c]!, ssim: ssim(img, means.data.subarray(c * d, (c + 1) * d), shape.length === 3 ? shape : [1, ...shape.slice(-2)], range), cosineToMeans: cos, nearestMean: nearest, margin: cos[c]! - other };
  });
  return { scores, ownNearestRate: scores.filter((s) => s.nearestMean === s.class).length / Math.max(1, scores.length) };
}

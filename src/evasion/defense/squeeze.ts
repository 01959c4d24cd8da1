/**
 * Input-transformation defenses and the detector built on them:
 * - squeezers: bit-depth reduction and median smoothing (Xu, Evans & Qi 2018, https://arxiv.org/abs/1704.01155),
 *   a JPEG-like 8×8 DCT quantizer (Guo et al. 2018, https://arxiv.org/abs/1711.00117);
 * - the feature-squeezing detector: score = max over squeezers of ‖softmax(f(x)) − softmax(f(squeeze(x)))‖₁, the
 *   threshold fitted on clean data at a chosen false-positive rate (fit / score / decide);
 * - a preprocessing-defended Model whose gradient is BPDA's straight-through estimate (Athalye et al. 2018,
 *   https://arxiv.org/abs/1802.00420), so the white-box attacks become the adaptive attack on the defense.
 */
import { BulwarkError } from '../../core/errors.js';
import type { Float32Tensor } from '../../core/tensor.js';
import type { HeadSpec } from '../../autodiff/heads.js';
import { gradientModel } from '../runner.js';
import type { LossAndGradient, Model } from '../types.js';
import { wrapModel } from '../../runtime/model.js';

/** An input transformation on [N, C, H, W] (or [N, F]) tensors in the model bounds. */
export type Squeezer = (x: Float32Tensor) => Float32Tensor;

function like(x: Float32Tensor, data: Float32Array): Float32Tensor {
  return { data, shape: [...x.shape], dtype: 'float32' };
}

function imageDims(x: Float32Tensor): [number, number, number, number] {
  if (x.shape.length !== 4) throw new BulwarkError('BULWARK_E_SHAPE', `this squeezer takes images [N,C,H,W], got [${x.shape.join(',')}]`);
  return x.shape as [number, number, number, number];
}

/**
 * Bit-depth reduction to `bits` bits per value in [lo, hi] (Xu et al.: 1 bit on MNIST).
 * @example const s = bitDepth(1); s(x)
 */
export function bitDepth(bits: number, bounds: [number, number] = [0, 1]): Squeezer {
  if (!(Number.isInteger(bits) && bits >= 1 && bits <= 16)) throw new BulwarkError('BULWARK_E_ARG', `bits must be an integer in [1, 16], got ${bits}`);
  const levels = 2 ** bits - 1;
  const [lo, hi] = bounds;
  return (x) => like(x, x.data.map((v) => lo + (Math.round(((Math.min(hi, Math.max(lo, v)) - lo) / (hi - lo)) * levels) / levels) * (hi - lo)));
}

/**
 * Median filter over k×k windows per channel (Xu et al.: 2×2 on MNIST; even windows take the lower-right centre, as
 * scipy.ndimage.median_filter), edges replicated.
 */
export function medianFilter(k: number): Squeezer {
  if (!(Number.isInteger(k) && k >= 1 && k <= 15)) throw new BulwarkError('BULWARK_E_ARG', `median window must be an integer in [1, 15], got ${k}`);
  const before = Math.floor(k / 2);
  return (x) => {
    const [n, c, h, w] = imageDims(x);
    const out = new Float32Array(x.data.length);
    const win = new Float32Array(k * k);
    for (let p = 0; p < n * c; p++) {
      const o = p * h * w;
      for (let i = 0; i < h; i++) {
        for (let j = 0; j < w; j++) {
          let m = 0;
          for (let a = 0; a < k; a++) {
            const ii = Math.min(h - 1, Math.max(0, i - before + a));
            for (let b = 0; b < k; b++) win[m++] = x.data[o + ii * w + Math.min(w - 1, Math.max(0, j - before + b))]!;
          }
          win.sort();
          out[o + i * w + j] = win[Math.floor((k * k) / 2)]!;
        }
      }
    }
    return like(x, out);
  };
}

/**
 * A JPEG-like squeezer: per channel, 8×8 blocks, orthonormal DCT-II, coefficients rounded to multiples of
 * q·(1 + u + v) (coarser at high frequencies, as JPEG's tables), inverse DCT, clipped to the bounds.
 * @param quality step scale q; larger removes more (0.1 is mild on [0, 1] images)
 */
export function jpegLike(quality = 0.1, bounds: [number, number] = [0, 1]): Squeezer {
  if (!(quality > 0)) throw new BulwarkError('BULWARK_E_ARG', `JPEG quantization step must be > 0, got ${quality}`);
  const B = 8;
  const cos = new Float64Array(B * B);
  for (let u = 0; u < B; u++) for (let t = 0; t < B; t++) cos[u * B + t] = (u === 0 ? Math.sqrt(1 / B) : Math.sqrt(2 / B)) * Math.cos(((2 * t + 1) * u * Math.PI) / (2 * B));
  return (x) => {
    const [n, c, h, w] = imageDims(x);
    const out = new Float32Array(x.data.length);
    const blk = new Float64Array(B * B);
    const tmp = new Float64Array(B * B);
    for (let p = 0; p < n * c; p++) {
      const o = p * h * w;
      for (let bi = 0; bi < h; bi += B) {
        for (let bj = 0; bj < w; bj += B) {
          // edge blocks are padded by replication
          for (let a = 0; a < B; a++) for (let b = 0; b < B; b++) blk[a * B + b] = x.data[o + Math.min(h - 1, bi + a) * w + Math.min(w - 1, bj + b)]!;
          for (let u = 0; u < B; u++) for (let b = 0; b < B; b++) {
            let s = 0;
            for (let a = 0; a < B; a++) s += cos[u * B + a]! * blk[a * B + b]!;
            tmp[u * B + b] = s;
          }
          for (let u = 0; u < B; u++) for (let v = 0; v < B; v++) {
            let s = 0;
            for (let b = 0; b < B; b++) s += cos[v * B + b]! * tmp[u * B + b]!;
            const q = quality * (1 + u + v);
            blk[u * B + v] = Math.round(s / q) * q;
          }
          for (let a = 0; a < B; a++) for (let v = 0; v < B; v++) {
            let s = 0;
            for (let u = 0; u < B; u++) s += cos[u * B + a]! * blk[u * B + v]!;
            tmp[a * B + v] = s;
          }
          for (let a = 0; a < B && bi + a < h; a++) for (let b = 0; b < B && bj + b < w; b++) {
            let s = 0;
            for (let v = 0; v < B; v++) s += cos[v * B + b]! * tmp[a * B + v]!;
            out[o + (bi + a) * w + bj + b] = Math.min(bounds[1], Math.max(bounds[0], s));
          }
        }
      }
    }
    return like(x, out);
  };
}

/** Softmax of each row of [n, k] scores in float64 (or the scores themselves when they are probabilities already). */
export function rowSoftmax(z: ArrayLike<number>, n: number, k: number, probs = false): Float64Array {
  const out = new Float64Array(n * k);
  for (let i = 0; i < n; i++) {
    if (probs) {
      for (let j = 0; j < k; j++) out[i * k + j] = z[i * k + j]!;
      continue;
    }
    let m = -Infinity;
    for (let j = 0; j < k; j++) m = Math.max(m, z[i * k + j]!);
    let s = 0;
    for (let j = 0; j < k; j++) s += (out[i * k + j] = Math.exp(z[i * k + j]! - m));
    for (let j = 0; j < k; j++) out[i * k + j]! /= s;
  }
  return out;
}

/** A named squeezer: `bit:B` (bit depth B), `median:K` (K×K median filter), `jpeg:Q` (JPEG-like step Q). */
export interface SqueezerSpec {
  kind: 'bit' | 'median' | 'jpeg';
  param: number;
}

/** Xu et al.'s MNIST squeezers: 1-bit depth and a 2×2 median filter. */
export const DEFAULT_SQUEEZERS = 'bit:1,median:2';

/** The text form of a squeezer spec, e.g. `median:2`. */
export function formatSqueezer(s: SqueezerSpec): string {
  return `${s.kind}:${s.param}`;
}

/**
 * Parses a comma-separated squeezer list such as `bit:1,median:2,jpeg:0.1`.
 * @throws BulwarkError BULWARK_E_SQUEEZER for an unknown kind, a missing or out-of-range parameter, or an empty list
 */
export function parseSqueezers(text: string): SqueezerSpec[] {
  const hint = 'Write squeezers as a comma-separated list of bit:B (B in 1..16), median:K (K in 1..15) and jpeg:Q (Q > 0), e.g. bit:1,median:2.';
  const parts = text.split(',').map((t) => t.trim());
  if (parts.length === 0 || parts.some((t) => t === '')) throw new BulwarkError('BULWARK_E_SQUEEZER', `squeezer list ${JSON.stringify(text)} has an empty entry`, { hint });
  return parts.map((t) => {
    const m = /^(bit|median|jpeg):([0-9]*\.?[0-9]+(?:e-?[0-9]+)?)$/.exec(t);
    if (!m) throw new BulwarkError('BULWARK_E_SQUEEZER', `unknown squeezer ${JSON.stringify(t)}`, { hint });
    const kind = m[1] as SqueezerSpec['kind'];
    const param = Number(m[2]);
    const ok = kind === 'jpeg' ? param > 0 && Number.isFinite(param) : Number.isInteger(param) && param >= 1 && param <= (kind === 'bit' ? 16 : 15);
    if (!ok) throw new BulwarkError('BULWARK_E_SQUEEZER', `squeezer ${JSON.stringify(t)}: parameter out of range`, { hint });
    return { kind, param };
  });
}

/** The squeezer a spec names, for inputs in `bounds`. */
export function makeSqueezer(s: SqueezerSpec, bounds: [number, number] = [0, 1]): Squeezer {
  if (s.kind === 'bit') return bitDepth(s.param, bounds);
  if (s.kind === 'median') return medianFilter(s.param);
  if (s.kind === 'jpeg') return jpegLike(s.param, bounds);
  throw new BulwarkError('BULWARK_E_SQUEEZER', `unknown squeezer kind ${JSON.stringify((s as { kind: unknown }).kind)}`);
}

/** A detector with a threshold fitted at a false-positive rate (DESIGN.md §4). */
export interface Detector {
  /** Fits the threshold: the (1 − fpr) quantile of the clean scores. */
  fit(clean: Float32Tensor, fpr?: number): Promise<{ threshold: number; fpr: number }>;
  /** Per-example scores (higher is more suspicious). */
  score(x: Float32Tensor): Promise<Float64Array>;
  /** Per example: 1 when the score exceeds the fitted threshold. */
  decide(x: Float32Tensor): Promise<Uint8Array>;
  /** The fitted threshold (undefined before fit). */
  readonly threshold: number | undefined;
}

/** The feature-squeezing detector: a {@link Detector} that also exposes what the adaptive attack needs. */
export interface FeatureSqueezingDetector extends Detector {
  readonly model: Model;
  readonly squeezers: readonly Squeezer[];
  /** The specs of the squeezers when they were given by name (what a detector file stores), else undefined. */
  readonly specs: readonly SqueezerSpec[] | undefined;
  /** Sets a threshold fitted earlier (a detector file); must be finite and ≥ 0. */
  setThreshold(t: number): void;
}

/**
 * Feature squeezing (Xu et al. 2018): flags inputs whose prediction moves much under squeezing.
 * @param model the classifier
 * @param squeezers default: 1-bit depth and a 2×2 median filter (Xu et al.'s MNIST setting); squeezer functions,
 *   specs, or a spec list such as `bit:1,median:2`
 * @param opts a threshold fitted earlier
 * @returns a {@link FeatureSqueezingDetector}
 * @throws BulwarkError BULWARK_E_DETECTOR when score/decide run before fit, or fit gets fewer than 20 examples;
 *   BULWARK_E_SQUEEZER for a bad spec
 * @example const d = featureSqueezing(model); await d.fit(cleanX, 0.05); const flags = await d.decide(x);
 */
export function featureSqueezing(model: Model, squeezers: Squeezer[] | SqueezerSpec[] | string = DEFAULT_SQUEEZERS, opts: { threshold?: number } = {}): FeatureSqueezingDetector {
  const specs: SqueezerSpec[] | undefined = typeof squeezers === 'string' ? parseSqueezers(squeezers) : squeezers.length > 0 && typeof squeezers[0] !== 'function' ? (squeezers as SqueezerSpec[]) : undefined;
  const fns: Squeezer[] = specs ? specs.map((s) => makeSqueezer(s, model.bounds)) : (squeezers as Squeezer[]);
  if (fns.length === 0) throw new BulwarkError('BULWARK_E_SQUEEZER', 'feature squeezing needs at least one squeezer');
  let threshold: number | undefined;
  const setThreshold = (t: number) => {
    if (!(Number.isFinite(t) && t >= 0)) throw new BulwarkError('BULWARK_E_DETECTOR', `a detector threshold must be a finite number >= 0, got ${t}`);
    threshold = t;
  };
  if (opts.threshold !== undefined) setThreshold(opts.threshold);
  const score = async (x: Float32Tensor): Promise<Float64Array> => {
    const n = x.shape[0]!;
    const k = model.numClasses;
    const probs = model.outputKind === 'probs';
    const base = rowSoftmax((await model.predict(x)).data, n, k, probs);
    const out = new Float64Array(n);
    for (const s of fns) {
      const p = rowSoftmax((await model.predict(s(x))).data, n, k, probs);
      for (let i = 0; i < n; i++) {
        let l1 = 0;
        for (let j = 0; j < k; j++) l1 += Math.abs(base[i * k + j]! - p[i * k + j]!);
        out[i] = Math.max(out[i]!, l1);
      }
    }
    return out;
  };
  return {
    model,
    squeezers: fns,
    specs,
    setThreshold,
    get threshold() {
      return threshold;
    },
    async fit(clean, fpr = 0.05) {
      if (!(fpr > 0 && fpr < 1)) throw new BulwarkError('BULWARK_E_ARG', `fpr must be in (0, 1), got ${fpr}`);
      if (clean.shape[0]! < 20) throw new BulwarkError('BULWARK_E_DETECTOR', `fitting needs at least 20 clean examples, got ${clean.shape[0]}`);
      const s = Array.from(await score(clean)).sort((a, b) => a - b);
      // the smallest threshold with at most fpr of the clean scores above it
      threshold = s[Math.min(s.length - 1, Math.ceil((1 - fpr) * s.length) - 1)]!;
      const above = s.filter((v) => v > threshold!).length / s.length;
      return { threshold, fpr: above };
    },
    score,
    async decide(x) {
      if (threshold === undefined) throw new BulwarkError('BULWARK_E_DETECTOR', 'the detector is not fitted');
      const s = await score(x);
      return Uint8Array.from(s, (v) => (v > threshold! ? 1 : 0));
    },
  };
}

/**
 * A model behind an input transformation: predict(x) = f(t(x)). Its gradient is BPDA's straight-through estimate
 * ∇ₓ ≈ ∇f at t(x) (Athalye et al. 2018), so running PGD on it is the adaptive attack against the preprocessing.
 * @param model a white-box model (black-box models get no lossAndGradient)
 * @param transform the preprocessing
 */
export function preprocessedModel(model: Model, transform: Squeezer): Model {
  const predict = (x: Float32Tensor) => model.predict(transform(x));
  if (!model.lossAndGradient) return wrapModel(model, { predict });
  return wrapModel(model, {
    predict,
    lossAndGradient: (x: Float32Tensor, labels: ArrayLike<number>, head?: HeadSpec, targets?: ArrayLike<number>): Promise<LossAndGradient> => gradientModel(model).lossAndGradient(transform(x), labels, head, targets),
  });
}

/**
 * The adaptive attacker's model against feature squeezing (after Athalye et al. 2018 and He et al. 2017's attack on
 * ensembles of weak defenses): logits are the mean of f(x) and f(s(x)) over the squeezers, gradients the sum of
 * their BPDA gradients. PGD on it looks for inputs misclassified with and without squeezing alike, so the squeezing
 * distance — the detector's score — stays small.
 * @param model a white-box model with logit outputs
 * @param squeezers the detector's squeezers
 */
export function squeezeAdaptiveModel(model: Model, squeezers: Squeezer[] = [bitDepth(1, model.bounds), medianFilter(2)]): Model {
  const views: Squeezer[] = [(x) => x, ...squeezers];
  const gm = gradientModel(model);
  const mean = (parts: Float32Array[]) => {
    const out = new Float32Array(parts[0]!.length);
    for (const p of parts) for (let i = 0; i < out.length; i++) out[i] = out[i]! + p[i]! / parts.length;
    return out;
  };
  return wrapModel(model, {
    predict: async (x) => {
      const outs = await Promise.all(views.map(async (v) => (await model.predict(v(x))).data));
      return { data: mean(outs), shape: [x.shape[0]!, model.numClasses], dtype: 'float32' };
    },
    lossAndGradient: async (x, labels, head, targets) => {
      const rs: LossAndGradient[] = [];
      for (const v of views) rs.push(await gm.lossAndGradient(v(x), labels, head, targets));
      const grad = new Float32Array(x.data.length);
      for (const r of rs) for (let i = 0; i < grad.length; i++) grad[i] = grad[i]! + r.grad.data[i]!;
      const loss = mean(rs.map((r) => r.loss));
      return { output: { data: mean(rs.map((r) => r.output.data)), shape: [x.shape[0]!, model.numClasses], dtype: 'float32' }, loss, grad: { data: grad, shape: [...x.shape], dtype: 'float32' } };
    },
  });
}

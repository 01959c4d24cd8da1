/**
 * Output-hardening defenses against model extraction, as Model wrappers: the wrapped model answers with less
 * information per query. Every wrapper returns probabilities (outputKind 'probs') and never a gradient.
 */
import { BulwarkError } from '../../core/errors.js';
import { Rng } from '../../core/rng.js';
import type { Float32Tensor } from '../../core/tensor.js';
import type { Model } from '../../runtime/model.js';

/** How a hardened model answers. */
export type Hardening =
  /** Keep the k largest probabilities, zero the rest (not renormalized, as most APIs return them). */
  | { kind: 'top-k'; k: number }
  /** Round probabilities to `decimals` decimals (Tramèr et al. 2016 studied rounding as a countermeasure). */
  | { kind: 'round'; decimals: number }
  /** One-hot of the top class only. */
  | { kind: 'label-only' }
  /** Add N(0, std²) noise to the probabilities, clip to [0, 1] and renormalize; seeded. */
  | { kind: 'noise'; std: number; seed?: number }
  /**
   * Reverse sigmoid (Lee, Edraki, Lee, Kim, Lee, "Defending Against NN Model Stealing Attacks Using Deceptive
   * Perturbations", IEEE S&P Workshops 2019): y' ∝ y − beta·(s(gamma·s⁻¹(y)) − 1/2), s the sigmoid; keeps the top-1
   * class for small beta while
   * poisoning the probabilities a distillation attack learns from.
   */
  | { kind: 'reverse-sigmoid'; beta: number; gamma: number };

function softmaxRows(t: Float32Tensor): Float32Array {
  const n = t.shape[0]!;
  const k = t.data.length / n;
  const out = new Float32Array(t.data.length);
  for (let i = 0; i < n; i++) {
    let m = -Infinity;
    for (let j = 0; j < k; j++) m = Math.max(m, t.data[i * k + j]!);
    let s = 0;
    for (let j = 0; j < k; j++) s += out[i * k + j] = Math.exp(t.data[i * k + j]! - m);
    for (let j = 0; j < k; j++) out[i * k + j]! /= s;
  }
  return out;
}

/**
 * Probabilities of a model's raw output (softmax of logits; probability outputs as they are).
 * @param model the model whose outputKind decides the conversion
 * @param out its predict() output [N, K]
 */
export function toProbabilities(model: Pick<Model, 'outputKind'>, out: Float32Tensor): Float32Array {
  return model.outputKind === 'probs' ? new Float32Array(out.data) : softmaxRows(out);
}

function checkHardening(h: Hardening): void {
  const bad = (m: string): never => {
    throw new BulwarkError('BULWARK_E_ARG', `output hardening ${h.kind}: ${m}`);
  };
  switch (h.kind) {
    case 'top-k':
      if (!Number.isInteger(h.k) || h.k < 1) bad(`k must be a positive integer, got ${h.k}`);
      break;
    case 'round':
      if (!Number.isInteger(h.decimals) || h.decimals < 0 || h.decimals > 8) bad(`decimals must be an integer in [0, 8], got ${h.decimals}`);
      break;
    case 'noise':
      if (!(h.std >= 0 && Number.isFinite(h.std))) bad(`std must be >= 0, got ${h.std}`);
      break;
    case 'reverse-sigmoid':
      if (!(h.beta > 0 && Number.isFinite(h.beta))) bad(`beta must be > 0, got ${h.beta}`);
      if (!(h.gamma > 0 && Number.isFinite(h.gamma))) bad(`gamma must be > 0, got ${h.gamma}`);
      break;
    case 'label-only':
      break;
    default:
      bad('unknown kind; use top-k, round, label-only, noise or reverse-sigmoid');
  }
}

/**
 * Wraps a model so that it answers hardened probabilities. Queries are counted on the wrapper and the inner model.
 * @param model the model to protect (local or remote)
 * @param h the hardening
 * @returns a black-box Model with outputKind 'probs'
 * @throws BulwarkError BULWARK_E_ARG for a bad hardening parameter
 * @example const served = hardenOutput(model, { kind: 'round', decimals: 2 });
 */
export function hardenOutput(model: Model, h: Hardening): Model {
  checkHardening(h);
  const rng = h.kind === 'noise' ? new Rng(h.seed ?? 0) : undefined;
  const wrapper: Model = {
    inputShape: model.inputShape,
    numClasses: model.numClasses,
    bounds: model.bounds,
    outputKind: 'probs',
    queries: 0,
    async predict(x: Float32Tensor): Promise<Float32Tensor> {
      const out = await model.predict(x);
      const n = out.shape[0]!;
      const k = out.data.length / n;
      const p = toProbabilities(model, out);
      for (let i = 0; i < n; i++) hardenRow(p.subarray(i * k, (i + 1) * k), h, rng);
      wrapper.queries += n;
      return { data: p, shape: [n, k], dtype: 'float32' };
    },
  };
  return wrapper;
}

function hardenRow(r: Float32Array, h: Hardening, rng: Rng | undefined): void {
  const k = r.length;
  switch (h.kind) {
    case 'top-k': {
      if (h.k >= k) return;
      const order = Array.from({ length: k }, (_, j) => j).sort((a, b) => r[b]! - r[a]!);
      for (const j of order.slice(h.k)) r[j] = 0;
      return;
    }
    case 'round': {
      const f = 10 ** h.decimals;
      for (let j = 0; j < k; j++) r[j] = Math.round(r[j]! * f) / f;
      return;
    }
    case 'label-only': {
      let best = 0;
      for (let j = 1; j < k; j++) if (r[j]! > r[best]!) best = j;
      r.fill(0);
      r[best] = 1;
      return;
    }
    case 'noise': {
      let s = 0;
      for (let j = 0; j < k; j++) s += r[j] = Math.min(1, Math.max(0, r[j]! + h.std * rng!.normal()));
      if (s > 0) for (let j = 0; j < k; j++) r[j]! /= s;
      else r.fill(1 / k);
      return;
    }
    case 'reverse-sigmoid': {
      let s = 0;
      for (let j = 0; j < k; j++) {
        const y = Math.min(1 - 1e-7, Math.max(1e-7, r[j]!));
        const inv = Math.log(y / (1 - y));
        const v = Math.max(0, y - h.beta * (1 / (1 + Math.exp(-h.gamma * inv)) - 0.5));
        r[j] = v;
        s += v;
      }
      if (s > 0) for (let j = 0; j < k; j++) r[j]! /= s;
      else r.fill(1 / k);
      return;
    }
  }
}

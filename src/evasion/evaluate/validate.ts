/**
 * Checks done once, before any attack runs, so that bad input ends in a coded error (exit 2) in milliseconds
 * instead of minutes into an evaluation.
 */
import { BulwarkError } from '../../core/errors.js';
import { shapeStr, type Float32Tensor } from '../../core/tensor.js';
import type { Model } from '../../runtime/model.js';
import { rowSize } from '../geometry.js';

/** Norms the robustness evaluation supports (those of every ensemble member). */
export type EvalNorm = 'inf' | 2;

/** The largest meaningful radius: the diameter of the input box in the norm. */
export function boxDiameter(bounds: [number, number], valuesPerExample: number, norm: EvalNorm): number {
  const range = bounds[1] - bounds[0];
  return norm === 'inf' ? range : range * Math.sqrt(valuesPerExample);
}

/**
 * Parses a norm given as text (`inf`, `linf`, `2`, `l2`).
 * @throws BulwarkError BULWARK_E_ARG
 */
export function parseNorm(text: string, flag = '--norm'): EvalNorm {
  const t = text.trim().toLowerCase();
  if (t === 'inf' || t === 'linf' || t === 'l∞') return 'inf';
  if (t === '2' || t === 'l2') return 2;
  throw new BulwarkError('BULWARK_E_ARG', `${flag} must be inf or 2, got ${JSON.stringify(text)}`, { hint: 'The evaluation ensemble (APGD, FAB, Square) supports the L∞ and L2 threat models.' });
}

/**
 * Checks an eps against the model's input box.
 * @throws BulwarkError BULWARK_E_ARG for a negative, zero, non-finite or absurd eps (larger than the box diameter)
 */
export function checkEps(eps: number, norm: EvalNorm, bounds: [number, number], valuesPerExample: number, flag = '--eps'): void {
  if (!Number.isFinite(eps) || eps <= 0) {
    throw new BulwarkError('BULWARK_E_ARG', `${flag} must be a finite radius > 0, got ${eps}`, { hint: 'Give eps in input units, e.g. --eps 0.3 for MNIST L∞, --eps 0.031 (8/255) for CIFAR-10 L∞.' });
  }
  const max = boxDiameter(bounds, valuesPerExample, norm);
  if (eps > max) {
    throw new BulwarkError('BULWARK_E_ARG', `${flag} ${eps} in ${norm === 'inf' ? 'L∞' : 'L2'} exceeds the diameter of the input box (${+max.toPrecision(6)} for bounds [${bounds.join(', ')}] and ${valuesPerExample} values per example): every input would be reachable`, {
      hint: norm === 'inf' ? 'An L∞ eps is in input units: for [0, 1] images use 0.3 (MNIST) or 8/255 ≈ 0.031 (CIFAR-10); did you give it in 0-255 units?' : 'Give eps in input units of the model bounds (L2 on MNIST: 1.5 to 2).',
    });
  }
}

/**
 * Checks that data fits a model: input shape, dtype, values inside the bounds, labels in the class range.
 * @throws BulwarkError BULWARK_E_SHAPE, BULWARK_E_DTYPE, BULWARK_E_NONFINITE, BULWARK_E_ARG (out of bounds), BULWARK_E_LABELS
 */
export function checkData(model: Model, x: Float32Tensor, y: ArrayLike<number> | undefined, what = '--data'): Int32Array {
  const want = model.inputShape;
  const got = x.shape;
  if (got.length !== want.length || got.some((d, i) => i > 0 && want[i]! > 0 && d !== want[i])) {
    const hint = got.length === want.length - 1 ? ' (add a batch dimension)' : got.length === 2 && want.length === 4 ? ' (reshape flat rows to the image shape)' : '';
    throw new BulwarkError('BULWARK_E_SHAPE', `${what} has examples of shape ${shapeStr(got.slice(1))} ([N,...] = ${shapeStr(got)}); the model expects ${shapeStr(want.map((d, i) => (i === 0 && d < 0 ? 'N' : d < 0 ? '?' : d)))}${hint}`, {
      hint: 'Pass data made for this model; `bulwark info <model>` prints its input shape.',
    });
  }
  if (got[0] === 0) throw new BulwarkError('BULWARK_E_SHAPE', `${what} holds no examples`);
  if (!(x.data instanceof Float32Array)) throw new BulwarkError('BULWARK_E_DTYPE', `${what}: inputs must be float32`);
  const [lo, hi] = model.bounds;
  const slack = 1e-6 * Math.max(1, hi - lo);
  const d = rowSize(x);
  for (let j = 0; j < x.data.length; j++) {
    const v = x.data[j]!;
    if (!(v >= lo - slack && v <= hi + slack)) {
      if (!Number.isFinite(v)) throw new BulwarkError('BULWARK_E_NONFINITE', `${what}: example ${Math.floor(j / d)} holds a non-finite value (${v})`);
      throw new BulwarkError('BULWARK_E_ARG', `${what}: value ${v} of example ${Math.floor(j / d)} is outside the model bounds [${lo}, ${hi}]`, {
        hint: 'Scale the data to the model bounds (e.g. divide 0-255 pixels by 255).',
      });
    }
  }
  if (!y) throw new BulwarkError('BULWARK_E_LABELS', `${what} has no labels; a robustness evaluation needs them`);
  if (y.length !== got[0]) throw new BulwarkError('BULWARK_E_LABELS', `${what}: ${y.length} labels for ${got[0]} examples`);
  const k = model.numClasses;
  const labels = new Int32Array(y.length);
  for (let i = 0; i < y.length; i++) {
    const v = y[i]!;
    if (!Number.isInteger(v) || v < 0 || (k > 0 && v >= k)) {
      throw new BulwarkError('BULWARK_E_LABELS', `${what}: label ${i} is ${v}, not a class id of the model's ${k} classes`, { hint: 'The data and the model must use the same class ids.' });
    }
    labels[i] = v;
  }
  return labels;
}

/** Whether a model can serve the white-box members (gradients, and no op without a gradient rule). */
export function gradientsAvailable(model: Model): { ok: boolean; reason?: string } {
  if (typeof model.lossAndGradient !== 'function') return { ok: false, reason: 'the model only predicts (black-box)' };
  const unsupported = (model as { unsupportedOps?: () => string[] }).unsupportedOps?.() ?? [];
  if (unsupported.length > 0) return { ok: false, reason: `the model has ops without gradient rules (${unsupported.join(', ')})` };
  return { ok: true };
}

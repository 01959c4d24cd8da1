/**
 * Jacobian-based dataset augmentation (Papernot, McDaniel, Goodfellow, Jha, Celik, Swami, "Practical Black-Box
 * Attacks against Machine Learning", AsiaCCS 2017, https://arxiv.org/abs/1602.02697): train a substitute on a small
 * seed set labelled by the victim, then grow the set with x + lambda·sign(∇x F_sub(x)[O(x)]), the step that raises
 * the substitute's output for the victim's label, query the victim on the new points, and repeat.
 */
import { BulwarkError } from '../../core/errors.js';
import { Rng } from '../../core/rng.js';
import { argmaxRows, concatRows, gatherRows, type Float32Tensor } from '../../core/tensor.js';
import type { Dataset } from '../../data/index.js';
import { loadModel, type Model } from '../../runtime/model.js';
import { evalReference, measure, newClone, resolveClone, trainClone, type CloneOptions, type CurvePoint, type ExtractionResult } from './clone.js';

/** Options of {@link jacobianAugmentation}. */
export interface JacobianOptions extends CloneOptions {
  /** Victim queries to spend, seed set included. */
  budget: number;
  /** Step size lambda; default 0.1 (the paper's MNIST value). */
  lambda?: number;
  /** The sign of lambda flips every tau rounds (periodic step size, section 6 of the paper); default 3. */
  tau?: number;
  /** Points augmented per round at most (reservoir sampling, the paper's kappa); default unlimited (the set doubles). */
  kappa?: number;
}

/**
 * Papernot et al.'s substitute training with Jacobian-based dataset augmentation. The seed set is queried first,
 * then each round trains the substitute (warm start), augments and queries the new points, until the budget is
 * spent; a last training round follows the last queries.
 * @param victim the model to steal (only predict() is used)
 * @param seedSet a small set of natural inputs the attacker holds (150 test images in the paper); labels unused
 * @param opts budget, lambda, tau, kappa and clone options
 * @returns the substitute, queries spent and the fidelity / accuracy curve (one point per round)
 * @throws BulwarkError BULWARK_E_ARG for a budget smaller than the seed set
 * @example const r = await jacobianAugmentation(victim, await loadData('mnist:test[0:150]'), { budget: 2400 });
 */
export async function jacobianAugmentation(victim: Model, seedSet: Dataset, opts: JacobianOptions): Promise<ExtractionResult> {
  const t0 = performance.now();
  const r = resolveClone(victim, opts);
  const budget = opts.budget;
  const n0 = seedSet.x.shape[0]!;
  if (!Number.isInteger(budget) || budget < n0) throw new BulwarkError('BULWARK_E_ARG', `budget must be an integer >= the seed set size (${n0}), got ${budget}`);
  const lambda = opts.lambda ?? 0.1;
  const tau = opts.tau ?? 3;
  if (!(lambda > 0)) throw new BulwarkError('BULWARK_E_ARG', `lambda must be > 0, got ${lambda}`);
  if (!Number.isInteger(tau) || tau < 1) throw new BulwarkError('BULWARK_E_ARG', `tau must be a positive integer, got ${tau}`);
  const rng = new Rng(r.seed ^ 0x4a616362);
  const ref = await evalReference(victim, opts.evalSet);
  const clone = newClone(victim, r);
  const [lo, hi] = victim.bounds;
  let set: Float32Tensor = seedSet.x;
  let labels = argmaxRows(await victim.predict(set));
  let spent = n0;
  const curve: CurvePoint[] = [];
  for (let round = 0; ; round++) {
    await trainClone(clone, set, labels, r, round);
    if (ref) curve.push(await measure(clone, ref, spent));
    if (spent >= budget) break;
    let parents = Int32Array.from({ length: set.shape[0]! }, (_, i) => i);
    const take = Math.min(parents.length, opts.kappa ?? Infinity, budget - spent);
    if (take < parents.length) parents = rng.permutation(parents.length).slice(0, take);
    const px = gatherRows(set, parents);
    const py = Int32Array.from(parents, (i) => labels[i]!);
    const sub = await loadModel(clone.toOnnx(), r.threads === undefined ? {} : { threads: r.threads });
    // ∇ log p_y has the sign of ∇ p_y, and the CE gradient is -∇ log p_y: step against it to raise p_y.
    const { grad } = await sub.lossAndGradient(px, py, { kind: 'ce' });
    await sub.dispose();
    const step = lambda * (Math.floor(round / tau) % 2 === 0 ? 1 : -1);
    const nx = new Float32Array(px.data.length);
    for (let i = 0; i < nx.length; i++) nx[i] = Math.min(hi, Math.max(lo, px.data[i]! - step * Math.sign(grad.data[i]!)));
    const newX: Float32Tensor = { data: nx, shape: [...px.shape], dtype: 'float32' };
    const newY = argmaxRows(await victim.predict(newX));
    spent += take;
    set = concatRows([set, newX]);
    const all = new Int32Array(labels.length + newY.length);
    all.set(labels);
    all.set(newY, labels.length);
    labels = all;
  }
  return { clone, queries: spent, curve, evalQueries: ref?.queries ?? 0, transfer: { x: set, y: labels }, seconds: (performance.now() - t0) / 1000 };
}

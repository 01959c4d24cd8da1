/**
 * Knockoff Nets (Orekondy, Schiele, Fritz, "Knockoff Nets: Stealing Functionality of Black-Box Models", CVPR 2019,
 * https://arxiv.org/abs/1812.02766): query the victim with images from a surrogate pool, chosen at random or by a
 * gradient bandit over coarse groups of the pool (the adaptive strategy), and train a clone on the answers.
 */
import { BulwarkError } from '../../core/errors.js';
import { Rng } from '../../core/rng.js';
import { concatRows, gatherRows, sizeOf, type Float32Tensor } from '../../core/tensor.js';
import type { Dataset } from '../../data/index.js';
import type { Model } from '../../runtime/model.js';
import { EvalSession } from '../../nn/index.js';
import { evalReference, measure, newClone, resolveClone, trainClone, type CloneOptions, type CurvePoint, type ExtractionResult } from './clone.js';
import { toProbabilities } from './harden.js';

/** Options of {@link knockoffNets}. */
export interface KnockoffOptions extends CloneOptions {
  /** Victim queries to spend (at most the pool size). */
  budget: number;
  /** random: uniform draws without replacement; adaptive: the gradient bandit over pool groups. Default random. */
  strategy?: 'random' | 'adaptive';
  /** Query counts at which the clone is trained and measured; default [budget]. The clone keeps training (warm start). */
  checkpoints?: number[];
  /** Queries per bandit round (adaptive); default 50. */
  roundSize?: number;
  /** Groups of the pool for the bandit: the pool's labels when it has them (coarse classes), else k-means clusters; default 10 clusters. */
  clusters?: number;
  /** Bandit step size; default 0.1. */
  banditLr?: number;
}

/**
 * A surrogate query pool of uniform noise images.
 * @param n images
 * @param shape per-example shape
 * @param seed noise seed
 * @param bounds value range of the noise; default [0, 1]
 */
export function noisePool(n: number, shape: number[], seed = 0, bounds: [number, number] = [0, 1]): Dataset {
  const data = new Float32Array(n * sizeOf(shape));
  new Rng(seed).fillUniform(data, bounds[0], bounds[1]);
  return { name: `noise[${n}]`, x: { data, shape: [n, ...shape], dtype: 'float32' }, y: undefined, numClasses: undefined };
}

/**
 * Seeded k-means (Lloyd's algorithm, k-means++ seeding) on flattened rows; returns the cluster of each row.
 * @param x rows [N, ...]
 * @param k clusters
 * @param seed seed
 * @param iters Lloyd iterations; default 10
 */
export function kmeans(x: Float32Tensor, k: number, seed = 0, iters = 10): Int32Array {
  const n = x.shape[0]!;
  const d = x.data.length / n;
  const rng = new Rng(seed);
  const centers = new Float32Array(k * d);
  const dist = new Float64Array(n).fill(Infinity);
  const sq = (i: number, c: number) => {
    let s = 0;
    for (let j = 0; j < d; j++) s += (x.data[i * d + j]! - centers[c * d + j]!) ** 2;
    return s;
  };
  const first = rng.int(n);
  centers.set(x.data.subarray(first * d, (first + 1) * d), 0);
  for (let c = 1; c < k; c++) {
    let total = 0;
    for (let i = 0; i < n; i++) {
      dist[i] = Math.min(dist[i]!, sq(i, c - 1));
      total += dist[i]!;
    }
    let r = rng.next() * total;
    let pick = n - 1;
    for (let i = 0; i < n; i++) {
      r -= dist[i]!;
      if (r <= 0) {
        pick = i;
        break;
      }
    }
    centers.set(x.data.subarray(pick * d, (pick + 1) * d), c * d);
  }
  const assign = new Int32Array(n);
  for (let it = 0; it < iters; it++) {
    for (let i = 0; i < n; i++) {
      let best = 0;
      let bv = Infinity;
      for (let c = 0; c < k; c++) {
        const v = sq(i, c);
        if (v < bv) {
          bv = v;
          best = c;
        }
      }
      assign[i] = best;
    }
    const sums = new Float64Array(k * d);
    const counts = new Int32Array(k);
    for (let i = 0; i < n; i++) {
      const c = assign[i]!;
      counts[c]!++;
      for (let j = 0; j < d; j++) sums[c * d + j]! += x.data[i * d + j]!;
    }
    for (let c = 0; c < k; c++) if (counts[c]! > 0) for (let j = 0; j < d; j++) centers[c * d + j] = sums[c * d + j]! / counts[c]!;
  }
  return assign;
}

/**
 * Knockoff Nets model extraction against any Model (local ONNX or a remote KServe v2 endpoint): only predict() is used.
 * The clone is trained with cross-entropy on the victim's top-1 answers, so the attack also runs against label-only
 * APIs. With strategy 'adaptive', a gradient bandit (Sutton and Barto, section 2.8) picks the pool group of each
 * query; the reward is the paper's sum of certainty (top-1 minus top-2 victim probability), diversity (how much
 * the answer exceeds the running mean answer) and loss (cross-entropy of the current clone against the victim's
 * answer, scaled by 1/log K).
 * @param victim the model to steal
 * @param pool the surrogate query pool (e.g. fashion-mnist:train for an MNIST victim, or {@link noisePool})
 * @param opts budget, strategy, checkpoints, clone options
 * @returns the clone, queries spent and the fidelity / accuracy curve
 * @throws BulwarkError BULWARK_E_ARG (budget, checkpoints), BULWARK_E_SHAPE (pool shape), BULWARK_E_QUERY_BUDGET (remote budget)
 * @example const r = await knockoffNets(victim, await loadData('fashion-mnist:train[0:5000]'), { budget: 2000, evalSet });
 */
export async function knockoffNets(victim: Model, pool: Dataset, opts: KnockoffOptions): Promise<ExtractionResult> {
  const t0 = performance.now();
  const r = resolveClone(victim, opts);
  const n = pool.x.shape[0]!;
  const budget = opts.budget;
  if (!Number.isInteger(budget) || budget < 1) throw new BulwarkError('BULWARK_E_ARG', `budget must be a positive integer, got ${budget}`);
  if (budget > n) throw new BulwarkError('BULWARK_E_ARG', `budget ${budget} exceeds the pool's ${n} images`, { hint: 'Use a larger pool or a smaller budget (pool images are drawn without replacement).' });
  const per = victim.inputShape.slice(1);
  if (pool.x.shape.slice(1).join(',') !== per.join(',')) throw new BulwarkError('BULWARK_E_SHAPE', `pool images have shape [${pool.x.shape.slice(1).join(',')}]; the victim takes [${per.join(',')}]`);
  const checkpoints = [...new Set(opts.checkpoints ?? [budget])].sort((a, b) => a - b);
  if (checkpoints.some((c) => !Number.isInteger(c) || c < 1 || c > budget)) throw new BulwarkError('BULWARK_E_ARG', `checkpoints must be integers in [1, budget=${budget}], got ${checkpoints.join(', ')}`);
  if (checkpoints.at(-1) !== budget) checkpoints.push(budget);
  const strategy = opts.strategy ?? 'random';
  if (strategy !== 'random' && strategy !== 'adaptive') throw new BulwarkError('BULWARK_E_ARG', `strategy must be random or adaptive, got ${JSON.stringify(strategy)}`);
  const rng = new Rng(r.seed ^ 0x6b6e6f63);
  const ref = await evalReference(victim, opts.evalSet);
  const clone = newClone(victim, r);
  const k = victim.numClasses;
  const xs: Float32Tensor[] = [];
  const ys: number[] = [];
  const curve: CurvePoint[] = [];
  let spent = 0;
  let round = 0;

  // Groups for the bandit: coarse labels of the pool, else k-means clusters.
  const groups: number[][] = [];
  let pref = new Float64Array(0);
  if (strategy === 'adaptive') {
    const assign = pool.y ?? kmeans(pool.x, opts.clusters ?? 10, r.seed);
    for (let i = 0; i < n; i++) (groups[assign[i]!] ??= []).push(i);
    for (const g of groups) if (g) rng.shuffle(g);
    pref = new Float64Array(groups.length);
  }
  const order = rng.permutation(n);
  let cursor = 0;
  const meanAnswer = new Float64Array(k).fill(1 / k);
  let baseline = 0;
  let rewardsSeen = 0;
  let evalNet: EvalSession | undefined;

  const takeRandom = (m: number): number[] => {
    const idx = Array.from(order.subarray(cursor, cursor + m));
    cursor += m;
    return idx;
  };

  try {
    for (const cp of checkpoints) {
      while (spent < cp) {
        const m = Math.min(cp - spent, strategy === 'adaptive' ? opts.roundSize ?? 50 : cp - spent);
        let idx: number[];
        const acts: number[] = [];
        const policies: { live: number[]; probs: number[] }[] = [];
        if (strategy === 'random') idx = takeRandom(m);
        else {
          idx = [];
          for (let q = 0; q < m; q++) {
            const live = groups.map((g, a) => (g && g.length > 0 ? a : -1)).filter((a) => a >= 0);
            const probs = softmaxOver(pref, live);
            let u = rng.next();
            let a = live.at(-1)!;
            for (let t = 0; t < live.length; t++) {
              u -= probs[t]!;
              if (u <= 0) {
                a = live[t]!;
                break;
              }
            }
            idx.push(groups[a]!.pop()!);
            acts.push(a);
            policies.push({ live, probs });
          }
        }
        const xb = gatherRows(pool.x, idx);
        const probs = toProbabilities(victim, await victim.predict(xb));
        spent += m;
        xs.push(xb);
        for (let i = 0; i < m; i++) {
          let best = 0;
          for (let j = 1; j < k; j++) if (probs[i * k + j]! > probs[i * k + best]!) best = j;
          ys.push(best);
        }
        if (strategy === 'adaptive') {
          const cloneLogits = evalNet ? await evalNet.logits(xb) : undefined;
          for (let i = 0; i < m; i++) {
            const p = probs.subarray(i * k, (i + 1) * k);
            const sorted = Array.from(p).sort((a, b) => b - a);
            const cert = sorted[0]! - (sorted[1] ?? 0);
            let div = 0;
            for (let j = 0; j < k; j++) div += Math.max(0, p[j]! - meanAnswer[j]!);
            for (let j = 0; j < k; j++) meanAnswer[j] = 0.95 * meanAnswer[j]! + 0.05 * p[j]!;
            let loss = 0;
            if (cloneLogits) {
              const z = cloneLogits.subarray(i * k, (i + 1) * k);
              const mx = Math.max(...z);
              const lse = mx + Math.log(z.reduce((s, v) => s + Math.exp(v - mx), 0));
              for (let j = 0; j < k; j++) loss -= p[j]! * (z[j]! - lse);
              loss = Math.min(1, loss / Math.log(k));
            }
            const reward = cert + div + loss;
            rewardsSeen++;
            baseline += (reward - baseline) / rewardsSeen;
            // Gradient-bandit update under the policy the action was drawn from.
            const a = acts[i]!;
            const { live, probs: pi } = policies[i]!;
            const lr = opts.banditLr ?? 0.1;
            live.forEach((b, t) => {
              pref[b] = pref[b]! + lr * (reward - baseline) * ((b === a ? 1 : 0) - pi[t]!);
            });
          }
        }
      }
      await trainClone(clone, concatRows(xs), Int32Array.from(ys), r, round++);
      if (strategy === 'adaptive') {
        await evalNet?.release();
        evalNet = await EvalSession.create(clone);
      }
      if (ref) curve.push(await measure(clone, ref, spent));
    }
  } finally {
    await evalNet?.release();
  }
  return { clone, queries: spent, curve, evalQueries: ref?.queries ?? 0, transfer: { x: concatRows(xs), y: Int32Array.from(ys) }, seconds: (performance.now() - t0) / 1000 };
}

function softmaxOver(pref: Float64Array, live: number[]): number[] {
  const m = Math.max(...live.map((a) => pref[a]!));
  const e = live.map((a) => Math.exp(pref[a]! - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}

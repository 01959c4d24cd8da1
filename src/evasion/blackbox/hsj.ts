/**
 * HopSkipJumpAttack (Chen, Jordan, Wainwright, IEEE S&P 2020, arXiv:1904.02144): a decision-based attack that
 * sees only the predicted class. It starts from any adversarial point, and repeats: binary search to the decision
 * boundary, estimate the boundary's normal from the signs of decisions at random points around it (Monte Carlo with
 * a baseline), step along it with a geometric step-size search, and search back to the boundary. The sample count
 * grows as init·√t, as the paper prescribes. L2 and L∞; untargeted (φ(x') = 1 when x' is misclassified) and
 * targeted (φ(x') = 1 when x' is classified as the target; the start is an image of the target class from a pool
 * the caller passes, nearest first, or else uniform noise the model assigns to the target).
 */
import { BulwarkError } from '../../core/errors.js';
import type { Float32Tensor } from '../../core/tensor.js';
import { defineSchema, commonFields } from '../options.js';
import { defineAttack } from '../runner.js';
import type { AttackContext, AttackDefinition, CommonOptions, CraftOutput } from '../types.js';
import { clamp, exampleStreams, isAdversarial, rowsTensor } from './common.js';
import { QueryLedger, queryStats } from './queries.js';

/** Options of {@link hopSkipJump}. */
export interface HsjOptions extends CommonOptions {
  /** Iterations of (gradient estimate, step, binary search); the paper's default is 40. */
  steps: number;
  /** Samples of the first gradient estimate; iteration t uses initEvals·√t (the paper's schedule). */
  initEvals: number;
  /** Cap of samples per gradient estimate. */
  maxEvals: number;
  /** Binary-search tolerance factor gamma: theta = gamma/d^{3/2} (L2) or gamma/d² (L∞). */
  gamma: number;
  /** Queries each example may use, all phases included. */
  maxQueries: number;
  /** Random uniform draws tried per example to find a misclassified starting point. */
  initTries: number;
  /** Halvings allowed in the geometric step-size search before the step is skipped. */
  maxHalvings: number;
  /** Targeted: labelled images to start from (those labelled with an example's target, nearest first). */
  targetPool: TargetPool | undefined;
}

/** Labelled images a targeted HopSkipJump run may start from. */
export interface TargetPool {
  /** Images [M, ...] with the attacked inputs' row shape, inside the model bounds. */
  x: Float32Tensor;
  /** Their labels [M]. */
  y: Int32Array;
}

function parseTargetPool(v: unknown, key: string, attack: string): TargetPool {
  const bad = (why: string): never => {
    throw new BulwarkError('BULWARK_E_ARG', `${attack}: option ${key} ${why}`, { hint: 'Pass { x: images [M, ...] (float32), y: labels [M] }, e.g. the data being attacked.' });
  };
  if (typeof v !== 'object' || v === null) return bad('must be { x, y }');
  const extra = Object.keys(v).filter((k) => k !== 'x' && k !== 'y');
  if (extra.length) bad(`has unknown key ${JSON.stringify(extra[0])}`);
  const { x, y } = v as { x?: Float32Tensor; y?: ArrayLike<number> };
  if (!x || !(x.data instanceof Float32Array) || !Array.isArray(x.shape) || x.shape.length < 2) return bad('x must be a float32 tensor [M, ...]');
  const m = x.shape[0]!;
  if (x.data.length !== x.shape.reduce((a, b) => a * b, 1)) bad(`x holds ${x.data.length} values for shape [${x.shape.join(', ')}]`);
  if (!y || typeof y.length !== 'number' || y.length !== m) return bad(`y must hold one label per image (${m})`);
  const labels = new Int32Array(m);
  for (let i = 0; i < m; i++) {
    const l = y[i]!;
    if (!Number.isInteger(l) || l < 0) bad(`y[${i}] = ${l} is not a class id`);
    labels[i] = l;
  }
  for (let j = 0; j < x.data.length; j++) if (!Number.isFinite(x.data[j]!)) bad(`x holds a non-finite value at flat index ${j}`);
  return { x, y: labels };
}

const PAPER = 'Chen, Jordan, Wainwright 2020, HopSkipJumpAttack, https://arxiv.org/abs/1904.02144';

/** Rows per gradient-estimation group, to bound memory (rows × example size floats). */
const MAX_ROWS_ELEMENTS = 1 << 23;

interface State {
  /** Current boundary point (adversarial), or undefined before initialization. */
  cur: Float32Array | undefined;
  dist: number;
  best: Float32Array | undefined;
  bestDist: number;
  stopped: boolean;
}

async function craftHsj(ctx: AttackContext<HsjOptions>): Promise<CraftOutput> {
  const { model, x, y, targets, options: o } = ctx;
  const n = x.shape[0]!;
  const rowShape = x.shape.slice(1);
  const d = x.data.length / n;
  const [lo, hi] = ctx.bounds;
  const linf = o.norm === 'inf';
  const theta = linf ? o.gamma / (d * d) : o.gamma / (Math.sqrt(d) * d);
  const ledger = new QueryLedger(model, n, o.maxQueries);
  const rngs = exampleStreams(ctx);
  const xi = (i: number) => x.data.subarray(i * d, (i + 1) * d);
  const st: State[] = Array.from({ length: n }, () => ({ cur: undefined, dist: Infinity, best: undefined, bestDist: Infinity, stopped: false }));
  const distance = (a: Float32Array, i: number): number => {
    const b = xi(i);
    let s = 0;
    for (let j = 0; j < d; j++) {
      const v = Math.abs(a[j]! - b[j]!);
      s = linf ? Math.max(s, v) : s + v * v;
    }
    return linf ? s : Math.sqrt(s);
  };
  // Decisions on rows owned by examples; true = adversarial.
  const decide = async (rows: Float32Array, owners: number[]): Promise<boolean[]> => {
    const out = await ledger.predict(rowsTensor(rows, owners.length, rowShape), owners);
    const k = out.length / Math.max(owners.length, 1);
    return owners.map((i, r) => isAdversarial(out, r, k, y[i]!, targets ? targets[i]! : undefined));
  };
  // Queries a boundary search may take: L2 bisects a blend factor in [0, 1] to theta; L∞ bisects a radius in [0, d0]
  // (d0 at most the box's width) to min(d0·theta, theta), which takes log2(max(1, d0)/theta) steps.
  const searchSteps = Math.ceil(Math.log2((linf ? Math.max(1, hi - lo) : 1) / theta)) + 1;
  const done = (i: number): boolean => st[i]!.stopped || (Number.isFinite(o.eps) && st[i]!.bestDist <= o.eps);

  // 1. Starting points. Targeted: images of the target class from the pool, nearest to x_i first (the paper starts
  // from a sample of the target class), each tried with one query until the model assigns one to the target.
  const noise = new Map<number, Float32Array>();
  if (targets && o.targetPool) {
    const pool = o.targetPool;
    const pd = pool.x.data.length / pool.x.shape[0]!;
    if (pd !== d || pool.x.shape.length !== x.shape.length || pool.x.shape.some((v, a) => a > 0 && v !== x.shape[a])) {
      throw new BulwarkError('BULWARK_E_SHAPE', `hsj: targetPool images have shape [${pool.x.shape.slice(1).join(', ')}]; the attacked inputs have [${rowShape.join(', ')}]`);
    }
    // The pool is grouped by class once; each example ranks only the images of its target, keeping the initTries
    // nearest (ties by pool index, as a full sort by (distance, index) would) and abandoning a distance once it
    // cannot beat the current last of them.
    const byClass = new Map<number, number[]>();
    for (let j = 0; j < pool.y.length; j++) {
      const c = pool.y[j]!;
      const list = byClass.get(c);
      if (list) list.push(j);
      else byClass.set(c, [j]);
    }
    const nearest = (i: number, cands: readonly number[], k: number): number[] => {
      const b = xi(i);
      const best: { j: number; dist: number; raw: number }[] = []; // ascending by (dist, j)
      for (const j of cands) {
        const bound = best.length === k ? best[k - 1]!.raw : Infinity;
        const off = j * d;
        let raw = 0;
        let q = 0;
        for (; q < d; q++) {
          const v = Math.abs(pool.x.data[off + q]! - b[q]!);
          raw = linf ? Math.max(raw, v) : raw + v * v;
          if (raw >= bound) break; // the distance only grows: it cannot beat the last kept (ties lose by index)
        }
        if (q < d) continue;
        const dist = linf ? raw : Math.sqrt(raw);
        let at = best.length;
        while (at > 0 && best[at - 1]!.dist > dist) at--;
        if (at >= k) continue;
        best.splice(at, 0, { j, dist, raw });
        if (best.length > k) best.pop();
      }
      return best.map((c) => c.j);
    };
    const order = new Map<number, number[]>();
    for (let i = 0; i < n; i++) order.set(i, nearest(i, byClass.get(targets[i]!) ?? [], o.initTries));
    for (let t = 0; t < o.initTries; t++) {
      const need = [...Array(n).keys()].filter((i) => !noise.has(i) && order.get(i)!.length > t && ledger.remaining(i) >= 1 + searchSteps);
      if (need.length === 0) break;
      const rows = new Float32Array(need.length * d);
      for (let a = 0; a < need.length; a++) {
        const j = order.get(need[a]!)![t]!;
        for (let q = 0; q < d; q++) rows[a * d + q] = clamp(pool.x.data[j * d + q]!, lo, hi);
      }
      const dec = await decide(rows, need);
      need.forEach((i, a) => {
        if (dec[a]) noise.set(i, rows.slice(a * d, (a + 1) * d));
      });
    }
  }
  // Otherwise (untargeted, or no pool image worked): uniform noise until adversarial.
  for (let t = 0; t < o.initTries; t++) {
    const need = [...Array(n).keys()].filter((i) => !noise.has(i) && ledger.remaining(i) >= 1 + searchSteps);
    if (need.length === 0) break;
    const rows = new Float32Array(need.length * d);
    for (let a = 0; a < need.length; a++) rngs[need[a]!]!.fillUniform(rows.subarray(a * d, (a + 1) * d), lo, hi);
    const dec = await decide(rows, need);
    need.forEach((i, a) => {
      if (dec[a]) noise.set(i, rows.slice(a * d, (a + 1) * d));
    });
  }
  for (let i = 0; i < n; i++) if (!noise.has(i)) st[i]!.stopped = true;
  await boundarySearch([...noise.keys()], (i) => noise.get(i)!);

  // 2. Iterations.
  for (let t = 1; t <= o.steps; t++) {
    const evals = Math.min(Math.floor(o.initEvals * Math.sqrt(t)), o.maxEvals);
    const plan = new Map<number, number>();
    for (let i = 0; i < n; i++) {
      if (done(i)) continue;
      const afford = ledger.remaining(i) - o.maxHalvings - searchSteps;
      if (afford < Math.min(evals, 10)) {
        st[i]!.stopped = true;
        continue;
      }
      plan.set(i, Math.min(evals, afford));
    }
    if (plan.size === 0) break;
    const active = [...plan.keys()];
    // Gradient direction at the boundary point, grouped to bound memory.
    const updates = new Map<number, Float32Array>();
    let group: number[] = [];
    let groupRows = 0;
    const flush = async (): Promise<void> => {
      if (group.length === 0) return;
      const rows = new Float32Array(groupRows * d);
      const dirs = new Float32Array(groupRows * d);
      const owners: number[] = [];
      let r = 0;
      for (const i of group) {
        const s = st[i]!;
        const delta = t === 1 ? 0.1 * (hi - lo) : (linf ? d * theta : Math.sqrt(d) * theta) * s.dist;
        const rng = rngs[i]!;
        for (let e = 0; e < plan.get(i)!; e++, r++) {
          const u = dirs.subarray(r * d, (r + 1) * d);
          if (linf) rng.fillUniform(u, -1, 1);
          else rng.fillNormal(u);
          let nrm = 0;
          for (let j = 0; j < d; j++) nrm += u[j]! * u[j]!;
          nrm = Math.sqrt(nrm) || 1;
          for (let j = 0; j < d; j++) {
            const v = clamp(s.cur![j]! + (delta * u[j]!) / nrm, lo, hi);
            rows[r * d + j] = v;
            u[j] = (v - s.cur![j]!) / delta;
          }
          owners.push(i);
        }
      }
      const dec = await decide(rows, owners);
      r = 0;
      for (const i of group) {
        const m = plan.get(i)!;
        let mean = 0;
        for (let e = 0; e < m; e++) mean += dec[r + e] ? 1 : -1;
        mean /= m;
        const g = new Float64Array(d);
        for (let e = 0; e < m; e++, r++) {
          const f = dec[r] ? 1 : -1;
          // Baseline subtraction; when all decisions agree the mean direction is used, signed (as the paper).
          const wgt = Math.abs(mean) === 1 ? mean : f - mean;
          for (let j = 0; j < d; j++) g[j]! += wgt * dirs[r * d + j]!;
        }
        let gn = 0;
        for (let j = 0; j < d; j++) gn += g[j]! * g[j]!;
        gn = Math.sqrt(gn) || 1;
        const up = new Float32Array(d);
        for (let j = 0; j < d; j++) up[j] = linf ? Math.sign(g[j]!) : g[j]! / gn;
        updates.set(i, up);
      }
      group = [];
      groupRows = 0;
    };
    for (const i of active) {
      if (groupRows > 0 && (groupRows + plan.get(i)!) * d > MAX_ROWS_ELEMENTS) await flush();
      group.push(i);
      groupRows += plan.get(i)!;
    }
    await flush();

    // Geometric step-size search: eps_t = dist/√t, halved until the step lands adversarial.
    const step = new Map<number, number>(active.map((i) => [i, st[i]!.dist / Math.sqrt(t)]));
    const moved = new Map<number, Float32Array>();
    let searching = [...active];
    for (let h = 0; h < o.maxHalvings && searching.length > 0; h++) {
      const rows = new Float32Array(searching.length * d);
      searching.forEach((i, a) => {
        const s = st[i]!;
        const up = updates.get(i)!;
        const e = step.get(i)!;
        for (let j = 0; j < d; j++) rows[a * d + j] = clamp(s.cur![j]! + e * up[j]!, lo, hi);
      });
      const dec = await decide(rows, searching);
      const next: number[] = [];
      searching.forEach((i, a) => {
        if (dec[a]) moved.set(i, rows.slice(a * d, (a + 1) * d));
        else {
          step.set(i, step.get(i)! / 2);
          next.push(i);
        }
      });
      searching = next;
    }
    // Back to the boundary from the new point (from the old one when no step was found).
    await boundarySearch(active, (i) => moved.get(i) ?? st[i]!.cur!);
  }

  const adv = new Float32Array(x.data);
  const finalDist = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const s = st[i]!;
    if (s.best) adv.set(s.best, i * d);
    finalDist[i] = s.bestDist;
  }
  const counts = ledger.counts();
  return {
    adversarial: { data: adv, shape: [...x.shape], dtype: 'float32' },
    extras: { queriesPerExample: counts, queriesIndex: Int32Array.from(ctx.index), queryStats: queryStats(counts), hsjDistance: finalDist },
  };

  /**
   * Binary search between x_i and an adversarial point p_i, to tolerance theta (L2: on the blend factor; L∞: on the
   * radius of the box around x_i that p_i is clipped to), for all listed examples at once.
   */
  async function boundarySearch(list: number[], start: (i: number) => Float32Array): Promise<void> {
    const pts = new Map(list.map((i) => [i, start(i)]));
    const lowA = new Map<number, number>();
    const highA = new Map<number, number>();
    const tol = new Map<number, number>();
    for (const i of list) {
      const d0 = linf ? distance(pts.get(i)!, i) : 1;
      lowA.set(i, 0);
      highA.set(i, d0);
      tol.set(i, linf ? Math.min(d0 * theta, theta) : theta);
    }
    const at = (i: number, a: number, out: Float32Array, off: number): void => {
      const p = pts.get(i)!;
      const xr = xi(i);
      for (let j = 0; j < d; j++) out[off + j] = linf ? clamp(p[j]!, xr[j]! - a, xr[j]! + a) : (1 - a) * xr[j]! + a * p[j]!;
    };
    let open = list.filter((i) => highA.get(i)! - lowA.get(i)! > tol.get(i)! && ledger.remaining(i) >= 1);
    while (open.length > 0) {
      const rows = new Float32Array(open.length * d);
      const mids = open.map((i, a) => {
        const m = (lowA.get(i)! + highA.get(i)!) / 2;
        at(i, m, rows, a * d);
        return m;
      });
      const dec = await decide(rows, open);
      open.forEach((i, a) => (dec[a] ? highA : lowA).set(i, mids[a]!));
      open = open.filter((i) => highA.get(i)! - lowA.get(i)! > tol.get(i)! && ledger.remaining(i) >= 1);
    }
    for (const i of list) {
      const s = st[i]!;
      const p = new Float32Array(d);
      at(i, highA.get(i)!, p, 0);
      s.cur = p;
      s.dist = distance(p, i);
      if (s.dist < s.bestDist) {
        s.bestDist = s.dist;
        s.best = p;
      }
    }
  }
}

/** The HopSkipJump definition (registered as `hsj`). */
export const hsjDefinition: AttackDefinition<HsjOptions> = {
  name: 'hsj',
  summary: 'HopSkipJump: decision-based (labels only) boundary walk with estimated gradients (black-box, L2 and L∞)',
  paper: PAPER,
  whiteBox: false,
  minimumNorm: true,
  norms: [2, 'inf'],
  targeted: true,
  schema: defineSchema<HsjOptions>(
    {
      ...commonFields({ norms: [2, 'inf'], eps: Infinity, epsDoc: 'Threat-model radius; Infinity (default) gives minimum-norm adversarials; a finite eps stops an example once it is within eps.' }),
      steps: { type: 'number', integer: true, min: 0, default: 40, doc: 'Iterations (gradient estimate, geometric step, binary search).', ref: PAPER },
      initEvals: { type: 'number', integer: true, min: 1, default: 100, doc: 'Samples of the first gradient estimate; iteration t uses initEvals·√t.', ref: PAPER },
      maxEvals: { type: 'number', integer: true, min: 1, default: 10000, doc: 'Cap of samples per gradient estimate.', ref: PAPER },
      gamma: { type: 'number', min: 0, exclusiveMin: true, default: 1, doc: 'Binary-search tolerance factor: theta = gamma/d^{3/2} (L2), gamma/d² (L∞).', ref: PAPER },
      maxQueries: { type: 'number', integer: true, min: 1, default: 25000, doc: 'Queries per example, all phases included; an example stops before a phase it cannot afford.' },
      initTries: { type: 'number', integer: true, min: 1, default: 100, doc: 'Uniform random draws per example to find an adversarial starting point (targeted: also the most pool images tried).' },
      maxHalvings: { type: 'number', integer: true, min: 1, default: 25, doc: 'Halvings of the geometric step-size search before a step is skipped.' },
      targetPool: {
        type: 'custom',
        optional: true,
        describeDefault: 'none',
        parse: parseTargetPool,
        summarize: (v) => ({ images: (v as TargetPool).y.length }),
        doc: 'Targeted: labelled images `{ x, y }` to start from (the paper starts from a sample of the target class); for each example the images labelled with its target are tried nearest first, one query each, up to initTries, then uniform noise. The CLI passes the attacked data.',
        ref: PAPER,
      },
    },
  ),
  craft: craftHsj,
};

/**
 * HopSkipJumpAttack (arXiv:1904.02144), untargeted or targeted, through the shared runner. Needs only predicted classes; spends
 * at most `maxQueries` per example and reports per-example counts in `extras.queriesPerExample` and the final
 * distances in `extras.hsjDistance` (Infinity where no starting point was found).
 * @param model any model (only the argmax of `predict` is used)
 * @param x clean inputs [N, ...] in the model bounds
 * @param y labels [N]
 * @param options `{ norm: 2 | 'inf', eps (default Infinity), steps, initEvals, maxEvals, gamma, maxQueries, seed,
 *   criterion, targetPool }`; targeted: `criterion: { kind: 'targeted', targets }` with `targetPool: { x, y }`
 * @returns the verified {@link AttackResult}; `norms.l2` holds the distances reached
 * @throws BulwarkError BULWARK_E_ARG (bad options), errors of the model
 * @example const r = await hopSkipJump(model, x, y, { norm: 2, steps: 20 }); median(r.norms.l2)
 * @example await hopSkipJump(model, x, y, { criterion: { kind: 'targeted', targets }, targetPool: { x: pool, y: poolLabels } })
 */
export const hopSkipJump = defineAttack<HsjOptions>(hsjDefinition);

/**
 * Interval bound propagation as an ONNX graph, for IBP training (Gowal et al. 2019, https://arxiv.org/abs/1810.12715).
 *
 * The graph takes the network's weights as inputs (like every training graph), so Bulwark's autodiff pass
 * differentiates the bounds with respect to the weights. Next to the ordinary forward pass it propagates the L∞ box
 * [max(x − ε, 0), min(x + ε, 1)] in centre-radius form:
 *  - Dense / Conv: c' = W·c + b, r' = |W|·r (an Abs of the weight input, so the gradient flows through |W|);
 *  - ReLU, max and average pooling (monotone): applied to the lower and the upper bound;
 *  - Flatten: both.
 * The last Dense layer is folded into the margins (elision, Gowal et al. §3): for class j,
 *   ẑ_j = upper bound of (z_j − z_y) = (w_j − w_y)·c + |w_j − w_y|·r + b_j − b_y,
 * which is 0 for j = y, so ẑ are Gowal's worst-case logits (the negated margin lower bounds, true class entry 0).
 * The per-example loss is κ·CE(z, y) + (1 − κ)·CE(ẑ, y), with ε and κ fed as inputs so one session serves the
 * whole schedule. The verification counterpart (the same bounds in float64 TypeScript) is `ibpVerify` in ibp.ts.
 */
import type * as ort from 'onnxruntime-node';
import { BulwarkError } from '../../core/errors.js';
import { sizeOf, type Float32Tensor } from '../../core/tensor.js';
import { normalizeOpset, simplifyForGradient, toFloat64 } from '../../autodiff/normalize.js';
import { buildGradient } from '../../autodiff/walker.js';
import { GraphBuilder } from '../../onnx/builder.js';
import { ELEM, type Graph } from '../../onnx/ir.js';
import { probeShapes } from '../../runtime/probe.js';
import { createSession, runSession, toOrt } from '../../runtime/session.js';
import { AvgPool2d, BatchNorm, Conv2d, Dense, Flatten, GlobalAvgPool, MaxPool2d, ReLU, Sequential, type Layer } from '../../nn/layers.js';
import { INPUT_NAME, OUTPUT_NAME, type Network } from '../../nn/network.js';

export const GOWAL_PAPER = 'Gowal et al. 2019, https://arxiv.org/abs/1810.12715';

/** Names of the IBP graph's extra inputs. */
export const IBP_EPS_INPUT = 'bulwark_ibp_eps';
export const IBP_KAPPA_INPUT = 'bulwark_ibp_kappa';
export const IBP_LABELS_INPUT = 'bulwark_ibp_labels';

/** Layers the IBP training graph bounds. */
export const IBP_TRAIN_LAYERS = ['Dense', 'Conv2d', 'ReLU', 'MaxPool2d', 'AvgPool2d', 'GlobalAvgPool', 'Flatten', 'Sequential'] as const;

/** The IBP training graph and the names a step feeds and reads. */
export interface IbpGraph {
  graph: Graph;
  /** Per-example κ·CE(clean) + (1 − κ)·CE(worst) [N]. */
  loss: string;
  /** Per-example CE of the worst-case logits [N]. */
  robustLoss: string;
  /** Clean logits [N, K]. */
  logits: string;
  /** Worst-case logits ẑ [N, K]: upper bounds of z_j − z_y (0 at the label). */
  worst: string;
  /** Parameter name -> gradient output of Σ loss (absent when built without gradients). */
  grads: Map<string, string>;
  /** Whether the last Dense layer was folded into the margins. */
  elided: boolean;
}

function refuse(layer: Layer, why: string): never {
  const kind = layer.constructor.name;
  throw new BulwarkError('BULWARK_E_UNSUPPORTED_OP', `IBP training does not support layer ${layer.name} (${kind}): ${why}`, {
    hint: `IBP training bounds networks of ${IBP_TRAIN_LAYERS.join(', ')}; remove the layer (BatchNorm, Dropout, residual blocks and non-ReLU activations are not bounded here) or use --adv pgd.`,
  });
}

/** The leaf layers of a Sequential tree, in execution order. */
function leaves(l: Layer): Layer[] {
  if (l instanceof Sequential) return l.layers.flatMap(leaves);
  if (l instanceof Dense || l instanceof Conv2d || l instanceof ReLU || l instanceof MaxPool2d || l instanceof AvgPool2d || l instanceof GlobalAvgPool || l instanceof Flatten) return [l];
  if (l instanceof BatchNorm) refuse(l, 'batch statistics of an interval are not bounded in training');
  return refuse(l, 'no interval rule for this layer');
}

/** A box in one of two equivalent forms; each step converts to the form it needs. */
type Box = { c: string; r: string; lo?: undefined; hi?: undefined } | { lo: string; hi: string; c?: undefined; r?: undefined };

/**
 * Appends the bound propagation, the worst-case logits and the mixed loss to a graph holding the network's forward
 * pass (weights as inputs, logits at OUTPUT_NAME).
 */
function appendBounds(g: Graph, net: Network, floatType: number): Omit<IbpGraph, 'grads' | 'graph'> {
  const b = new GraphBuilder(g, floatType);
  const K = net.numClasses;
  g.inputs.push({ name: IBP_LABELS_INPUT, elemType: ELEM.INT64, shape: ['N'] });
  g.inputs.push({ name: IBP_EPS_INPUT, elemType: floatType, shape: [1] });
  g.inputs.push({ name: IBP_KAPPA_INPUT, elemType: floatType, shape: [1] });
  const layers = leaves(net.root);
  const last = layers[layers.length - 1];
  const elide = last instanceof Dense;
  const body = elide ? layers.slice(0, -1) : layers;

  const lo0 = b.node('Max', [b.sub(INPUT_NAME, IBP_EPS_INPUT), b.scalar(0)], {}, 'ibp/input_lo');
  const hi0 = b.node('Min', [b.add(INPUT_NAME, IBP_EPS_INPUT), b.scalar(1)], {}, 'ibp/input_hi');
  let box: Box = { lo: lo0, hi: hi0 };
  const half = b.scalar(0.5);
  const cr = (x: Box): { c: string; r: string } => (x.c !== undefined ? { c: x.c, r: x.r } : { c: b.mul(b.add(x.lo, x.hi), half), r: b.mul(b.sub(x.hi, x.lo), half) });
  const lh = (x: Box): { lo: string; hi: string } => (x.lo !== undefined ? { lo: x.lo, hi: x.hi } : { lo: b.sub(x.c, x.r), hi: b.add(x.c, x.r) });
  for (const l of body) {
    const tag = `ibp/${l.name}`;
    if (l instanceof Dense) {
      const { c, r } = cr(box);
      const absW = b.node('Abs', [l.weight.name], {}, `${tag}/abs_w`);
      box = { c: b.node('Gemm', l.bias ? [c, l.weight.name, l.bias.name] : [c, l.weight.name], { transB: 1 }, `${tag}/c`), r: b.node('Gemm', [r, absW], { transB: 1 }, `${tag}/r`) };
    } else if (l instanceof Conv2d) {
      const { c, r } = cr(box);
      const p = l.padding;
      const attrs = { kernel_shape: [l.kernel, l.kernel], strides: [l.stride, l.stride], pads: [p, p, p, p], dilations: [l.dilation, l.dilation], group: l.groups };
      const absW = b.node('Abs', [l.weight.name], {}, `${tag}/abs_w`);
      box = { c: b.node('Conv', l.bias ? [c, l.weight.name, l.bias.name] : [c, l.weight.name], attrs, `${tag}/c`), r: b.node('Conv', [r, absW], attrs, `${tag}/r`) };
    } else if (l instanceof ReLU) {
      const { lo, hi } = lh(box);
      box = { lo: b.node('Relu', [lo], {}, `${tag}/lo`), hi: b.node('Relu', [hi], {}, `${tag}/hi`) };
    } else if (l instanceof MaxPool2d || l instanceof AvgPool2d) {
      const { lo, hi } = lh(box);
      const p = l.padding;
      const op = l instanceof MaxPool2d ? 'MaxPool' : 'AveragePool';
      const attrs = { kernel_shape: [l.kernel, l.kernel], strides: [l.stride, l.stride], pads: [p, p, p, p], ...(op === 'AveragePool' ? { count_include_pad: 1 } : {}) };
      box = { lo: b.node(op, [lo], attrs, `${tag}/lo`), hi: b.node(op, [hi], attrs, `${tag}/hi`) };
    } else if (l instanceof GlobalAvgPool) {
      const { lo, hi } = lh(box);
      box = { lo: b.node('GlobalAveragePool', [lo], {}, `${tag}/lo`), hi: b.node('GlobalAveragePool', [hi], {}, `${tag}/hi`) };
    } else if (l instanceof Flatten) {
      box = box.c !== undefined ? { c: b.node('Flatten', [box.c], { axis: 1 }, `${tag}/c`), r: b.node('Flatten', [box.r], { axis: 1 }, `${tag}/r`) } : { lo: b.node('Flatten', [box.lo], { axis: 1 }, `${tag}/lo`), hi: b.node('Flatten', [box.hi], { axis: 1 }, `${tag}/hi`) };
    }
  }
  const values = b.initializer('ibp/onehot_values', ELEM.FLOAT, [2], new Float32Array([0, 1]));
  let onehot = b.node('OneHot', [IBP_LABELS_INPUT, b.int64([K], [1]), values], { axis: -1 }, 'ibp/onehot');
  if (floatType !== ELEM.FLOAT) onehot = b.cast(onehot, floatType);
  let worst: string;
  if (elide) {
    const fc = last as Dense;
    const { c, r } = cr(box);
    // D[n, j, :] = w_j − w_{y_n}; the row of the label is exactly 0.
    const wy = b.node('MatMul', [onehot, fc.weight.name], {}, 'ibp/w_label');
    const d = b.sub(b.node('Unsqueeze', [fc.weight.name, b.int64([0])]), b.node('Unsqueeze', [wy, b.int64([1])]));
    const centre = b.reduceSum(b.mul(d, b.node('Unsqueeze', [c, b.int64([1])])), [2], false);
    const radius = b.reduceSum(b.mul(b.node('Abs', [d], {}, 'ibp/abs_margin_w'), b.node('Unsqueeze', [r, b.int64([1])])), [2], false);
    worst = b.add(centre, radius);
    if (fc.bias) worst = b.add(worst, b.sub(fc.bias.name, b.reduceSum(b.mul(onehot, fc.bias.name), [1], true)));
  } else {
    const { lo, hi } = lh(box);
    const loY = b.reduceSum(b.mul(onehot, lo), [1], true);
    worst = b.mul(b.sub(hi, loY), b.sub(b.scalar(1), onehot));
  }
  worst = b.node('Identity', [worst], {}, 'ibp/worst', 'bulwark_ibp_worst');
  const ce = (z: string, name: string) => b.node('Identity', [b.neg(b.reduceSum(b.mul(b.node('LogSoftmax', [z], { axis: -1 }), onehot), [1], false))], {}, name, `bulwark_ibp_${name}`);
  const clean = ce(OUTPUT_NAME, 'clean_ce');
  const robust = ce(worst, 'robust_ce');
  const kappa = IBP_KAPPA_INPUT;
  const loss = b.node('Identity', [b.add(b.mul(clean, kappa), b.mul(robust, b.sub(b.scalar(1), kappa)))], {}, 'ibp/loss', 'bulwark_ibp_loss');
  g.outputs.push(
    { name: worst, elemType: floatType, shape: ['N', K] },
    { name: robust, elemType: floatType, shape: ['N'] },
    { name: loss, elemType: floatType, shape: ['N'] },
  );
  return { loss, robustLoss: robust, logits: OUTPUT_NAME, worst, elided: elide };
}

/**
 * Builds the IBP training graph: the forward pass, the interval bounds of the L∞ ε-box (ε an input), the worst-case
 * logits and the mixed loss, with the gradient of Σ loss with respect to every parameter.
 * @param net a network of {@link IBP_TRAIN_LAYERS} (ReLU activations)
 * @param opts float64 (for gradient checks: onnxruntime must have double kernels for every op, e.g. an MLP),
 *   gradients (default true)
 * @returns the graph and its names
 * @throws BulwarkError BULWARK_E_UNSUPPORTED_OP naming a layer IBP training cannot bound (BatchNorm, Dropout, ...)
 */
export async function buildIbpGraph(net: Network, opts: { float64?: boolean; gradients?: boolean } = {}): Promise<IbpGraph> {
  leaves(net.root);
  let g = normalizeOpset(net.graph({ mode: 'train', weightsAsInputs: true }));
  if (opts.float64) g = toFloat64(g);
  const floatType = opts.float64 ? ELEM.DOUBLE : ELEM.FLOAT;
  const names = appendBounds(g, net, floatType);
  g = simplifyForGradient(g);
  if (opts.gradients === false) return { graph: g, grads: new Map(), ...names };
  const shapes = await probeShapes(g);
  const res = buildGradient({ graph: g, shapes, loss: names.loss, wrt: net.params().map((p) => p.name) });
  return { graph: res.graph, grads: res.grads, ...names };
}

/** What {@link IbpSession.step} returns. */
export interface IbpStepResult {
  /** Per-example mixed loss κ·CE(z) + (1 − κ)·CE(ẑ) [B]. */
  loss: Float32Array | Float64Array;
  /** Per-example CE of the worst-case logits [B]. */
  robustLoss: Float32Array | Float64Array;
  /** Clean logits [B·K]. */
  logits: Float32Array | Float64Array;
  /** Worst-case logits ẑ [B·K] (0 at the label; the example is verified when every other entry is < 0). */
  worst: Float32Array | Float64Array;
  /** Gradients of Σ loss in `net.params()` order (empty without gradients). */
  grads: (Float32Array | Float64Array)[];
}

/** One onnxruntime session over the IBP graph, fed the network's current weights at every step. */
export class IbpSession {
  private constructor(
    readonly net: Network,
    readonly ig: IbpGraph,
    private readonly session: ort.InferenceSession,
    private readonly float64: boolean,
  ) {}

  /**
   * Builds the IBP graph and its session.
   * @param net the network (its weights are read at every step)
   * @param opts onnxruntime threads; float64 (gradient checks); gradients (default true)
   */
  static async create(net: Network, opts: { threads?: number; float64?: boolean; gradients?: boolean } = {}): Promise<IbpSession> {
    const ig = await buildIbpGraph(net, { float64: opts.float64 ?? false, gradients: opts.gradients ?? true });
    const session = await createSession(ig.graph, opts.threads === undefined ? {} : { threads: opts.threads });
    return new IbpSession(net, ig, session, opts.float64 ?? false);
  }

  /**
   * Losses, worst-case logits and parameter gradients of one batch at radius eps and clean weight kappa.
   * Does not change the parameters.
   * @param x inputs [B, ...inputShape] in [0, 1]
   * @param y labels
   * @param eps L∞ radius (≥ 0)
   * @param kappa weight of the clean loss in [0, 1]
   * @param weights override of the parameters (float64 values for gradient checks); default the network's
   */
  async step(x: Float32Tensor, y: ArrayLike<number>, eps: number, kappa: number, weights?: (Float32Array | Float64Array)[]): Promise<IbpStepResult> {
    const per = x.shape.slice(1);
    if (per.join(',') !== this.net.inputShape.join(',')) throw new BulwarkError('BULWARK_E_SHAPE', `input has shape [${x.shape.join(',')}]; the network takes [N,${this.net.inputShape.join(',')}]`);
    if (y.length !== x.shape[0]) throw new BulwarkError('BULWARK_E_LABELS', `labels has ${y.length} entries for ${x.shape[0]} inputs`);
    if (!(eps >= 0 && Number.isFinite(eps))) throw new BulwarkError('BULWARK_E_ARG', `eps must be a finite number >= 0, got ${eps}`);
    if (!(kappa >= 0 && kappa <= 1)) throw new BulwarkError('BULWARK_E_ARG', `kappa must be in [0, 1], got ${kappa}`);
    const ft = this.float64 ? ELEM.DOUBLE : ELEM.FLOAT;
    const arr = (v: ArrayLike<number>) => (this.float64 ? Float64Array.from(v) : Float32Array.from(v));
    const labels = new BigInt64Array(y.length);
    for (let i = 0; i < y.length; i++) labels[i] = BigInt(y[i]!);
    const feeds: Record<string, ort.Tensor> = {
      [INPUT_NAME]: toOrt(ft, this.float64 ? Float64Array.from(x.data) : x.data, x.shape),
      [IBP_LABELS_INPUT]: toOrt(ELEM.INT64, labels, [y.length]),
      [IBP_EPS_INPUT]: toOrt(ft, arr([eps]), [1]),
      [IBP_KAPPA_INPUT]: toOrt(ft, arr([kappa]), [1]),
    };
    const params = this.net.params();
    params.forEach((p, i) => {
      const w = weights?.[i] ?? p.data;
      feeds[p.name] = toOrt(ft, this.float64 && !(w instanceof Float64Array) ? Float64Array.from(w) : w, p.shape);
    });
    const gradNames = this.ig.grads.size ? params.map((p) => this.ig.grads.get(p.name)!) : [];
    const out = await runSession(this.session, feeds, [this.ig.loss, this.ig.robustLoss, this.ig.logits, this.ig.worst, ...gradNames]);
    type F = Float32Array | Float64Array;
    return {
      loss: out[this.ig.loss]!.data as F,
      robustLoss: out[this.ig.robustLoss]!.data as F,
      logits: out[this.ig.logits]!.data as F,
      worst: out[this.ig.worst]!.data as F,
      grads: gradNames.map((n) => out[n]!.data as F),
    };
  }

  /**
   * Per-example lower bounds of min_{j≠y} (z_y − z_j) over the ε-box, from the graph (equal to ibpVerify's
   * marginLower up to float rounding), in batches.
   */
  async marginLower(x: Float32Tensor, y: ArrayLike<number>, eps: number, batchSize = 256): Promise<Float64Array> {
    const n = x.shape[0]!;
    const k = this.net.numClasses;
    const row = sizeOf(x.shape.slice(1));
    const out = new Float64Array(n);
    for (let a = 0; a < n; a += batchSize) {
      const e = Math.min(n, a + batchSize);
      const r = await this.step({ data: x.data.subarray(a * row, e * row), shape: [e - a, ...x.shape.slice(1)], dtype: 'float32' }, Array.from(y).slice(a, e), eps, 1);
      for (let i = 0; i < e - a; i++) {
        let m = Infinity;
        for (let j = 0; j < k; j++) if (j !== y[a + i]) m = Math.min(m, -r.worst[i * k + j]!);
        out[a + i] = m;
      }
    }
    return out;
  }

  /** Releases the session. */
  async release(): Promise<void> {
    await this.session.release();
  }
}

/**
 * Gowal et al.'s schedules: during the warm-up ε = 0 and κ = 1; over the ramp ε grows linearly from 0 to eps and
 * κ falls linearly from 1 to kappaFinal; then both stay. Steps are counted from 0.
 * @param step optimizer step (0-based)
 * @param o warm-up and ramp lengths in steps, the final eps and kappa
 * @returns the ε and κ of this step
 */
export function ibpSchedule(step: number, o: { warmupSteps: number; rampSteps: number; eps: number; kappa: number }): { eps: number; kappa: number } {
  if (step < o.warmupSteps) return { eps: 0, kappa: 1 };
  const f = o.rampSteps > 0 ? Math.min(1, (step - o.warmupSteps + 1) / o.rampSteps) : 1;
  return { eps: f * o.eps, kappa: 1 - f * (1 - o.kappa) };
}

/**
 * Per-example gradients for DP-SGD, behind one small interface so the trainer does not care how they are made:
 *  - `reference`: runs the network's training graph on one example at a time. Slow, exact, works for every
 *    architecture; it is also the test oracle of the faster engines.
 *  - `ghost`: for networks whose parameters all sit in Dense (Gemm) layers. One batched run adds a zero "probe"
 *    input to each Gemm output, so ∂(Σ loss)/∂probe gives each example's output gradient δᵢ, and also returns each
 *    Gemm's input activation aᵢ. Example i's weight gradient is δᵢ aᵢᵀ and its bias gradient δᵢ, so its squared
 *    norm is Σ_layers ‖δᵢ‖²(‖aᵢ‖² + 1) without materializing anything (the "ghost norm" of Goodfellow 2015 and
 *    Li et al. 2021). The clipped sum Σ cᵢ gᵢ is the gradient of Σ cᵢ·lossᵢ, taken by a second run of the same graph
 *    with per-example loss weights.
 *  - `graph`: the autodiff pass's per-example mode (`buildTrainingGraph(net, { perExample: true })`), which
 *    keeps the batch axis on Gemm and Conv parameter gradients, extended in fused.ts with the per-example norms,
 *    clip factors and the clipped sum, so one batched run returns Σ cᵢgᵢ for convolutional networks too; the
 *    per-example gradients stay inside onnxruntime (bounded sub-batches bound their memory).
 */
import type * as ort from 'onnxruntime-node';
import { BulwarkError } from '../core/errors.js';
import type { Rng } from '../core/rng.js';
import { sizeOf, sliceRows, type Float32Tensor } from '../core/tensor.js';
import { appendHead } from '../autodiff/heads.js';
import { normalizeOpset, simplifyForGradient } from '../autodiff/normalize.js';
import { buildGradient } from '../autodiff/walker.js';
import { BatchNorm, Dense, Dropout } from '../nn/layers.js';
import { INPUT_NAME, OUTPUT_NAME, type Network } from '../nn/network.js';
import { TrainingSession } from '../nn/train.js';
import { GraphBuilder } from '../onnx/builder.js';
import { ELEM, attrNum } from '../onnx/ir.js';
import { probeShapes } from '../runtime/probe.js';
import { createSession, runSession, toOrt } from '../runtime/session.js';
import { ClippingSession } from './fused.js';

/** Per-example losses, logits and gradients of a batch of N examples. */
export interface PerExampleResult {
  /** Cross-entropy per example [N]. */
  loss: Float32Array;
  /** Train-mode logits [N·K]. */
  logits: Float32Array;
  /** One array per parameter (in `net.params()` order) holding N rows of that parameter's size: [N, ...paramShape]. */
  grads: Float32Array[];
}

/** The clipped gradient sum of a batch and what was seen on the way. */
export interface ClippedSum {
  /** Σᵢ gᵢ · min(1, C/‖gᵢ‖), one array per parameter. */
  sum: Float32Array[];
  /** ‖gᵢ‖₂ over all parameters, per example (before clipping). */
  norms: Float32Array;
  loss: Float32Array;
  logits: Float32Array;
}

/** Engine names. */
export type PerExampleKind = 'reference' | 'ghost' | 'graph';

/** Makes per-example gradients of a network's cross-entropy loss at its current weights. */
export interface PerExampleGradients {
  readonly kind: PerExampleKind;
  /**
   * Per-example gradients, materialized (memory N × parameters: keep N small).
   * @param x inputs [N, ...inputShape]
   * @param y labels
   * @param rng draws dropout masks
   */
  perExampleGrads(x: Float32Tensor, y: ArrayLike<number>, rng: Rng): Promise<PerExampleResult>;
  /**
   * Σ of per-example gradients each clipped to L2 norm `maxNorm` (flat clipping over all parameters).
   * @param maxNorm clipping bound C > 0
   */
  clippedSum(x: Float32Tensor, y: ArrayLike<number>, rng: Rng, maxNorm: number): Promise<ClippedSum>;
  release(): Promise<void>;
}

/** Opacus' clip factor: min(1, C / (‖g‖ + 1e-6)). */
export function clipFactor(norm: number, maxNorm: number): number {
  return Math.min(1, maxNorm / (norm + 1e-6));
}

function rowOf(x: Float32Tensor, i: number): Float32Tensor {
  const row = sizeOf(x.shape.slice(1));
  return { data: x.data.subarray(i * row, (i + 1) * row), shape: [1, ...x.shape.slice(1)], dtype: 'float32' };
}

/**
 * The reference engine: the training graph run on one example at a time (exact for any architecture; slow).
 * @param net the network (its current weights are read at every call)
 * @param opts onnxruntime threads
 */
export async function referencePerExample(net: Network, opts: { threads?: number } = {}): Promise<PerExampleGradients> {
  const session = await TrainingSession.create(net, opts.threads === undefined ? {} : { threads: opts.threads });
  const params = net.params();
  const k = net.numClasses;
  const oneByOne = async (x: Float32Tensor, y: ArrayLike<number>, rng: Rng, each: (i: number, grads: Float32Array[]) => void) => {
    const n = x.shape[0]!;
    const loss = new Float32Array(n);
    const logits = new Float32Array(n * k);
    for (let i = 0; i < n; i++) {
      const r = await session.step(rowOf(x, i), [y[i]!], rng);
      loss[i] = r.loss[0]!;
      logits.set(r.logits, i * k);
      each(i, r.grads);
    }
    return { loss, logits };
  };
  return {
    kind: 'reference',
    async perExampleGrads(x, y, rng) {
      const n = x.shape[0]!;
      const grads = params.map((p) => new Float32Array(n * p.data.length));
      const r = await oneByOne(x, y, rng, (i, g) => g.forEach((gp, j) => grads[j]!.set(gp, i * gp.length)));
      return { ...r, grads };
    },
    async clippedSum(x, y, rng, maxNorm) {
      const sum = params.map((p) => new Float64Array(p.data.length));
      const norms = new Float32Array(x.shape[0]!);
      const r = await oneByOne(x, y, rng, (i, g) => {
        let sq = 0;
        for (const gp of g) for (let j = 0; j < gp.length; j++) sq += gp[j]! * gp[j]!;
        norms[i] = Math.sqrt(sq);
        const c = clipFactor(norms[i]!, maxNorm);
        g.forEach((gp, p) => {
          const s = sum[p]!;
          for (let j = 0; j < gp.length; j++) s[j]! += c * gp[j]!;
        });
      });
      return { ...r, sum: sum.map((s) => Float32Array.from(s)), norms };
    },
    release: () => session.release(),
  };
}

interface GhostTap {
  layer: Dense;
  probe: string;
  activation: string;
  probeGrad: string;
}

/** Whether every trainable parameter of the network sits in a Dense layer (the ghost engine's condition). */
export function ghostApplicable(net: Network): boolean {
  const dense = new Set(net.layers().filter((l): l is Dense => l instanceof Dense).flatMap((d) => d.params().map((p) => p.name)));
  return net.params().every((p) => dense.has(p.name));
}

/**
 * The ghost engine for networks whose parameters are all in Dense layers (see the module comment).
 * @param net the network
 * @param opts onnxruntime threads
 * @throws BulwarkError BULWARK_E_ARCH when a parameter is outside a Dense layer
 */
export async function ghostPerExample(net: Network, opts: { threads?: number } = {}): Promise<PerExampleGradients> {
  if (!ghostApplicable(net)) throw new BulwarkError('BULWARK_E_ARCH', 'the ghost per-example engine needs every parameter in a Dense layer; use the reference engine for convolutions');
  const g = simplifyForGradient(normalizeOpset(net.graph({ mode: 'train', weightsAsInputs: true })));
  const b = new GraphBuilder(g);
  const taps: GhostTap[] = [];
  for (const layer of net.layers().filter((l): l is Dense => l instanceof Dense)) {
    const idx = g.nodes.findIndex((n) => n.opType === 'Gemm' && n.inputs[1] === layer.weight.name);
    const node = g.nodes[idx];
    if (!node || attrNum(node, 'transA', 0) !== 0 || attrNum(node, 'transB', 0) !== 1 || attrNum(node, 'alpha', 1) !== 1 || attrNum(node, 'beta', 1) !== 1) {
      throw new BulwarkError('BULWARK_E_INTERNAL', `Dense layer ${layer.name} did not emit the expected Gemm`);
    }
    const out = node.outputs[0]!;
    const pre = b.uniq(`${layer.name}/pre_probe`);
    node.outputs[0] = pre;
    const probe = b.uniq(`${layer.name}.probe`);
    g.inputs.push({ name: probe, elemType: ELEM.FLOAT, shape: ['N', layer.outFeatures] });
    g.nodes.splice(idx + 1, 0, { name: b.uniq(`${layer.name}/probe_add`), opType: 'Add', domain: '', inputs: [pre, probe], outputs: [out], attrs: new Map() });
    const activation = b.uniq(`${layer.name}.activation`);
    b.node('Identity', [node.inputs[0]!], {}, `${layer.name}/activation_out`, activation);
    g.outputs.push({ name: activation, elemType: ELEM.FLOAT, shape: ['N', layer.inFeatures] });
    taps.push({ layer, probe, activation, probeGrad: '' });
  }
  const head = appendHead(g, OUTPUT_NAME, net.numClasses, { kind: 'ce' });
  const weights = b.uniq('bulwark_example_weights');
  g.inputs.push({ name: weights, elemType: ELEM.FLOAT, shape: ['N'] });
  const weighted = b.node('Mul', [head.loss, weights], {}, 'weighted_loss');
  const shapes = await probeShapes(g);
  const params = net.params();
  const res = buildGradient({ graph: g, shapes, loss: weighted, wrt: [...params.map((p) => p.name), ...taps.map((t) => t.probe)] });
  for (const t of taps) t.probeGrad = res.grads.get(t.probe)!;
  const session = await createSession(res.graph, opts.threads === undefined ? {} : { threads: opts.threads });
  const dropouts = net.layers().filter((l): l is Dropout => l instanceof Dropout);
  const paramIndex = new Map(params.map((p, i) => [p.name, i]));

  const feedsFor = (x: Float32Tensor, y: ArrayLike<number>, rng: Rng): Record<string, ort.Tensor> => {
    const n = x.shape[0]!;
    const labels = new BigInt64Array(n);
    for (let i = 0; i < n; i++) labels[i] = BigInt(y[i]!);
    const feeds: Record<string, ort.Tensor> = { [INPUT_NAME]: toOrt(ELEM.FLOAT, x.data, x.shape), [head.labels]: toOrt(ELEM.INT64, labels, [n]) };
    for (const p of params) feeds[p.name] = toOrt(ELEM.FLOAT, p.data, p.shape);
    for (const d of dropouts) feeds[d.maskInput] = toOrt(ELEM.FLOAT, d.makeMask(n, rng), [n, ...d.maskShape]);
    for (const t of taps) feeds[t.probe] = toOrt(ELEM.FLOAT, new Float32Array(n * t.layer.outFeatures), [n, t.layer.outFeatures]);
    return feeds;
  };
  // First run: per-example output gradients δ and input activations a of every Dense layer.
  const firstRun = async (x: Float32Tensor, y: ArrayLike<number>, rng: Rng) => {
    const n = x.shape[0]!;
    const feeds = feedsFor(x, y, rng);
    feeds[weights] = toOrt(ELEM.FLOAT, new Float32Array(n).fill(1), [n]);
    const out = await runSession(session, feeds, [head.loss, OUTPUT_NAME, ...taps.flatMap((t) => [t.probeGrad, t.activation])]);
    return {
      feeds,
      loss: out[head.loss]!.data as Float32Array,
      logits: out[OUTPUT_NAME]!.data as Float32Array,
      deltas: taps.map((t) => out[t.probeGrad]!.data as Float32Array),
      acts: taps.map((t) => out[t.activation]!.data as Float32Array),
    };
  };
  return {
    kind: 'ghost',
    async perExampleGrads(x, y, rng) {
      const n = x.shape[0]!;
      const r = await firstRun(x, y, rng);
      const grads = params.map((p) => new Float32Array(n * p.data.length));
      taps.forEach((t, l) => {
        const { inFeatures: fi, outFeatures: fo } = t.layer;
        const d = r.deltas[l]!;
        const a = r.acts[l]!;
        const w = grads[paramIndex.get(t.layer.weight.name)!]!;
        for (let i = 0; i < n; i++) {
          for (let o = 0; o < fo; o++) {
            const dv = d[i * fo + o]!;
            const base = i * fo * fi + o * fi;
            for (let j = 0; j < fi; j++) w[base + j] = dv * a[i * fi + j]!;
          }
        }
        if (t.layer.bias) grads[paramIndex.get(t.layer.bias.name)!]!.set(d);
      });
      return { loss: r.loss, logits: r.logits, grads };
    },
    async clippedSum(x, y, rng, maxNorm) {
      const n = x.shape[0]!;
      const r = await firstRun(x, y, rng);
      const sq = new Float64Array(n);
      taps.forEach((t, l) => {
        const { inFeatures: fi, outFeatures: fo } = t.layer;
        const d = r.deltas[l]!;
        const a = r.acts[l]!;
        for (let i = 0; i < n; i++) {
          let dd = 0;
          for (let o = 0; o < fo; o++) dd += d[i * fo + o]! ** 2;
          let aa = 0;
          for (let j = 0; j < fi; j++) aa += a[i * fi + j]! ** 2;
          sq[i]! += dd * (aa + (t.layer.bias ? 1 : 0));
        }
      });
      const norms = Float32Array.from(sq, Math.sqrt);
      const c = Float32Array.from(norms, (v) => clipFactor(v, maxNorm));
      // Second run, same masks: the gradient of Σ cᵢ·lossᵢ is the clipped sum.
      r.feeds[weights] = toOrt(ELEM.FLOAT, c, [n]);
      const out = await runSession(session, r.feeds, params.map((p) => res.grads.get(p.name)!));
      return { sum: params.map((p) => new Float32Array(out[res.grads.get(p.name)!]!.data as Float32Array)), norms, loss: r.loss, logits: r.logits };
    },
    release: () => session.release(),
  };
}

/**
 * The graph engine: per-example gradients from the autodiff pass's per-example mode, with norms, clip factors and the
 * clipped sum computed inside the same onnxruntime run ({@link ClippingSession}, src/privacy/fused.ts), so the
 * [N, ...paramShape] gradients are never copied out for clipping. Sub-batches bound N × parameters.
 * @param net the network
 * @param opts onnxruntime threads; `maxFloats` bounds N × parameters materialized at once (default 2^23)
 * @throws BulwarkError BULWARK_E_UNSUPPORTED_OP when a parameter feeds an op without a per-example rule
 */
export async function graphPerExample(net: Network, opts: { threads?: number; maxFloats?: number } = {}): Promise<PerExampleGradients> {
  const session = await ClippingSession.create(net, opts.threads === undefined ? {} : { threads: opts.threads });
  const params = net.params();
  const size = params.reduce((a, p) => a + p.data.length, 0);
  const chunk = Math.max(1, Math.floor((opts.maxFloats ?? 1 << 23) / size));
  const k = net.numClasses;
  return {
    kind: 'graph',
    async perExampleGrads(x, y, rng) {
      return session.perExampleGrads(x, y, rng);
    },
    async clippedSum(x, y, rng, maxNorm) {
      const n = x.shape[0]!;
      if (n <= chunk) return session.clippedSum(x, y, rng, maxNorm);
      const sum = params.map((p) => new Float32Array(p.data.length));
      const norms = new Float32Array(n);
      const loss = new Float32Array(n);
      const logits = new Float32Array(n * k);
      for (let s = 0; s < n; s += chunk) {
        const e = Math.min(n, s + chunk);
        const r = await session.clippedSum(sliceRows(x, s, e), Array.from({ length: e - s }, (_, i) => y[s + i]!), rng, maxNorm);
        loss.set(r.loss, s);
        logits.set(r.logits, s * k);
        norms.set(r.norms, s);
        r.sum.forEach((g, p) => {
          const out = sum[p]!;
          for (let j = 0; j < g.length; j++) out[j]! += g[j]!;
        });
      }
      return { sum, norms, loss, logits };
    },
    release: () => session.release(),
  };
}

/**
 * Refuses networks DP-SGD cannot train: batch statistics mix examples, so a per-example gradient (and its clipping
 * bound) no longer bounds one example's influence.
 * @throws BulwarkError BULWARK_E_DP_UNSUPPORTED naming the BatchNorm layers
 */
export function assertDpCompatible(net: Network): void {
  const bn = net.layers().filter((l) => l instanceof BatchNorm).map((l) => l.name);
  if (bn.length > 0) {
    throw new BulwarkError('BULWARK_E_DP_UNSUPPORTED', `DP-SGD cannot train a network with BatchNorm (${bn.join(', ')}): batch statistics mix examples, so per-example clipping no longer bounds one example's influence`, {
      hint: 'Use an architecture without batch statistics: mlp, cnn-small, or a spec without bn and res layers (e.g. conv:16x5p2,tanh,maxpool:2,conv:32x4,tanh,maxpool:2,flatten,dense:32,tanh,dense:10). GroupNorm/LayerNorm are not built in yet.',
    });
  }
}

/**
 * Picks a per-example engine: `ghost` when every parameter is in a Dense layer, else `graph` (the autodiff pass's
 * per-example mode), else `reference` when the graph has an op without a per-example rule.
 * @param net the network (BatchNorm is refused)
 * @param opts the engine to force, onnxruntime threads
 * @throws BulwarkError BULWARK_E_DP_UNSUPPORTED for BatchNorm; BULWARK_E_ARCH when ghost is forced on a conv net
 */
export async function createPerExampleGradients(net: Network, opts: { kind?: 'auto' | PerExampleKind; threads?: number } = {}): Promise<PerExampleGradients> {
  assertDpCompatible(net);
  const kind = opts.kind ?? 'auto';
  const t = opts.threads === undefined ? {} : { threads: opts.threads };
  if (kind === 'ghost' || (kind === 'auto' && ghostApplicable(net))) return ghostPerExample(net, t);
  if (kind === 'graph') return graphPerExample(net, t);
  if (kind === 'auto') {
    try {
      return await graphPerExample(net, t);
    } catch (e) {
      if (!(e instanceof BulwarkError) || (e.code !== 'BULWARK_E_UNSUPPORTED_OP' && e.code !== 'BULWARK_E_MODEL')) throw e;
    }
  }
  if (kind !== 'auto' && kind !== 'reference') throw new BulwarkError('BULWARK_E_ARG', `unknown per-example engine ${JSON.stringify(kind)}; use auto, reference, ghost or graph`);
  return referencePerExample(net, t);
}

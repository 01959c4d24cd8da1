/**
 * A training-time Network seen as a white-box {@link Model}: the inference graph is built once with the weights as
 * graph inputs, so attacks (PGD, FGSM) run on the weights as they are now, step after step, without re-exporting.
 * Also the vector-Jacobian products the hardening code needs: `Jᵀ·g` of the logits with respect to the input
 * (TRADES' KL inner maximization) and, in train mode, with respect to the parameters (TRADES' outer loss).
 */
import type * as ort from 'onnxruntime-node';
import { BulwarkError } from '../../core/errors.js';
import type { Rng } from '../../core/rng.js';
import { assertFinite, shapeStr, sizeOf, type Float32Tensor } from '../../core/tensor.js';
import { appendHead, headKey, type HeadSpec } from '../../autodiff/heads.js';
import { normalizeOpset, simplifyForGradient } from '../../autodiff/normalize.js';
import { buildGradient } from '../../autodiff/walker.js';
import { GraphBuilder } from '../../onnx/builder.js';
import { ELEM, type Graph } from '../../onnx/ir.js';
import { probeShapes } from '../../runtime/probe.js';
import { createSession, runSession, toOrt } from '../../runtime/session.js';
import type { LossAndGradient, Model } from '../../runtime/model.js';
import { BatchNorm, Dropout } from '../../nn/layers.js';
import { INPUT_NAME, OUTPUT_NAME, type Network } from '../../nn/network.js';

const COTANGENT = 'bulwark_cotangent';

/** Appends loss = Σ_k z_k·g_k per example (g a float input [N, K]), whose gradient is the VJP Jᵀg. */
function appendCotangentHead(g: Graph, k: number): string {
  const b = new GraphBuilder(g);
  g.inputs.push({ name: COTANGENT, elemType: ELEM.FLOAT, shape: ['N', k] });
  const loss = b.reduceSum(b.mul(OUTPUT_NAME, COTANGENT), [1], false);
  g.outputs.push({ name: loss, elemType: ELEM.FLOAT, shape: ['N'] });
  return loss;
}

function int64(y: ArrayLike<number>, s: number, e: number): ort.Tensor {
  const out = new BigInt64Array(e - s);
  for (let i = s; i < e; i++) out[i - s] = BigInt(y[i]!);
  return toOrt(ELEM.INT64, out, [e - s]);
}

interface GradSession {
  session: ort.InferenceSession;
  labels: string | undefined;
  targets: string | undefined;
  loss: string;
  grad: string;
}

/** Options of {@link NetworkModel}. */
export interface NetworkModelOptions {
  /** Valid input range; default [0, 1]. */
  bounds?: [number, number];
  /** onnxruntime intra-op threads; default onnxruntime's choice. */
  threads?: number;
  /** Largest batch per run; default 512. */
  batchSize?: number;
}

/**
 * A {@link Model} over a Network's current weights (inference mode: BatchNorm uses running statistics). Weights are
 * read at every call, so the model follows training. Sessions are cached per loss head.
 * @example const m = new NetworkModel(net); const r = await pgd(m, x, y, { eps: 0.3 }); await m.dispose();
 */
export class NetworkModel implements Model {
  readonly inputShape: number[];
  readonly numClasses: number;
  readonly bounds: [number, number];
  readonly outputKind = 'logits' as const;
  queries = 0;
  private readonly threads: number | undefined;
  private readonly batchSize: number;
  private forward: Promise<ort.InferenceSession> | undefined;
  private readonly grads = new Map<string, Promise<GradSession>>();

  /**
   * @param net the network (not copied: its weights are read at every call)
   * @param opts bounds, threads, batch size
   */
  constructor(readonly net: Network, opts: NetworkModelOptions = {}) {
    this.inputShape = [-1, ...net.inputShape];
    this.numClasses = net.numClasses;
    this.bounds = opts.bounds ?? [0, 1];
    this.threads = opts.threads;
    this.batchSize = opts.batchSize ?? 512;
  }

  /** Logits [N, K] with the current weights. */
  async predict(x: Float32Tensor): Promise<Float32Tensor> {
    this.check(x);
    this.forward ??= createSession(this.net.graph({ mode: 'infer', weightsAsInputs: true }), this.sessionOpts());
    const s = await this.forward;
    const n = x.shape[0]!;
    const k = this.numClasses;
    const out = new Float32Array(n * k);
    await this.chunks(x, async (feeds, a) => {
      const r = await runSession(s, feeds, [OUTPUT_NAME]);
      out.set(r[OUTPUT_NAME]!.data as Float32Array, a * k);
    });
    this.queries += n;
    return { data: out, shape: [n, k], dtype: 'float32' };
  }

  /**
   * Per-example loss of a head (default cross-entropy) and its gradient with respect to the input.
   * @param labels class ids (targets for targeted heads)
   * @param head loss head; see HeadSpec
   * @param targets targets of the targeted DLR head
   */
  async lossAndGradient(x: Float32Tensor, labels: ArrayLike<number>, head: HeadSpec = { kind: 'ce' }, targets?: ArrayLike<number>): Promise<LossAndGradient> {
    this.check(x);
    if (labels.length !== x.shape[0]) throw new BulwarkError('BULWARK_E_LABELS', `labels has ${labels.length} entries for ${x.shape[0]} inputs`);
    const gs = await this.gradSession(headKey(head), (g) => {
      const h = appendHead(g, OUTPUT_NAME, this.numClasses, head);
      return { loss: h.loss, labels: h.labels, targets: h.targets };
    });
    return this.runGrad(gs, x, (feeds, a, e) => {
      feeds[gs.labels!] = int64(labels, a, e);
      if (gs.targets) {
        if (!targets) throw new BulwarkError('BULWARK_E_ARG', 'this loss head needs target classes');
        feeds[gs.targets] = int64(targets, a, e);
      }
    });
  }

  /**
   * The vector-Jacobian product Jᵀg of the logits with respect to the input, per example.
   * @param x inputs [N, ...]
   * @param cot cotangents g [N·K] (row-major, one row per example)
   * @returns logits at x and Jᵀg shaped like x
   */
  async inputVjp(x: Float32Tensor, cot: Float32Array): Promise<{ logits: Float32Tensor; grad: Float32Tensor }> {
    this.check(x);
    const k = this.numClasses;
    if (cot.length !== x.shape[0]! * k) throw new BulwarkError('BULWARK_E_SHAPE', `cotangent has ${cot.length} values for ${x.shape[0]} examples of ${k} classes`);
    const gs = await this.gradSession('cotangent', (g) => ({ loss: appendCotangentHead(g, k), labels: undefined, targets: undefined }));
    const r = await this.runGrad(gs, x, (feeds, a, e) => {
      feeds[COTANGENT] = toOrt(ELEM.FLOAT, cot.subarray(a * k, e * k), [e - a, k]);
    });
    return { logits: r.output, grad: r.grad };
  }

  /** Releases the onnxruntime sessions (a later call builds them again). */
  async dispose(): Promise<void> {
    const all = [...this.grads.values()].map(async (p) => (await p).session.release());
    if (this.forward) all.push((await this.forward).release());
    await Promise.all(all);
    this.grads.clear();
    this.forward = undefined;
  }

  private sessionOpts() {
    return this.threads === undefined ? {} : { threads: this.threads };
  }

  private check(x: Float32Tensor): void {
    const per = x.shape.slice(1);
    if (per.join(',') !== this.net.inputShape.join(',')) {
      throw new BulwarkError('BULWARK_E_SHAPE', `input has shape ${shapeStr(x.shape)}; the network takes [N,${this.net.inputShape.join(',')}]`);
    }
    if (x.shape[0] === 0) throw new BulwarkError('BULWARK_E_SHAPE', 'input has no examples (batch of 0)');
    assertFinite(x.data, 'input');
  }

  private weightFeeds(): Record<string, ort.Tensor> {
    const w: Record<string, ort.Tensor> = {};
    for (const p of this.net.state()) w[p.name] = toOrt(ELEM.FLOAT, p.data, p.shape);
    return w;
  }

  private async chunks(x: Float32Tensor, run: (feeds: Record<string, ort.Tensor>, a: number, e: number) => Promise<void>): Promise<void> {
    const n = x.shape[0]!;
    const row = sizeOf(x.shape.slice(1));
    const w = this.weightFeeds();
    for (let a = 0; a < n; a += this.batchSize) {
      const e = Math.min(n, a + this.batchSize);
      await run({ ...w, [INPUT_NAME]: toOrt(ELEM.FLOAT, x.data.subarray(a * row, e * row), [e - a, ...x.shape.slice(1)]) }, a, e);
    }
  }

  private gradSession(key: string, head: (g: Graph) => { loss: string; labels: string | undefined; targets: string | undefined }): Promise<GradSession> {
    let p = this.grads.get(key);
    if (!p) {
      p = (async () => {
        const g = simplifyForGradient(normalizeOpset(this.net.graph({ mode: 'infer', weightsAsInputs: true })));
        const h = head(g);
        const shapes = await probeShapes(g);
        const res = buildGradient({ graph: g, shapes, loss: h.loss, wrt: [INPUT_NAME] });
        const session = await createSession(res.graph, this.sessionOpts());
        return { session, labels: h.labels, targets: h.targets, loss: h.loss, grad: res.grads.get(INPUT_NAME)! };
      })();
      this.grads.set(key, p);
      p.catch(() => this.grads.delete(key));
    }
    return p;
  }

  private async runGrad(gs: GradSession, x: Float32Tensor, extra: (feeds: Record<string, ort.Tensor>, a: number, e: number) => void): Promise<LossAndGradient> {
    const n = x.shape[0]!;
    const k = this.numClasses;
    const row = sizeOf(x.shape.slice(1));
    const out = new Float32Array(n * k);
    const loss = new Float32Array(n);
    const grad = new Float32Array(n * row);
    await this.chunks(x, async (feeds, a, e) => {
      extra(feeds, a, e);
      const r = await runSession(gs.session, feeds, [OUTPUT_NAME, gs.loss, gs.grad]);
      out.set(r[OUTPUT_NAME]!.data as Float32Array, a * k);
      loss.set(r[gs.loss]!.data as Float32Array, a);
      grad.set(r[gs.grad]!.data as Float32Array, a * row);
    });
    this.queries += n;
    return { output: { data: out, shape: [n, k], dtype: 'float32' }, loss, grad: { data: grad, shape: [...x.shape], dtype: 'float32' } };
  }
}

/**
 * Parameter gradients of Σ_i Σ_k z_ik·g_ik in train mode (weights as inputs): with g = ∂L/∂z computed in
 * TypeScript, this is the parameter gradient of any loss L of the logits (TRADES' CE + β·KL). BatchNorm uses the
 * statistics of the whole fed batch and its running statistics are updated; dropout masks come from `rng`.
 */
export class VjpTrainer {
  private constructor(
    readonly net: Network,
    private readonly session: ort.InferenceSession,
    private readonly grads: Map<string, string>,
    private readonly dropouts: Dropout[],
    private readonly norms: BatchNorm[],
  ) {}

  /**
   * Builds the train-mode VJP graph and its session.
   * @param net the network
   * @param opts onnxruntime threads
   */
  static async create(net: Network, opts: { threads?: number } = {}): Promise<VjpTrainer> {
    const g = simplifyForGradient(normalizeOpset(net.graph({ mode: 'train', weightsAsInputs: true })));
    const loss = appendCotangentHead(g, net.numClasses);
    const shapes = await probeShapes(g);
    const res = buildGradient({ graph: g, shapes, loss, wrt: net.params().map((p) => p.name) });
    const layers = net.layers();
    const session = await createSession(res.graph, opts.threads === undefined ? {} : { threads: opts.threads });
    return new VjpTrainer(net, session, res.grads, layers.filter((l): l is Dropout => l instanceof Dropout), layers.filter((l): l is BatchNorm => l instanceof BatchNorm));
  }

  /**
   * Train-mode logits of a batch (no gradient), with the dropout masks that {@link vjp} must then reuse.
   * @returns logits [B·K] and the masks
   */
  async logits(x: Float32Tensor, rng: Rng): Promise<{ logits: Float32Array; masks: Float32Array[] }> {
    const n = x.shape[0]!;
    const masks = this.dropouts.map((d) => d.makeMask(n, rng));
    const feeds = this.feeds(x, new Float32Array(n * this.net.numClasses), masks);
    const out = await runSession(this.session, feeds, [OUTPUT_NAME]);
    return { logits: out[OUTPUT_NAME]!.data as Float32Array, masks };
  }

  /**
   * Parameter gradients of Σ z·g (in `net.params()` order); updates BatchNorm running statistics.
   * @param x the batch
   * @param cot g = ∂L/∂z, [B·K]
   * @param masks the dropout masks of the matching {@link logits} call
   */
  async vjp(x: Float32Tensor, cot: Float32Array, masks: Float32Array[]): Promise<Float32Array[]> {
    const n = x.shape[0]!;
    const params = this.net.params();
    const fetch = [...params.map((p) => this.grads.get(p.name)!), ...this.norms.flatMap((b) => [b.meanOutput, b.varOutput])];
    const out = await runSession(this.session, this.feeds(x, cot, masks), fetch);
    for (const bn of this.norms) bn.updateRunning(out[bn.meanOutput]!.data as Float32Array, out[bn.varOutput]!.data as Float32Array, bn.countPerChannel(n));
    return params.map((p) => out[this.grads.get(p.name)!]!.data as Float32Array);
  }

  /** Releases the session. */
  async release(): Promise<void> {
    await this.session.release();
  }

  private feeds(x: Float32Tensor, cot: Float32Array, masks: Float32Array[]): Record<string, ort.Tensor> {
    const n = x.shape[0]!;
    const feeds: Record<string, ort.Tensor> = { [INPUT_NAME]: toOrt(ELEM.FLOAT, x.data, x.shape), [COTANGENT]: toOrt(ELEM.FLOAT, cot, [n, this.net.numClasses]) };
    for (const p of this.net.params()) feeds[p.name] = toOrt(ELEM.FLOAT, p.data, p.shape);
    this.dropouts.forEach((d, i) => (feeds[d.maskInput] = toOrt(ELEM.FLOAT, masks[i]!, [n, ...d.maskShape])));
    return feeds;
  }
}

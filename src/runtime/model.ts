import * as ort from 'onnxruntime-node';
import { BulwarkError } from '../core/errors.js';
import { quote } from '../core/quote.js';
import { assertFinite, concatRows, firstNonFinite, shapeStr, sizeOf, type Float32Tensor } from '../core/tensor.js';
import { appendHead, headKey, type HeadSpec } from '../autodiff/heads.js';
import { normalizeOpset, simplifyForGradient, toFloat64 } from '../autodiff/normalize.js';
import { buildGradient } from '../autodiff/walker.js';
import { gradientSupport } from '../autodiff/registry.js';
import { ELEM, cloneGraph, elemName, elemSize, readModel, realInputs, topoSort, type Graph } from '../onnx/ir.js';
import { GraphBuilder } from '../onnx/builder.js';
import { attrNum } from '../onnx/ir.js';
import { probeShapes } from './probe.js';
import type { ShapeMap } from '../onnx/shapes.js';
import { convWeightGradientFor, fromOrt, intraOpThreads, toOrt } from './session.js';
import { checkWorkers, makeRunner, type Runner } from './workers.js';

export type OutputKind = 'logits' | 'probs';

/** Options of loadModel. */
export interface LoadOptions {
  /** What the model outputs: auto detects a trailing Softmax (then the heads differentiate the logits before it). */
  outputKind?: 'auto' | OutputKind;
  /** onnxruntime intra-op threads (per worker when `workers` > 1); 0 = onnxruntime's choice. */
  threads?: number;
  /**
   * Worker threads that each hold a session and take a share of every call's examples (data parallelism across
   * cores; default 1, the calling thread's own session). On small convolutional models two workers of one thread each
   * run about 1.8x faster than one session with two intra-op threads. Results do not depend on the split.
   */
  workers?: number;
  /**
   * Largest batch sent to onnxruntime in one run; larger inputs are split. Default: 256 for predictions; for
   * gradients, sized from the graph so that one run's tensors take about 32 MB (8 to 256 examples, see
   * {@link gradientChunk}; that per intra-op thread), which keeps them in cache (cnn-small's input gradient on 128
   * examples runs 12% faster in runs of 32 than in one run of 128 on one thread).
   */
  batchSize?: number;
  /** Valid input range, default [0, 1]. */
  bounds?: [number, number];
  /** Compute in float64 (for numerical checks); inputs and outputs stay float32 at the API. */
  float64?: boolean;
}

/** Result of lossAndGradient. */
export interface LossAndGradient {
  /** The model's raw output (logits, or probabilities for probability models). */
  output: Float32Tensor;
  /** Per-example loss [N]. */
  loss: Float32Array;
  /** Gradient of Σ loss with respect to the input: row i is example i's own gradient. */
  grad: Float32Tensor;
}

/** The contract every attack and defense uses (DESIGN.md section 4). */
export interface Model {
  /** Input shape with -1 for the batch dim, e.g. [-1, 1, 28, 28]. */
  readonly inputShape: number[];
  readonly numClasses: number;
  readonly bounds: [number, number];
  readonly outputKind: OutputKind;
  /** Forward queries answered so far (examples, not batches). */
  queries: number;
  predict(x: Float32Tensor): Promise<Float32Tensor>;
  /** Present on white-box models. */
  lossAndGradient?(x: Float32Tensor, labels: ArrayLike<number>, head?: HeadSpec, targets?: ArrayLike<number>): Promise<LossAndGradient>;
}

interface GradSession {
  session: Runner;
  /** Examples per run. */
  chunk: number;
  labels: string;
  targets: string | undefined;
  outputs: { out: string; loss: string; grads: Map<string, string> };
  zeroGradientNodes: string[];
}

/**
 * An ONNX model run by onnxruntime-node, with gradients from Bulwark's autodiff pass. Sessions are cached per
 * (head, wrt); inputs larger than `batchSize` are split; results do not depend on the split.
 */
export class OnnxModel implements Model {
  readonly graph: Graph;
  readonly inputName: string;
  readonly outputName: string;
  readonly inputShape: number[];
  readonly numClasses: number;
  readonly bounds: [number, number];
  readonly outputKind: OutputKind;
  /** The value the loss heads differentiate (the logits before a trailing Softmax, when there is one). */
  readonly logitsName: string;
  /** How outputKind was decided, for reports. */
  readonly outputKindReason: string;
  queries = 0;
  private readonly threads: number;
  private readonly batchSize: number;
  private readonly explicitBatchSize: boolean;
  private readonly float64: boolean;
  private readonly workers: number;
  /** The input's batch size when the model fixes it (exported without a dynamic batch axis), else 0. */
  private readonly fixedBatch: number;
  /** Whether input dims past the batch are free (an image size left dynamic): gradient graphs are then per size. */
  private readonly freeDims: boolean;
  /** The per-example input dims of the latest gradient call (for zeroGradientNodes on a model with free dims). */
  private lastSample: number[] | undefined;
  private forward: Promise<Runner> | undefined;
  private readonly gradSessions = new Map<string, Promise<GradSession>>();

  constructor(graph: Graph, opts: LoadOptions = {}) {
    this.graph = graph;
    const inputs = realInputs(graph);
    if (inputs.length !== 1) {
      throw new BulwarkError('BULWARK_E_MODEL', `the model has ${inputs.length} inputs (${inputs.map((i) => i.name).join(', ')}); Bulwark's Model takes exactly one`);
    }
    if (graph.outputs.length < 1) throw new BulwarkError('BULWARK_E_MODEL', 'the model has no outputs');
    const out0 = graph.outputs[0]!;
    // An output without a declared type (0) is left to onnxruntime; a declared integer, bool or string type is refused.
    if (out0.elemType !== 0 && out0.elemType !== ELEM.FLOAT && out0.elemType !== ELEM.DOUBLE && out0.elemType !== ELEM.FLOAT16) {
      throw new BulwarkError('BULWARK_E_MODEL', `the model's output ${JSON.stringify(out0.name)} is ${elemName(out0.elemType)}, not class scores: Bulwark's Model needs float scores [N, K] (logits or probabilities)`, {
        hint: 'Export the model without its final ArgMax (or label lookup), so that it outputs one score per class.',
      });
    }
    const inp = inputs[0]!;
    if (inp.elemType !== ELEM.FLOAT) throw new BulwarkError('BULWARK_E_DTYPE', `the model input ${inp.name} is ${inp.elemType === ELEM.DOUBLE ? 'float64' : `type ${inp.elemType}`}; Bulwark's Model takes float32 inputs`);
    this.inputName = inp.name;
    this.inputShape = (inp.shape ?? []).map((d, i) => (typeof d === 'number' && d > 0 && i > 0 ? d : -1));
    if (this.inputShape.length > 0 && typeof inp.shape?.[0] === 'number' && inp.shape[0] > 0) this.inputShape[0] = inp.shape[0];
    this.fixedBatch = this.inputShape.length > 1 && this.inputShape[0]! > 0 ? this.inputShape[0]! : 0;
    this.freeDims = this.inputShape.slice(1).some((d) => d < 0);
    this.outputName = graph.outputs[0]!.name;
    const outShape = graph.outputs[0]!.shape;
    const k = outShape && outShape.length >= 2 ? outShape[outShape.length - 1] : undefined;
    this.numClasses = typeof k === 'number' && k > 0 ? k : 0;
    this.bounds = opts.bounds ?? [0, 1];
    this.threads = opts.threads ?? 0;
    this.workers = checkWorkers(opts.workers);
    this.batchSize = opts.batchSize ?? 256;
    this.explicitBatchSize = opts.batchSize !== undefined;
    this.float64 = opts.float64 ?? false;
    const softmaxInput = trailingSoftmaxInput(graph, this.outputName);
    const want = opts.outputKind ?? 'auto';
    if (want === 'auto') {
      this.outputKind = softmaxInput ? 'probs' : 'logits';
      this.logitsName = softmaxInput ?? this.outputName;
      this.outputKindReason = softmaxInput ? 'the model ends in Softmax: losses use the logits before it' : 'no trailing Softmax: the output is taken as logits';
    } else if (want === 'probs') {
      this.outputKind = 'probs';
      this.logitsName = softmaxInput ?? this.outputName;
      this.outputKindReason = softmaxInput ? 'probs (given); logits taken before the trailing Softmax' : 'probs (given); losses use log of the output';
    } else {
      this.outputKind = 'logits';
      this.logitsName = this.outputName;
      this.outputKindReason = 'logits (given)';
    }
  }

  /** Runs the model and returns its raw output, float32. */
  async predict(x: Float32Tensor): Promise<Float32Tensor> {
    this.checkInput(x);
    const session = await this.forwardSession();
    const out = await this.batched(x, this.batchSize, async (xb, _s, _e, lane) => {
      const res = await session.run({ [this.inputName]: this.feedX(xb) }, [this.outputName], lane);
      return [res[this.outputName]!];
    });
    this.queries += x.shape[0]!;
    this.checkOutputRows(out[0]!, x.shape[0]!);
    finiteResult(out[0]!.data, x.shape[0]!, 'output');
    this.checkProbabilities(out[0]!.data);
    return out[0]!;
  }

  /**
   * Per-example losses of a fused head and the gradient of their sum with respect to the input.
   * @param labels class ids in [0, numClasses) (targets of a targeted head)
   * @throws BulwarkError BULWARK_E_LABELS, BULWARK_E_SHAPE, BULWARK_E_NONFINITE, BULWARK_E_UNSUPPORTED_OP
   */
  async lossAndGradient(x: Float32Tensor, labels: ArrayLike<number>, head: HeadSpec = { kind: 'ce' }, targets?: ArrayLike<number>): Promise<LossAndGradient> {
    this.checkInput(x);
    this.checkClassScores(head);
    this.checkLabels(labels, x.shape[0]!, 'labels');
    if (targets) this.checkLabels(targets, x.shape[0]!, 'targets');
    const gs = await this.gradSession(head, [this.inputName], false, x.shape.slice(1));
    const gradName = gs.outputs.grads.get(this.inputName)!;
    const row = sizeOf(x.shape.slice(1));
    const [out, loss, grad] = await this.batched(x, gs.chunk, async (xb, start, end, lane) => {
      const rows = xb.shape[0]!;
      const feeds: Record<string, ort.Tensor> = { [this.inputName]: this.feedX(xb), [gs.labels]: int64Feed(labels, start, end, rows) };
      if (gs.targets) {
        if (!targets) throw new BulwarkError('BULWARK_E_ARG', 'this loss head needs target classes');
        feeds[gs.targets] = int64Feed(targets, start, end, rows);
      }
      const res = await gs.session.run(feeds, [gs.outputs.out, gs.outputs.loss, gradName], lane);
      return [res[gs.outputs.out]!, res[gs.outputs.loss]!, res[gradName]!];
    });
    this.queries += x.shape[0]!;
    if (grad!.data.length !== row * x.shape[0]!) throw new BulwarkError('BULWARK_E_INTERNAL', 'gradient size mismatch');
    finiteResult(out!.data, x.shape[0]!, 'output');
    this.checkProbabilities(out!.data);
    finiteResult(loss!.data, x.shape[0]!, 'loss');
    finiteResult(grad!.data, x.shape[0]!, 'input gradient');
    return { output: out!, loss: loss!.data, grad: { ...grad!, shape: [...x.shape] } };
  }

  /**
   * Gradients of a head's loss with respect to initializers (parameters), reduced over the batch by sum or mean.
   * @param params initializer names; default every float initializer
   * @param perExample return each example's gradient ([N, ...shape], flattened) instead of the batch reduction
   */
  async parameterGradients(x: Float32Tensor, labels: ArrayLike<number>, opts: { head?: HeadSpec; params?: string[]; reduction?: 'sum' | 'mean'; perExample?: boolean } = {}): Promise<{ loss: Float32Array; grads: Map<string, Float32Array> }> {
    this.checkInput(x);
    this.checkClassScores(opts.head ?? { kind: 'ce' });
    this.checkLabels(labels, x.shape[0]!, 'labels');
    const params = opts.params ?? [...this.graph.initializers].filter(([, t]) => t.dataType === ELEM.FLOAT && t.data.length > 1).map(([k]) => k);
    const gs = await this.gradSession(opts.head ?? { kind: 'ce' }, params, opts.perExample ?? false, x.shape.slice(1));
    const n = x.shape[0]!;
    // A model exported with a fixed batch size runs in chunks of exactly that size (whose sums add up).
    const chunk = this.fixedBatch || n;
    if (n % chunk !== 0) {
      throw new BulwarkError('BULWARK_E_SHAPE', `the model's input has a fixed batch size of ${chunk}; parameter gradients need a multiple of it, got ${n} examples`, { hint: 'Pass a multiple of the batch size, or export the model with a dynamic batch axis (torch.onnx.export(..., dynamic_axes={name: {0: "N"}})).' });
    }
    const row = sizeOf(x.shape.slice(1));
    const fetch = [gs.outputs.loss, ...params.map((p) => gs.outputs.grads.get(p)!)];
    const parts: Record<string, ort.Tensor>[] = [];
    for (let s = 0; s < n; s += chunk) {
      const xb: Float32Tensor = { data: x.data.subarray(s * row, (s + chunk) * row), shape: [chunk, ...x.shape.slice(1)], dtype: 'float32' };
      parts.push(await gs.session.run({ [this.inputName]: this.feedX(xb), [gs.labels]: int64Feed(labels, s, s + chunk) }, fetch, 0));
    }
    const scale = opts.reduction === 'mean' ? 1 / n : 1;
    const grads = new Map(params.map((p) => {
      const name = gs.outputs.grads.get(p)!;
      const chunks = parts.map((r) => r[name]!.data as Float32Array | Float64Array);
      let d: Float32Array;
      if (opts.perExample) d = toF32(concatRows(parts.map((r) => fromOrt(r[name]!))).data as Float32Array | Float64Array);
      else {
        d = toF32(chunks[0]!);
        for (const c of chunks.slice(1)) for (let i = 0; i < d.length; i++) d[i]! += c[i]!;
      }
      if (scale !== 1) for (let i = 0; i < d.length; i++) d[i]! *= scale;
      return [p, d] as const;
    }));
    this.queries += n;
    const loss = new Float32Array(n);
    parts.forEach((r, k) => loss.set(r[gs.outputs.loss]!.data as Float32Array, k * chunk));
    return { loss, grads };
  }

  /** Nodes on the input-gradient path whose derivative is zero almost everywhere (for gradient-masking checks). */
  async zeroGradientNodes(head: HeadSpec = { kind: 'ce' }): Promise<string[]> {
    if (this.freeDims && !this.lastSample) {
      throw new BulwarkError('BULWARK_E_ARG', 'the model takes inputs of any size; run a gradient on an input first so the gradient graph has one');
    }
    return (await this.gradSession(head, [this.inputName], false, this.lastSample)).zeroGradientNodes;
  }

  /** Op types of the graph that have no gradient rule (empty when the model is fully differentiable). */
  unsupportedOps(): string[] {
    return [...new Set(this.graph.nodes.filter((n) => gradientSupport(n.opType, n.domain) === 'unsupported').map((n) => (n.domain ? `${n.domain}.` : '') + n.opType))];
  }

  /** Releases every onnxruntime session. */
  async dispose(): Promise<void> {
    const all = [...this.gradSessions.values()].map(async (p) => (await p).session.release());
    if (this.forward) all.push((await this.forward).release());
    await Promise.all(all);
    this.gradSessions.clear();
    this.forward = undefined;
  }

  private forwardSession(): Promise<Runner> {
    this.forward ??= makeRunner(this.float64 ? toFloat64(this.graph) : this.graph, this.threads, this.workers);
    return this.forward;
  }

  /**
   * The cached gradient session for (head, wrt, per-example) and, on a model with free non-batch input dims, the
   * per-example input dims `sample` (gradient rules need static sizes, so each input size gets its own graph).
   */
  private gradSession(head: HeadSpec, wrt: string[], perExample = false, sample?: number[]): Promise<GradSession> {
    const dims = this.freeDims ? sample : undefined;
    if (dims) this.lastSample = [...dims];
    const key = `${headKey(head)}|${wrt.join(',')}|${perExample ? 'per-example' : 'sum'}${dims ? `|${dims.join('x')}` : ''}`;
    let p = this.gradSessions.get(key);
    if (!p) {
      p = this.buildGradSession(head, wrt, perExample, dims);
      this.gradSessions.set(key, p);
      p.catch(() => this.gradSessions.delete(key));
    }
    return p;
  }

  private async buildGradSession(head: HeadSpec, wrt: string[], perExample: boolean, sample: number[] | undefined): Promise<GradSession> {
    let g = simplifyForGradient(normalizeOpset(this.graph));
    if (this.float64) g = toFloat64(g);
    const floatType = this.float64 ? ELEM.DOUBLE : ELEM.FLOAT;
    g = cloneGraph(g);
    g.outputs = [g.outputs.find((o) => o.name === this.outputName)!];
    let logits = this.logitsName;
    if (this.outputKind === 'probs' && logits === this.outputName) {
      // A probability output without a Softmax we can see through: log-probabilities act as logits.
      const tiny = this.float64 ? new Float64Array([1e-30]) : new Float32Array([1e-30]);
      g.initializers.set('bulwark_tiny', { dataType: floatType, dims: [], data: tiny });
      g.nodes.push({ name: 'bulwark_log_probs', opType: 'Log', domain: '', inputs: ['bulwark_log_probs/max'], outputs: ['bulwark_log_probs:out'], attrs: new Map() });
      g.nodes.push({ name: 'bulwark_log_probs/clamp', opType: 'Max', domain: '', inputs: [this.outputName, 'bulwark_tiny'], outputs: ['bulwark_log_probs/max'], attrs: new Map() });
      logits = 'bulwark_log_probs:out';
    }
    // Free per-example dims are probed at the size of the input at hand; the batch stays free (or fixed, if it is).
    const inputDims: Record<string, number[]> = sample ? { [this.inputName]: [this.fixedBatch || -1, ...sample] } : {};
    const numClasses = this.numClasses || (await probeShapes(g, inputDims)).get(logits)?.dims.at(-1) || 0;
    const h = appendHead(g, logits, numClasses, head, floatType);
    // A fixed-batch model's labels (and targets) have its batch size, not the probe's free sizes.
    const fixed = this.fixedBatch ? Object.fromEntries([h.labels, h.targets].filter((v): v is string => !!v).map((v) => [v, [this.fixedBatch]])) : {};
    const shapes = await probeShapes(g, { ...fixed, ...inputDims });
    const res = buildGradient({ graph: g, shapes, loss: h.loss, wrt, ...(perExample ? { perExample: wrt } : {}), convWeightGradient: convWeightGradientFor(this.threads, this.workers) });
    const session = await makeRunner(keepPooledConvsNchw(res.graph, this.inputName, floatType), this.threads, this.workers);
    const chunk = this.explicitBatchSize ? this.batchSize : gradientChunk(shapes, intraOpThreads(this.threads, this.workers));
    return { session, chunk, labels: h.labels, targets: h.targets, outputs: { out: this.outputName, loss: h.loss, grads: res.grads }, zeroGradientNodes: res.zeroGradientNodes };
  }

  private feedX(x: Float32Tensor): ort.Tensor {
    if (this.float64) return toOrt(ELEM.DOUBLE, Float64Array.from(x.data), x.shape);
    return toOrt(ELEM.FLOAT, x.data, x.shape);
  }

  /**
   * Runs `run` over chunks of x (at most the batch size; shared out over worker lanes). A model with a fixed batch
   * size gets chunks of exactly that size: the last is padded with copies of its last row and every output row past
   * the real ones (outputs whose first axis is the batch) is dropped. `run` sees the padded chunk, the real rows'
   * [start, end) and the lane.
   */
  private async batched(x: Float32Tensor, batchSize: number, run: (xb: Float32Tensor, start: number, end: number, lane: number) => Promise<ort.Tensor[]>): Promise<Float32Tensor[]> {
    const n = x.shape[0]!;
    const row = sizeOf(x.shape.slice(1));
    // With worker lanes the examples are shared out so that every lane gets work (a batch of 128 on two lanes: 64 each).
    const size = this.fixedBatch || (this.workers > 1 ? Math.max(1, Math.min(batchSize, Math.ceil(n / this.workers))) : batchSize);
    const bounds: [number, number][] = [];
    for (let s = 0; s < n; s += size) bounds.push([s, Math.min(n, s + size)]);
    const chunks: ort.Tensor[][] = new Array(bounds.length);
    const part = (k: number): Float32Tensor => {
      const [s, e] = bounds[k]!;
      const view = x.data.subarray(s * row, e * row);
      if (!this.fixedBatch || e - s === this.fixedBatch) return { data: view, shape: [e - s, ...x.shape.slice(1)], dtype: 'float32' };
      const padded = new Float32Array(this.fixedBatch * row);
      padded.set(view);
      for (let r = e - s; r < this.fixedBatch; r++) padded.copyWithin(r * row, (e - s - 1) * row, (e - s) * row);
      return { data: padded, shape: [this.fixedBatch, ...x.shape.slice(1)], dtype: 'float32' };
    };
    const trim = (outs: ort.Tensor[], real: number): ort.Tensor[] => outs.map((t) => {
      if (!this.fixedBatch || real === this.fixedBatch || t.dims[0] !== this.fixedBatch) return t;
      const per = t.data.length / this.fixedBatch;
      return new ort.Tensor(t.type as never, (t.data as Float32Array).slice(0, real * per) as never, [real, ...t.dims.slice(1)]);
    });
    const lanes = Math.min(this.workers, bounds.length);
    await Promise.all(Array.from({ length: lanes }, async (_, lane) => {
      for (let k = lane; k < bounds.length; k += lanes) chunks[k] = trim(await run(part(k), bounds[k]![0], bounds[k]![1], lane), bounds[k]![1] - bounds[k]![0]);
    }));
    if (chunks.length === 0) return [];
    return chunks[0]!.map((_, k) => {
      const parts = chunks.map((c) => c[k]!);
      // One float32 chunk: its buffer is already a JS copy of onnxruntime's output, so it is returned as it is.
      if (parts.length === 1 && parts[0]!.data instanceof Float32Array) return { data: parts[0]!.data, shape: [...parts[0]!.dims], dtype: 'float32' as const };
      const total = parts.reduce((a, p) => a + p.data.length, 0);
      const data = new Float32Array(total);
      let off = 0;
      for (const p of parts) {
        data.set(p.data as Float32Array | Float64Array, off);
        off += p.data.length;
      }
      const first = parts[0]!;
      const rows = parts.reduce((a, p) => a + (p.dims[0] ?? 1), 0);
      return { data, shape: first.dims.length ? [rows, ...first.dims.slice(1)] : [], dtype: 'float32' as const };
    });
  }

  /**
   * An output declared as probabilities (`outputKind: 'probs'`) without a trailing Softmax that Bulwark can see
   * through is used as probabilities (losses take its log): a value outside [0, 1] means it is not one.
   * @throws BulwarkError BULWARK_E_MODEL
   */
  private checkProbabilities(out: ArrayLike<number>): void {
    if (this.outputKind !== 'probs' || this.logitsName !== this.outputName) return;
    for (let i = 0; i < out.length; i++) {
      const v = out[i]!;
      if (v < -1e-6 || v > 1 + 1e-6) {
        throw new BulwarkError('BULWARK_E_MODEL', `the model's output was declared probabilities (output kind probs), but it holds ${v} at flat index ${i}, outside [0, 1]`, {
          hint: 'Use --output-kind logits (or auto) for a model that outputs scores; probs is for a model whose output already is probabilities.',
        });
      }
    }
  }

  /** Throws BULWARK_E_DTYPE/SHAPE/NONFINITE unless `x` is a finite float32 batch of the model's input shape. */
  checkInput(x: Float32Tensor): void {
    if (!(x.data instanceof Float32Array)) throw new BulwarkError('BULWARK_E_DTYPE', 'input must be float32');
    if (this.inputShape.length === 0) {
      const declared = realInputs(this.graph)[0]?.shape;
      throw new BulwarkError('BULWARK_E_MODEL', declared === undefined || declared === null
        ? `the model input ${quote(this.inputName)} declares no shape, so its rank is unknown; Bulwark needs the input declared as [N, ...] (a batch axis first)`
        : `the model input ${quote(this.inputName)} is a scalar (shape []); Bulwark needs an input with a batch axis, [N, ...]`, {
        hint: 'Re-export the model with the input shape declared (torch.onnx.export with dynamic_axes={"input": {0: "N"}}), or set it with onnx.tools.update_model_dims.',
      });
    }
    const want = this.inputShape;
    const got = x.shape;
    if (got.length !== want.length || got.some((d, i) => i > 0 && want[i]! > 0 && d !== want[i])) {
      const hint = got.length === want.length - 1 ? ' (add a batch dimension)' : got.length === 2 && want.length === 4 ? ' (reshape flat rows to the image shape)' : '';
      throw new BulwarkError('BULWARK_E_SHAPE', `input has shape ${shapeStr(got)}; the model expects ${shapeStr(want.map((d, i) => (i === 0 && d < 0 ? 'N' : d < 0 ? '?' : d)))}${hint}`);
    }
    if (got[0] === 0) throw new BulwarkError('BULWARK_E_SHAPE', 'input has no examples (batch of 0)');
    assertFinite(x.data, 'input');
  }

  /** Class losses need class scores [N, K]: a declared output of another rank is refused before any graph is built. */
  private checkClassScores(head: HeadSpec): void {
    const shape = this.graph.outputs[0]!.shape;
    if (head.kind !== 'mse' && shape && shape.length !== 2) {
      throw new BulwarkError('BULWARK_E_MODEL', `the model output ${quote(this.outputName)} has shape ${shapeStr(shape.map((d) => d ?? '?'))} (rank ${shape.length}); losses and gradients need class scores [N, K]`, {
        hint: 'Use a classifier whose output is one score per class, [N, K] (`bulwark info` shows the output shape).',
      });
    }
  }

  /** predict returns one row per example: a scalar output, or one with another number of rows, is refused. */
  private checkOutputRows(out: Float32Tensor, n: number): void {
    if (out.shape.length === 0 || out.shape[0] !== n) {
      throw new BulwarkError('BULWARK_E_SHAPE', `the model output ${quote(this.outputName)} has shape ${shapeStr(out.shape)} for ${n} inputs; Bulwark needs one output row per example, [N, ...]`, {
        hint: 'The model reduces over the batch (a scalar or batch-summed output); use a model whose output keeps the batch axis (`bulwark info` shows the output shape).',
      });
    }
  }

  /** Throws BULWARK_E_LABELS unless `labels` has `n` class ids in [0, numClasses) (`what` names them in the message). */
  checkLabels(labels: ArrayLike<number>, n: number, what: string): void {
    if (labels.length !== n) throw new BulwarkError('BULWARK_E_LABELS', `${what} has ${labels.length} entries for ${n} inputs`);
    const k = this.numClasses;
    for (let i = 0; i < labels.length; i++) {
      const v = labels[i]!;
      if (!Number.isInteger(v) || v < 0 || (k > 0 && v >= k)) {
        throw new BulwarkError('BULWARK_E_LABELS', `${what}[${i}] = ${v} is not a class id in [0, ${k})`);
      }
    }
  }
}

/**
 * onnxruntime runs a Conv with a constant kernel in its blocked (NCHWc) layout and reorders the result whenever an op
 * without a blocked kernel reads it. A MaxPool that reports Indices (the gradient graphs ask for them) is such an op.
 * For a Conv with few input channels (a first layer) the plain NCHW convolution costs less than that reorder, so its
 * kernel is multiplied by a 1 computed at run time (from the batch size), which keeps it off the blocked path.
 * Values are unchanged (x·1 = x).
 */
export function keepPooledConvsNchw(g: Graph, input: string, floatType: number): Graph {
  const producer = new Map<string, Graph['nodes'][number]>();
  for (const n of g.nodes) for (const o of n.outputs) if (o) producer.set(o, n);
  const pooled = g.nodes.filter((n) => n.opType === 'MaxPool' && n.domain === '' && n.outputs[1]).map((p) => producer.get(p.inputs[0]!));
  const convs = [...new Set(pooled)].filter((c): c is Graph['nodes'][number] => {
    if (!c || c.opType !== 'Conv' || c.domain !== '' || !g.initializers.has(c.inputs[1] ?? '')) return false;
    const wd = g.initializers.get(c.inputs[1]!)!.dims;
    return wd.length === 4 && wd[1]! * attrNum(c, 'group', 1) <= 3;
  });
  if (convs.length === 0 || !g.inputs.some((v) => v.name === input)) return g;
  const out = cloneGraph(g);
  const b = new GraphBuilder(out, floatType);
  const batch = b.node('Slice', [b.shape(input), b.int64([0]), b.int64([1])]);
  const one = b.cast(b.node('Greater', [batch, b.int64([0])]), floatType);
  for (const c of convs) {
    // by position (cloneGraph keeps the order): node names need not be unique
    const node = out.nodes[g.nodes.indexOf(c)]!;
    node.inputs[1] = b.mul(node.inputs[1]!, b.reshape(one, b.int64([])));
  }
  out.nodes = topoSort(out);
  return out;
}

/** Bytes of one run's tensors that a gradient run aims at (about a shared L3 cache). */
const GRADIENT_RUN_BYTES = 32 * 2 ** 20;

/**
 * Examples per gradient run: per intra-op thread, the power of two (8 to 256) whose tensors take about
 * {@link GRADIENT_RUN_BYTES}, the per-example bytes estimated as three times those of every batch-sized value of the
 * forward graph (a backward pass holds about two more of each); times `threads` (rounded down to a power of two: each
 * thread takes a share of every op), at most 256. Smaller runs stay in cache; too small ones pay onnxruntime's
 * per-run cost. (cnn-small on 2 threads: 32 per thread, 64 per run; runs of 64 took 17.5-22.9 ms per 128 examples
 * against 18.0-25.3 ms for runs of 32, interleaved on one session.)
 */
export function gradientChunk(shapes: ShapeMap, threads = 1): number {
  let perExample = 0;
  for (const s of shapes.values()) {
    if (s.dims.length === 0 || s.dims[0] !== -1) continue;
    const elems = s.dims.slice(1).reduce((a, d) => a * Math.max(1, d), 1);
    perExample += elems * elemSize(s.elemType);
  }
  const fit = GRADIENT_RUN_BYTES / Math.max(1, 3 * perExample);
  const perThread = Math.max(8, Math.min(256, 2 ** Math.floor(Math.log2(Math.max(1, fit)))));
  return Math.min(256, perThread * 2 ** Math.floor(Math.log2(Math.max(1, threads))));
}

/** values[start:end] as int64, padded to `rows` with copies of the last value (a fixed-batch model's last chunk). */
function int64Feed(values: ArrayLike<number>, start: number, end: number, rows = end - start): ort.Tensor {
  const out = new BigInt64Array(rows);
  for (let i = 0; i < rows; i++) out[i] = BigInt(values[Math.min(start + i, end - 1)]!);
  return toOrt(ELEM.INT64, out, [rows]);
}

function toF32(d: Float32Array | Float64Array): Float32Array {
  return d instanceof Float32Array ? new Float32Array(d) : Float32Array.from(d);
}

/** The input of a Softmax that produces `output` over the class axis, or undefined. */
export function trailingSoftmaxInput(g: Graph, output: string): string | undefined {
  const producer = g.nodes.find((n) => n.outputs.includes(output));
  if (!producer || producer.opType !== 'Softmax') return undefined;
  const rank = g.outputs.find((o) => o.name === output)?.shape?.length ?? 2;
  const axis = attrNum(producer, 'axis', g.opset < 13 ? 1 : -1);
  const last = axis === -1 || axis === rank - 1;
  return last ? producer.inputs[0] : undefined;
}

/**
 * Refuses a model result holding NaN or infinity (a Log of zero, an overflow inside the model): scores, losses and
 * attacks computed from it would be meaningless.
 * @throws BulwarkError BULWARK_E_NONFINITE naming the example
 */
function finiteResult(data: ArrayLike<number>, n: number, what: string): void {
  const i = firstNonFinite(data);
  if (i < 0) return;
  const row = Math.floor(i / Math.max(1, data.length / n));
  throw new BulwarkError('BULWARK_E_NONFINITE', `the model's ${what} for example ${row} holds ${data[i]}: the model computes a non-finite value on this input`, {
    hint: 'Check the model on this example (a Log or division by zero, an overflow); a model that can output NaN cannot be scored or attacked.',
  });
}

/**
 * Loads an ONNX model from a path or bytes.
 * @throws BulwarkError BULWARK_E_FILE_NOT_FOUND, BULWARK_E_ONNX_PARSE, BULWARK_E_MODEL, BULWARK_E_OPSET
 * @example const m = await loadModel('cnn.onnx'); const logits = await m.predict(x);
 */
export async function loadModel(source: string | Uint8Array, opts: LoadOptions = {}): Promise<OnnxModel> {
  const g = readModel(source);
  if (g.opset < 11 || g.opset > 21) {
    throw new BulwarkError('BULWARK_E_OPSET', `the model uses opset ${g.opset}; Bulwark supports opsets 11 to 21`);
  }
  return new OnnxModel(g, opts);
}

/**
 * A model that answers with `overrides` (a new predict, optionally a lossAndGradient) and otherwise is `inner`:
 * same input shape, classes, bounds and output kind, and the same query counter (reads and writes go to `inner`).
 * Defenses and test doubles wrap models this way.
 */
export function wrapModel(inner: Model, overrides: Pick<Model, 'predict'> & Partial<Pick<Model, 'lossAndGradient'>>): Model {
  return {
    inputShape: inner.inputShape,
    numClasses: inner.numClasses,
    bounds: inner.bounds,
    outputKind: inner.outputKind,
    get queries() {
      return inner.queries;
    },
    set queries(v: number) {
      inner.queries = v;
    },
    ...overrides,
  };
}

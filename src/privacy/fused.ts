/**
 * In-graph per-example clipping for DP-SGD. The network's per-example training graph (the autodiff pass's
 * per-example mode, `buildTrainingGraph(net, { perExample: true })`, which keeps the batch axis on every parameter
 * gradient) is extended with a few ONNX nodes so that one onnxruntime run returns, instead of the [N, ...paramShape]
 * gradients themselves:
 *
 *   ‖gᵢ‖² = Σ_params ReduceSumSquare(gᵢ,p)          per example, over all parameters jointly (flat clipping)
 *   cᵢ = min(1, C / (‖gᵢ‖ + 1e-6))                    Opacus' clip factor, C a graph input
 *   Σᵢ cᵢ gᵢ,p = MatMul(c[1, N], g_p[N, P])           the clipped sum, one [P] row per parameter
 *
 * The per-example gradients never leave onnxruntime, so nothing of size N × parameters is copied into JavaScript or
 * looped over there; the cost over a plain training step is the per-example product (which the non-private graph
 * sums over the batch anyway) and a few reductions.
 *
 * Why not ghost norms for convolutions (Goodfellow 2015; Li et al. 2021, arXiv:2110.05679; Bu et al. 2022)? For a
 * convolution with T output positions, d = C_in·k² unfolded inputs and p = C_out outputs per example, the ghost norm
 * ‖aᵢᵀδᵢ‖² = ⟨aᵢaᵢᵀ, δᵢδᵢᵀ⟩ costs about T²(d + p) multiply-adds per example against T·d·p for the per-example
 * product; it pays only when 2T² < d·p (Li et al. §4). For the MNIST DP-SGD CNN (conv 16 8x8 s2: T = 196, d = 64,
 * p = 16, so T²(d + p) ≈ 3.1M vs T·d·p ≈ 0.2M; conv 32 4x4 s2: T = 25, d = 256, p = 32, 0.18M vs 0.2M) the
 * materialized product is as cheap or cheaper, and the ghost route needs a second (reweighted) backward pass on
 * top. docs/PRIVACY.md has the measured step times.
 */
import type * as ort from 'onnxruntime-node';
import type { Rng } from '../core/rng.js';
import type { Float32Tensor } from '../core/tensor.js';
import { INPUT_NAME, type Network } from '../nn/network.js';
import { buildTrainingGraph, type TrainingGraph } from '../nn/train.js';
import { GraphBuilder } from '../onnx/builder.js';
import { ELEM } from '../onnx/ir.js';
import { createSession, runSession, toOrt } from '../runtime/session.js';

/** The per-example training graph extended with in-graph norms and the clipped sum, and the names to feed and fetch. */
export interface ClippingGraph {
  tg: TrainingGraph;
  /** Scalar float input: the clipping bound C. */
  maxNorm: string;
  /** Output [N]: ‖gᵢ‖₂ over all parameters. */
  norms: string;
  /** Parameter name -> output holding Σᵢ cᵢ gᵢ (shaped like the parameter). */
  clipped: Map<string, string>;
}

/**
 * Extends the per-example training graph with per-example norms, clip factors and the clipped sum (see the module
 * comment). The per-example gradient outputs stay available.
 * @param net the network (no BatchNorm: the caller checks)
 * @throws BulwarkError BULWARK_E_UNSUPPORTED_OP / BULWARK_E_MODEL when a parameter has no per-example rule
 */
export async function buildClippingGraph(net: Network): Promise<ClippingGraph> {
  const tg = await buildTrainingGraph(net, { perExample: true });
  const g = tg.graph;
  const b = new GraphBuilder(g);
  const maxNorm = b.uniq('bulwark_max_grad_norm');
  g.inputs.push({ name: maxNorm, elemType: ELEM.FLOAT, shape: [] });
  const params = net.params();
  const flat = new Map<string, string>();
  const squares: string[] = [];
  for (const p of params) {
    // [N, ...shape] -> [N, P]
    const rows = b.reshape(tg.grads.get(p.name)!, b.int64([0, -1]));
    flat.set(p.name, rows);
    // Float32 accumulation over thousands of entries is off by ~1e-5 relative, so sum squares in float32 over
    // blocks of at most 128 entries only, then the block sums in float64.
    const size = p.data.length;
    let block = 1;
    for (let k = Math.min(128, size); k >= 1; k--) {
      if (size % k === 0) {
        block = k;
        break;
      }
    }
    const blocks = b.node('ReduceSumSquare', [b.reshape(rows, b.int64([0, size / block, block])), b.int64([2])], { keepdims: 0 }, `${p.name}/per_example_block_sq`);
    squares.push(b.node('ReduceSum', [b.cast(blocks, ELEM.DOUBLE), b.int64([1])], { keepdims: 0 }, `${p.name}/per_example_sq`));
  }
  const sq = squares.length === 1 ? squares[0]! : b.node('Sum', squares, {}, 'per_example_sq_total');
  const norms64 = b.node('Sqrt', [sq], {}, 'per_example_norm');
  const norms = b.node('Cast', [norms64], { to: ELEM.FLOAT }, 'per_example_norm_f32', b.uniq('bulwark_per_example_norms'));
  const f64 = (name: string, v: number) => b.initializer(name, ELEM.DOUBLE, [], Float64Array.of(v));
  const ratio = b.div(b.cast(maxNorm, ELEM.DOUBLE), b.add(norms64, f64('clip_eps', 1e-6)));
  const factor = b.cast(b.node('Min', [ratio, f64('clip_one', 1)], {}, 'clip_factor'), ELEM.FLOAT);
  const factorRow = b.node('Unsqueeze', [factor, b.int64([0])], {}, 'clip_factor_row');
  const clipped = new Map<string, string>();
  for (const p of params) {
    const summed = b.node('MatMul', [factorRow, flat.get(p.name)!], {}, `${p.name}/clipped_sum_row`);
    const out = b.node('Reshape', [summed, b.int64(p.shape)], {}, `${p.name}/clipped_sum`, b.uniq(`${p.name}.clipped_grad`));
    clipped.set(p.name, out);
    g.outputs.push({ name: out, elemType: ELEM.FLOAT, shape: [...p.shape] });
  }
  g.outputs.push({ name: norms, elemType: ELEM.FLOAT, shape: ['N'] });
  return { tg, maxNorm, norms, clipped };
}

/** One onnxruntime session over a {@link ClippingGraph}. */
export class ClippingSession {
  private constructor(
    readonly net: Network,
    readonly cg: ClippingGraph,
    private readonly session: ort.InferenceSession,
  ) {}

  static async create(net: Network, opts: { threads?: number } = {}): Promise<ClippingSession> {
    const cg = await buildClippingGraph(net);
    return new ClippingSession(net, cg, await createSession(cg.tg.graph, opts.threads === undefined ? {} : { threads: opts.threads }));
  }

  private feeds(x: Float32Tensor, y: ArrayLike<number>, rng: Rng, maxNorm: number): Record<string, ort.Tensor> {
    const n = x.shape[0]!;
    const labels = new BigInt64Array(n);
    for (let i = 0; i < n; i++) labels[i] = BigInt(y[i]!);
    const feeds: Record<string, ort.Tensor> = {
      [INPUT_NAME]: toOrt(ELEM.FLOAT, x.data, x.shape),
      [this.cg.tg.labels]: toOrt(ELEM.INT64, labels, [n]),
      [this.cg.maxNorm]: toOrt(ELEM.FLOAT, Float32Array.of(maxNorm), []),
    };
    for (const p of this.net.params()) feeds[p.name] = toOrt(ELEM.FLOAT, p.data, p.shape);
    for (const d of this.cg.tg.dropouts) feeds[d.maskInput] = toOrt(ELEM.FLOAT, d.makeMask(n, rng), [n, ...d.maskShape]);
    return feeds;
  }

  /**
   * One batched run: per-example losses, logits, norms and the clipped gradient sum at the network's current weights.
   * @param maxNorm clipping bound C > 0
   */
  async clippedSum(x: Float32Tensor, y: ArrayLike<number>, rng: Rng, maxNorm: number): Promise<{ loss: Float32Array; logits: Float32Array; norms: Float32Array; sum: Float32Array[] }> {
    const params = this.net.params();
    const out = await runSession(this.session, this.feeds(x, y, rng, maxNorm), [this.cg.tg.loss, this.cg.tg.logits, this.cg.norms, ...params.map((p) => this.cg.clipped.get(p.name)!)]);
    return {
      loss: out[this.cg.tg.loss]!.data as Float32Array,
      logits: out[this.cg.tg.logits]!.data as Float32Array,
      norms: out[this.cg.norms]!.data as Float32Array,
      sum: params.map((p) => out[this.cg.clipped.get(p.name)!]!.data as Float32Array),
    };
  }

  /** Per-example losses, logits and materialized [N, ...shape] gradients (same graph, other outputs). */
  async perExampleGrads(x: Float32Tensor, y: ArrayLike<number>, rng: Rng): Promise<{ loss: Float32Array; logits: Float32Array; grads: Float32Array[] }> {
    const params = this.net.params();
    const out = await runSession(this.session, this.feeds(x, y, rng, 1), [this.cg.tg.loss, this.cg.tg.logits, ...params.map((p) => this.cg.tg.grads.get(p.name)!)]);
    return {
      loss: out[this.cg.tg.loss]!.data as Float32Array,
      logits: out[this.cg.tg.logits]!.data as Float32Array,
      grads: params.map((p) => out[this.cg.tg.grads.get(p.name)!]!.data as Float32Array),
    };
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

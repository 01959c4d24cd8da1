/**
 * Vector-Jacobian products of a model's logits with respect to its input, Jᵀg, for any loss of the logits computed
 * in TypeScript (the feature-squeezing adaptive attack differentiates an L1 distance between softmax outputs this
 * way). A {@link NetworkModel} has its own `inputVjp`; for an {@link OnnxModel} the model graph gets a cotangent head
 * (loss = Σ_k z_k·g_k per example, z the logits the loss heads use) and Bulwark's autodiff pass builds its input
 * gradient, run in one cached onnxruntime session.
 */
import type * as ort from 'onnxruntime-node';
import { BulwarkError } from '../../core/errors.js';
import { sizeOf, type Float32Tensor } from '../../core/tensor.js';
import { normalizeOpset, simplifyForGradient } from '../../autodiff/normalize.js';
import { buildGradient } from '../../autodiff/walker.js';
import { GraphBuilder } from '../../onnx/builder.js';
import { ELEM, cloneGraph } from '../../onnx/ir.js';
import { probeShapes } from '../../runtime/probe.js';
import { createSession, runSession, toOrt } from '../../runtime/session.js';
import { OnnxModel, type Model } from '../../runtime/model.js';
import { NetworkModel } from './model.js';

const COTANGENT = 'bulwark_vjp_cotangent';

/** Jᵀg of a model's logits, with the logits it was taken at. */
export interface LogitVjp {
  /**
   * What `z` holds: `logits` (softmax them for probabilities), or `probs` for a probability model whose Softmax
   * cannot be seen through (then g is taken with respect to the probabilities themselves).
   */
  readonly kind: 'logits' | 'probs';
  /**
   * @param x inputs [N, ...]
   * @param cot cotangents g, [N·K] row-major
   * @returns z at x ([N, K]) and Jᵀg shaped like x
   */
  run(x: Float32Tensor, cot: Float32Array): Promise<{ z: Float32Tensor; grad: Float32Tensor }>;
  /** Releases the session this object made (a NetworkModel's own sessions are left to it). */
  dispose(): Promise<void>;
}

/**
 * The logit VJP of a white-box model.
 * @param model a {@link NetworkModel} or an {@link OnnxModel} (other models have no graph to differentiate)
 * @param batchSize largest batch per onnxruntime run (OnnxModel only)
 * @throws BulwarkError BULWARK_E_MODEL for any other model
 */
export function logitVjp(model: Model, batchSize = 256): LogitVjp {
  if (model instanceof NetworkModel) {
    return {
      kind: 'logits',
      run: async (x, cot) => {
        const r = await model.inputVjp(x, cot);
        return { z: r.logits, grad: r.grad };
      },
      dispose: async () => {},
    };
  }
  if (model instanceof OnnxModel) return onnxVjp(model, batchSize);
  throw new BulwarkError('BULWARK_E_MODEL', 'this operation needs the logits\' vector-Jacobian product: pass a loaded ONNX model (loadModel) or a NetworkModel', { hint: 'Wrapped and remote models have no graph to differentiate.' });
}

function onnxVjp(model: OnnxModel, batchSize: number): LogitVjp {
  const k = model.numClasses;
  // a probability output with no Softmax to see through: differentiate the probabilities themselves
  const kind: 'logits' | 'probs' = model.outputKind === 'probs' && model.logitsName === model.outputName ? 'probs' : 'logits';
  let built: Promise<{ session: ort.InferenceSession; grad: string }> | undefined;
  const build = async () => {
    const g = cloneGraph(simplifyForGradient(normalizeOpset(model.graph)));
    g.outputs = [{ name: model.logitsName, elemType: ELEM.FLOAT, shape: ['N', k] }];
    const b = new GraphBuilder(g);
    g.inputs.push({ name: COTANGENT, elemType: ELEM.FLOAT, shape: ['N', k] });
    const loss = b.reduceSum(b.mul(model.logitsName, COTANGENT), [1], false);
    g.outputs.push({ name: loss, elemType: ELEM.FLOAT, shape: ['N'] });
    const shapes = await probeShapes(g);
    const res = buildGradient({ graph: g, shapes, loss, wrt: [model.inputName] });
    const session = await createSession(res.graph);
    return { session, grad: res.grads.get(model.inputName)! };
  };
  return {
    kind,
    async run(x, cot) {
      const n = x.shape[0]!;
      if (cot.length !== n * k) throw new BulwarkError('BULWARK_E_SHAPE', `cotangent has ${cot.length} values for ${n} examples of ${k} classes`);
      built ??= build();
      const { session, grad } = await built;
      const row = sizeOf(x.shape.slice(1));
      const z = new Float32Array(n * k);
      const gx = new Float32Array(n * row);
      for (let a = 0; a < n; a += batchSize) {
        const e = Math.min(n, a + batchSize);
        const r = await runSession(session, {
          [model.inputName]: toOrt(ELEM.FLOAT, x.data.subarray(a * row, e * row), [e - a, ...x.shape.slice(1)]),
          [COTANGENT]: toOrt(ELEM.FLOAT, cot.subarray(a * k, e * k), [e - a, k]),
        }, [model.logitsName, grad]);
        z.set(r[model.logitsName]!.data as Float32Array, a * k);
        gx.set(r[grad]!.data as Float32Array, a * row);
      }
      model.queries += n;
      return { z: { data: z, shape: [n, k], dtype: 'float32' }, grad: { data: gx, shape: [...x.shape], dtype: 'float32' } };
    },
    async dispose() {
      if (built) await (await built).session.release();
      built = undefined;
    },
  };
}

import { BulwarkError } from '../core/errors.js';
import { GraphBuilder } from '../onnx/builder.js';
import { ELEM, type Graph } from '../onnx/ir.js';

/** Loss heads that can be fused into a model's graph. */
export type LossKind = 'ce' | 'margin' | 'dlr' | 'mse';

/**
 * A loss head. Untargeted losses are ones an attacker increases; targeted ones (labels hold the target class)
 * are ones an attacker decreases. Each is per example, so the gradient of their sum gives per-example gradients.
 */
export interface HeadSpec {
  kind: LossKind;
  /** Targeted form (margin, dlr); for ce the labels simply hold the target classes. */
  targeted?: boolean;
  /** Confidence kappa of the C&W margin (Carlini & Wagner 2017, arXiv:1608.04644); Infinity leaves it unclipped. */
  kappa?: number;
  /** Label smoothing epsilon for cross-entropy (Szegedy et al. 2016). */
  labelSmoothing?: number;
}

export interface HeadResult {
  /** Name of the per-example loss vector [N]. */
  loss: string;
  /** Names of the graph inputs the head added: class labels int64 [N]; for targeted DLR also `targets`; for mse a float target. */
  labels: string;
  targets?: string;
}

export const LABELS_INPUT = 'bulwark_labels';
export const TARGETS_INPUT = 'bulwark_targets';

/** A stable key for caching gradient graphs per head. */
export function headKey(h: HeadSpec): string {
  return `${h.kind}:${h.targeted ? 't' : 'u'}:${h.kappa ?? 'inf'}:${h.labelSmoothing ?? 0}`;
}

/**
 * Appends a loss head to a graph whose `logits` value is [N, K] (K = numClasses).
 *  - ce: −Σ t·log softmax(z), t the (optionally smoothed) one-hot label
 *  - margin: max_{j≠y} z_j − z_y, clipped above at kappa (untargeted) or below at −kappa (targeted, y = target)
 *  - dlr: Croce & Hein 2020 (arXiv:2003.01690): (max_{j≠y} z_j − z_y)/(z_(1) − z_(3)); targeted (z_y − z_t)/(z_(1) − (z_(3)+z_(4))/2)
 *  - mse: mean over non-batch axes of (output − target)², target a float input shaped like the output
 */
export function appendHead(g: Graph, logits: string, numClasses: number, spec: HeadSpec, floatType: number = ELEM.FLOAT, logitsDims?: number[]): HeadResult {
  const b = new GraphBuilder(g, floatType);
  const K = numClasses;
  if (spec.kind === 'mse') {
    const target = b.uniq(TARGETS_INPUT);
    g.inputs.push({ name: target, elemType: floatType, shape: logitsDims ? logitsDims.map((d) => (d < 0 ? 'N' : d)) : null });
    const d = b.sub(logits, target);
    const rank = logitsDims?.length ?? 2;
    const loss = b.reduce('ReduceMean', b.mul(d, d), Array.from({ length: rank - 1 }, (_, i) => i + 1), false);
    return { loss: named(b, loss, 'bulwark_loss'), labels: target };
  }
  const labels = b.uniq(LABELS_INPUT);
  g.inputs.push({ name: labels, elemType: ELEM.INT64, shape: ['N'] });
  // One-hots are made in float32 (onnxruntime has no float64 OneHot kernel) and cast for float64 graphs.
  const values = b.initializer('head/onehot_values', ELEM.FLOAT, [2], new Float32Array([0, 1]));
  const oneHot = (idx: string, name: string) => {
    const h = b.node('OneHot', [idx, b.int64([K], [1]), values], { axis: -1 }, name);
    return floatType === ELEM.FLOAT ? h : b.cast(h, floatType);
  };
  const onehot = oneHot(labels, 'head/onehot');
  if (spec.kind === 'ce') {
    const eps = spec.labelSmoothing ?? 0;
    const t = eps > 0 ? b.add(b.mul(onehot, b.scalar(1 - eps)), b.scalar(eps / K)) : onehot;
    const logp = b.node('LogSoftmax', [logits], { axis: -1 }, 'head/log_softmax');
    const loss = b.neg(b.reduceSum(b.mul(logp, t), [1], false));
    return { loss: named(b, loss, 'bulwark_loss'), labels };
  }
  if (K < 2) throw new BulwarkError('BULWARK_E_MODEL', `the ${spec.kind} loss needs at least 2 classes; the model has ${K}`);
  const isLabel = b.cast(onehot, ELEM.BOOL);
  const zLabel = b.reduceSum(b.mul(logits, onehot), [1], false);
  const zOther = b.reduce('ReduceMax', b.where(isLabel, b.scalar(-1e30), logits), [1], false);
  if (spec.kind === 'margin') {
    const kappa = spec.kappa ?? Infinity;
    let loss = b.sub(zOther, zLabel);
    if (Number.isFinite(kappa)) loss = spec.targeted ? b.node('Max', [loss, b.scalar(-kappa)]) : b.node('Min', [loss, b.scalar(kappa)]);
    return { loss: named(b, loss, 'bulwark_loss'), labels };
  }
  // dlr
  const needed = spec.targeted ? 4 : 3;
  if (K < needed) throw new BulwarkError('BULWARK_E_MODEL', `the ${spec.targeted ? 'targeted ' : ''}DLR loss needs at least ${needed} classes; the model has ${K}`, { hint: 'Use the cross-entropy or margin loss with models of few classes: `grad --loss ce|margin`, and the attack apgd-ce rather than apgd-dlr.' });
  const [top] = b.nodeN('TopK', [logits, b.int64([needed])], { axis: -1, largest: 1, sorted: 1 }, 2, 'head/topk');
  const pick = (k: number) => b.node('Gather', [top!, b.int64([k], [])], { axis: 1 });
  const tiny = b.scalar(1e-12);
  if (!spec.targeted) {
    const loss = b.div(b.sub(zOther, zLabel), b.add(b.sub(pick(0), pick(2)), tiny));
    return { loss: named(b, loss, 'bulwark_loss'), labels };
  }
  const targets = b.uniq(TARGETS_INPUT);
  g.inputs.push({ name: targets, elemType: ELEM.INT64, shape: ['N'] });
  const onehotT = oneHot(targets, 'head/onehot_target');
  const zTarget = b.reduceSum(b.mul(logits, onehotT), [1], false);
  const denom = b.add(b.sub(pick(0), b.mul(b.add(pick(2), pick(3)), b.scalar(0.5))), tiny);
  const loss = b.div(b.sub(zLabel, zTarget), denom);
  return { loss: named(b, loss, 'bulwark_loss'), labels, targets };
}

function named(b: GraphBuilder, value: string, name: string): string {
  const out = b.uniq(name);
  b.node('Identity', [value], {}, `${name}/out`, out);
  b.graph.outputs.push({ name: out, elemType: b.floatType, shape: ['N'] });
  return out;
}

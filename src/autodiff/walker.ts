import { BulwarkError } from '../core/errors.js';
import type { TypedArray } from '../core/tensor.js';
import { GraphBuilder, tensorAttr } from '../onnx/builder.js';
import { ELEM, allInputs, attrNum, cloneGraph, topoSort, type Graph, type Node, type TensorData } from '../onnx/ir.js';
import type { ShapeMap } from '../onnx/shapes.js';
import { attrReaders, makeUnsupported, type ConvWeightGradient, type RuleContext } from './context.js';
import { pooledConvCascade, pooledConvUnpool, splitPooledConvs, type PooledConv } from './pooled.js';
import { NO_GRADIENT, RULES, ZERO_GRADIENT } from './registry.js';
import { FEW_CHANNELS } from './rules/conv.js';

const FLOAT_TYPES = new Set<number>([ELEM.FLOAT, ELEM.DOUBLE, ELEM.FLOAT16]);

/** Ops whose rules can return per-example parameter gradients. */
const PER_EXAMPLE_OPS = new Set(['Gemm', 'Conv', 'Add', 'Sub', 'Mul', 'Div']);

/** What to differentiate: a loss value of the graph with respect to some of its inputs or initializers. */
export interface GradientRequest {
  /** A graph in the opset-18+ form (see normalizeOpset), with the loss head already appended. */
  graph: Graph;
  /** Static shapes of every value of `graph` (see probeShapes). */
  shapes: ShapeMap;
  /** The value to differentiate: its gradient is seeded with ones, so a per-example loss vector gives Σ-loss gradients. */
  loss: string;
  /** Graph inputs or initializers to differentiate with respect to. */
  wrt: string[];
  /**
   * Of `wrt`, the parameters whose gradient is wanted per example ([N, ...shape], for DP-SGD clipping) rather than
   * summed over the batch. Supported where a parameter feeds Gemm, Conv (ungrouped), or a broadcast Add/Mul directly.
   */
  perExample?: string[];
  /**
   * Compute each Conv read only by a non-overlapping MaxPool as one strided Conv per window position (see
   * splitPooledConvs); default true. Values are unchanged; false keeps the MaxPool-with-Indices form.
   */
  splitPooledConvs?: boolean;
  /**
   * How Conv weight gradients are formed: 'taps' (default; for sessions on one thread) or 'im2col' (for sessions with
   * several intra-op threads); the runtime picks it (runtime/session.ts convWeightGradientFor). Values agree to float
   * rounding either way.
   */
  convWeightGradient?: ConvWeightGradient;
}

export interface GradientResult {
  /** The forward graph plus the gradient nodes; each gradient is a graph output named in `grads`. */
  graph: Graph;
  /** wrt name -> output name of its gradient (`<name>_grad`). */
  grads: Map<string, string>;
  /** Nodes on the gradient path whose derivative is zero almost everywhere (quantizers, rounding). */
  zeroGradientNodes: string[];
}

/**
 * The reverse-mode pass: walks the nodes between the loss and the requested values backwards and emits, for each,
 * the ONNX nodes of its gradient (rules in ./rules). Repeated contributions to a value are summed. Any op on the
 * path without a rule fails with an error naming it; ops without a gradient (shape arithmetic) stop the walk.
 * @throws BulwarkError BULWARK_E_UNSUPPORTED_OP naming the op, node and opset
 */
export function buildGradient(req: GradientRequest): GradientResult {
  const g = cloneGraph(req.graph);
  const shapes: ShapeMap = new Map(req.shapes);
  const known = new Set([...g.inputs.map((v) => v.name), ...g.initializers.keys()]);
  for (const w of req.wrt) {
    if (!known.has(w)) throw new BulwarkError('BULWARK_E_MODEL', `cannot differentiate with respect to ${w}: it is not a graph input or initializer`);
  }
  const floatType = shapes.get(req.wrt[0] ?? '')?.elemType === ELEM.DOUBLE ? ELEM.DOUBLE : ELEM.FLOAT;
  const isFloatValue = (name: string) => FLOAT_TYPES.has(shapes.get(name)?.elemType ?? ELEM.FLOAT);
  const b = new GraphBuilder(g, floatType);

  let { order, fromWrt, toLoss } = pathSets(g, req.wrt, req.loss, isFloatValue);
  const pooled = req.splitPooledConvs === false ? new Map<string, PooledConv>() : splitPooledConvs(g, shapes, b, (conv) => fromWrt.has(conv.outputs[0] ?? '') && toLoss.has(conv.outputs[0] ?? ''));
  if (pooled.size) ({ order, fromWrt, toLoss } = pathSets(g, req.wrt, req.loss, isFloatValue));
  const active = order.filter((n) => n.outputs.some((o) => fromWrt.has(o) && toLoss.has(o)));
  for (const n of active) {
    if (n.domain !== '' || !RULES.has(n.opType)) {
      throw new BulwarkError('BULWARK_E_UNSUPPORTED_OP', `no gradient rule for ${n.domain ? n.domain + '.' : ''}${n.opType} (node ${n.name}, opset ${g.opset})`, {
        hint: 'Differentiable ops are listed by `bulwark info`; use a black-box attack (square, hsj) or a gradient estimator for this model.',
      });
    }
  }

  const constants = new Map<string, TypedArray>();
  for (const [k, t] of g.initializers) constants.set(k, t.data);
  for (const n of g.nodes) {
    const v = n.opType === 'Constant' ? n.attrs.get('value') : undefined;
    if (v && n.outputs[0]) constants.set(n.outputs[0], (v.value as TensorData).data);
  }
  const contributions = new Map<string, string[]>();
  const addContribution = (name: string, grad: string) => {
    const list = contributions.get(name) ?? [];
    list.push(grad);
    contributions.set(name, list);
  };
  const gradOf = (name: string): string | undefined => {
    const list = contributions.get(name);
    if (!list || list.length === 0) return undefined;
    if (list.length > 1) {
      const summed = b.node('Sum', list, {}, `${name}_grad/sum`);
      contributions.set(name, [summed]);
      return summed;
    }
    return list[0];
  };
  const one = floatType === ELEM.DOUBLE ? new Float64Array([1]) : new Float32Array([1]);
  addContribution(req.loss, b.node('ConstantOfShape', [b.shape(req.loss)], { value: tensorAttr({ dataType: floatType, dims: [1], data: one }) }, 'loss_grad/seed'));

  const perExample = new Set(req.perExample ?? []);
  for (const p of perExample) {
    if (!req.wrt.includes(p)) throw new BulwarkError('BULWARK_E_INTERNAL', `per-example gradient requested for ${p}, which is not in wrt`);
  }
  const zeroGradientNodes: string[] = [];
  // A Cast from a float value on the path to an integer type that the loss still reads (a quantizer): the gradient
  // through it is zero almost everywhere, like Round's, and is reported the same way.
  for (const n of order) {
    if (n.opType !== 'Cast' || n.domain !== '' || !n.inputs[0] || !fromWrt.has(n.inputs[0])) continue;
    const out = n.outputs[0];
    if (out && toLoss.has(out) && !isFloatValue(out)) zeroGradientNodes.push(n.name);
  }
  const weightForm = req.convWeightGradient ?? 'taps';
  // Outputs of phase Convs whose bias gradient the pooled Max gives directly (see below).
  const biasFromPool = new Set<string>();
  for (let i = active.length - 1; i >= 0; i--) {
    const node = active[i]!;
    const outGrads = node.outputs.map((o) => (o && toLoss.has(o) ? gradOf(o) : undefined));
    if (outGrads.every((x) => x === undefined)) continue;
    if (ZERO_GRADIENT.has(node.opType)) zeroGradientNodes.push(node.name);
    const pc = pooled.get(node.name);
    if (pc) {
      const x = pc.conv.inputs[0]!;
      const group = attrNum(pc.conv, 'group', 1);
      // The bias gradient is the sum of dY over the batch (per example: over space) whichever element of each window
      // takes it, so it is taken once here from the pooled dY rather than from each phase or the full-resolution map.
      const bias = pc.conv.inputs[2];
      if (bias && fromWrt.has(bias)) {
        const spatialAxes = pc.pooled.map((_, k) => k + 2);
        addContribution(bias, b.reduceSum(outGrads[0]!, perExample.has(bias) ? spatialAxes : [0, ...spatialAxes], false));
      }
      if ((shapes.get(x)?.dims[1] ?? 0) / group < FEW_CHANNELS) {
        // Few input channels (a first layer): each phase Conv takes its own strided gradient, which costs less than
        // building the full-resolution map (measured on cnn-small: input gradient 38.5 vs 42.9 ms, training 78.9 vs 85.3).
        pooledConvCascade(b, pc, node.outputs[0]!, outGrads[0]!, floatType).forEach((gr, p) => addContribution(pc.phases[p]!, gr));
        for (const phase of pc.phases) biasFromPool.add(phase);
        continue;
      }
      // dY goes to the argmax element of the full-resolution map, then through the original Conv's rule.
      const unpooled = pooledConvUnpool(b, pc, node.outputs[0]!, outGrads[0]!);
      const convCtx = makeContext(pc.conv, b, g.opset, [unpooled], fromWrt, shapes, constants, floatType, perExample, weightForm, new Set([2]), pc.used);
      const convGrads = RULES.get('Conv')!(convCtx);
      pc.conv.inputs.forEach((inp, k) => {
        const gr = convGrads[k];
        if (inp && gr && fromWrt.has(inp)) addContribution(inp, gr);
      });
      continue;
    }
    const skip = node.opType === 'Conv' && biasFromPool.has(node.outputs[0]!) ? new Set([2]) : undefined;
    const ctx = makeContext(node, b, g.opset, outGrads, fromWrt, shapes, constants, floatType, perExample, weightForm, skip);
    node.inputs.forEach((inp, k) => {
      if (perExample.has(inp) && !PER_EXAMPLE_OPS.has(node.opType)) {
        ctx.unsupported(`per-example gradient of parameter ${inp} (input ${k}): supported only where a parameter feeds ${[...PER_EXAMPLE_OPS].join(', ')}`);
      }
    });
    const grads = RULES.get(node.opType)!(ctx);
    node.inputs.forEach((inp, k) => {
      const gr = grads[k];
      if (inp && gr && fromWrt.has(inp)) addContribution(inp, gr);
    });
  }

  const grads = new Map<string, string>();
  for (const w of req.wrt) {
    const found = gradOf(w);
    if (!found) {
      const blocking = blockingOps(order, w, toLoss);
      if (blocking.length > 0) {
        const names = blocking.slice(0, 4).map((n) => `${n.opType} (node ${n.name})`).join(', ');
        throw new BulwarkError('BULWARK_E_UNSUPPORTED_OP', `the loss depends on ${w} only through ops without a gradient: ${names}${blocking.length > 4 ? ` and ${blocking.length - 4} more` : ''}; its gradient would be zero everywhere`, {
          hint: 'The model outputs a decision (argmax, one-hot) rather than scores: use a black-box attack (square on scores, hsj on decisions) or a gradient estimator (nes, spsa), or export the model without the final ArgMax/OneHot.',
        });
      }
    }
    if (!found && perExample.has(w)) throw new BulwarkError('BULWARK_E_MODEL', `the loss does not depend on ${w}; no per-example gradient to return`);
    const src = found ?? b.zerosLike(w);
    const outName = b.uniq(`${w}_grad`);
    b.node('Identity', [src], {}, `${w}_grad/out`, outName);
    grads.set(w, outName);
    const s = shapes.get(w);
    const dims = s ? s.dims.map((d) => (d < 0 ? null : d)) : null;
    g.outputs.push({ name: outName, elemType: floatType, shape: dims && perExample.has(w) ? [null, ...dims] : dims });
  }
  return { graph: g, grads, zeroGradientNodes };
}

/** Topological order, values reachable from `wrt` through differentiable ops, and values the loss depends on. */
function pathSets(g: Graph, wrt: string[], loss: string, isFloatValue: (name: string) => boolean): { order: Node[]; fromWrt: Set<string>; toLoss: Set<string> } {
  const order = topoSort(g);
  // Subgraph reads count as inputs: an If or Loop whose body reads a value on the path is on the path (and, having
  // no rule, refused) rather than silently cutting the gradient.
  const fromWrt = new Set(wrt);
  for (const n of order) {
    if (NO_GRADIENT.has(n.opType)) continue;
    if (allInputs(n).some((i) => i && fromWrt.has(i))) for (const o of n.outputs) if (o && isFloatValue(o)) fromWrt.add(o);
  }
  const toLoss = new Set([loss]);
  for (let i = order.length - 1; i >= 0; i--) {
    const n = order[i]!;
    if (n.outputs.some((o) => toLoss.has(o))) for (const inp of allInputs(n)) if (inp) toLoss.add(inp);
  }
  return { order, fromWrt, toLoss };
}

/**
 * The ops without a gradient that stand between `from` and `to` when `to` depends on `from` only through such ops
 * (a model that ends in ArgMax or OneHot); empty when a differentiable path exists or `to` does not depend on `from`.
 * Element types are not consulted (a cast to an integer type counts as differentiable here).
 */
export function gradientBlockers(g: Graph, from: string, to: string): Node[] {
  const { order, fromWrt, toLoss } = pathSets(g, [from], to, () => true);
  return fromWrt.has(to) ? [] : blockingOps(order, from, toLoss);
}

/**
 * The ops without a gradient (ArgMax, OneHot, comparisons) through which `w` reaches the loss, when it reaches it at
 * all: the reason a loss that depends on `w` has no gradient with respect to it.
 */
function blockingOps(order: Node[], w: string, toLoss: Set<string>): Node[] {
  const reach = new Set([w]);
  const blocking: Node[] = [];
  for (const n of order) {
    if (!allInputs(n).some((i) => i && reach.has(i))) continue;
    for (const o of n.outputs) if (o) reach.add(o);
    if (NO_GRADIENT.has(n.opType) && n.outputs.some((o) => toLoss.has(o))) blocking.push(n);
  }
  return blocking;
}

function makeContext(
  node: Node,
  b: GraphBuilder,
  opset: number,
  outGrads: (string | undefined)[],
  fromWrt: Set<string>,
  shapes: ShapeMap,
  constants: Map<string, TypedArray>,
  floatType: number,
  perExample: Set<string>,
  convWeightGradient: ConvWeightGradient,
  /** Inputs whose gradient is given elsewhere (needsGrad is false for them). */
  skip?: Set<number>,
  /** RuleContext.gradOutputExtent. */
  gradOutputExtent?: number[],
): RuleContext {
  const unsupported = makeUnsupported(node, opset);
  const dims = (name: string): number[] => {
    const s = shapes.get(name);
    if (!s) throw new BulwarkError('BULWARK_E_INTERNAL', `no static shape known for ${name} (node ${node.name})`);
    return s.dims;
  };
  return {
    node,
    b,
    opset,
    input: (i) => node.inputs[i] ?? '',
    output: (i) => node.outputs[i] ?? '',
    gradOutput: (i) => outGrads[i],
    needsGrad: (i) => !!node.inputs[i] && fromWrt.has(node.inputs[i]!) && !skip?.has(i),
    perExample: (i) => !!node.inputs[i] && perExample.has(node.inputs[i]!),
    convWeightGradient,
    ...(gradOutputExtent ? { gradOutputExtent } : {}),
    dims,
    elemType: (name) => shapes.get(name)?.elemType ?? floatType,
    constValue: (name) => constants.get(name) ?? (shapes.get(name)?.value as TypedArray | undefined),
    ...attrReaders(node),
    temp: (suffix) => `${node.name}_grad/${suffix}`,
    ensureOutput: (i) => {
      while (node.outputs.length <= i) node.outputs.push('');
      if (!node.outputs[i]) node.outputs[i] = b.uniq(`${node.name}:out${i}`);
      return node.outputs[i]!;
    },
    unbroadcast: (grad, input, gDims) => unbroadcast(b, grad, gDims ?? dims(node.outputs[0]!), input, dims(input), perExample.has(input)),
    unsupported,
  };
}

/** Sums `grad` (of static dims `gDims`) over the axes that broadcasting added or stretched, back to `input`'s shape. */
export function unbroadcast(b: GraphBuilder, grad: string, gDims: number[], input: string, inDims: number[], keepBatch = false): string {
  const lead = gDims.length - inDims.length;
  const axes: number[] = [];
  for (let i = 0; i < gDims.length; i++) {
    if (i < lead) axes.push(i);
    else if (inDims[i - lead] === 1 && gDims[i] !== 1) axes.push(i);
  }
  if (keepBatch) {
    // Per-example: sum every broadcast axis but the batch axis 0, then shape as [N, ...input dims].
    if (lead < 1 || inDims.some((d) => d < 0)) throw new BulwarkError('BULWARK_E_UNSUPPORTED_OP', `per-example gradient of ${input}: it is not broadcast over the batch axis`);
    const rest = axes.filter((a) => a !== 0);
    const summed = rest.length ? b.reduceSum(grad, rest, true) : grad;
    return b.reshape(summed, b.int64([0, ...inDims]));
  }
  if (axes.length === 0 && lead === 0) return grad;
  const summed = b.reduceSum(grad, axes, true);
  const target = inDims.every((d) => d >= 0) ? b.int64(inDims) : b.shape(input);
  return b.reshape(summed, target);
}

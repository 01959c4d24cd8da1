import type { RuleContext, RuleTable } from '../context.js';

/** The reduced axes of a Reduce* node in the opset-18 form (axes input), normalized to be non-negative. */
export function reducedAxes(c: RuleContext): number[] {
  const rank = c.dims(c.input(0)).length;
  const axesName = c.input(1);
  let axes: number[] = [];
  if (axesName) {
    const v = c.constValue(axesName);
    if (!v) c.unsupported('the axes input must be a constant');
    axes = Array.from(v as BigInt64Array, Number);
  }
  if (axes.length === 0) {
    if (c.attrNum('noop_with_empty_axes', 0) === 1) return [];
    return Array.from({ length: rank }, (_, i) => i);
  }
  return axes.map((a) => (a < 0 ? a + rank : a)).sort((a, b) => a - b);
}

/** dY brought back to the input's rank (keepdims form). */
function keepDims(c: RuleContext, axes: number[]): string {
  const dY = c.gradOutput(0)!;
  if (c.attrNum('keepdims', 1) === 1 || axes.length === 0) return dY;
  return c.b.node('Unsqueeze', [dY, c.b.int64(axes)]);
}

function count(c: RuleContext, axes: number[]): string {
  const b = c.b;
  const dims = c.dims(c.input(0));
  if (axes.every((a) => dims[a]! >= 0)) return b.scalar(axes.reduce((p, a) => p * dims[a]!, 1));
  const sizes = b.node('Gather', [b.shape(c.input(0)), b.int64(axes)]);
  return b.cast(b.node('ReduceProd', [sizes], { keepdims: 0 }), c.elemType(c.input(0)));
}

/** Max/Min: the gradient goes to the elements equal to the result, split evenly on ties. */
function extremum(c: RuleContext): (string | undefined)[] {
  const b = c.b;
  const x = c.input(0);
  const axes = reducedAxes(c);
  const y = c.attrNum('keepdims', 1) === 1 || axes.length === 0 ? c.output(0) : b.node('Unsqueeze', [c.output(0), b.int64(axes)]);
  const mask = b.cast(b.node('Equal', [x, y]), c.elemType(x));
  const ties = axes.length ? b.reduceSum(mask, axes, true) : b.scalar(1);
  return [b.mul(mask, b.div(keepDims(c, axes), ties)), undefined];
}

export const reduceRules: RuleTable = {
  // dX = dY broadcast over the reduced axes
  ReduceSum: (c) => {
    const axes = reducedAxes(c);
    return [c.b.node('Expand', [keepDims(c, axes), c.b.shape(c.input(0))]), undefined];
  },
  // dX = dY / count broadcast over the reduced axes
  ReduceMean: (c) => {
    const axes = reducedAxes(c);
    return [c.b.node('Expand', [c.b.div(keepDims(c, axes), count(c, axes)), c.b.shape(c.input(0))]), undefined];
  },
  // dX = 2·X·dY
  ReduceSumSquare: (c) => {
    const axes = reducedAxes(c);
    const b = c.b;
    return [b.mul(b.mul(c.input(0), b.scalar(2)), keepDims(c, axes)), undefined];
  },
  // dX = dY·exp(X - Y)
  ReduceLogSumExp: (c) => {
    const axes = reducedAxes(c);
    const b = c.b;
    const y = c.attrNum('keepdims', 1) === 1 ? c.output(0) : b.node('Unsqueeze', [c.output(0), b.int64(axes)]);
    return [b.mul(keepDims(c, axes), b.node('Exp', [b.sub(c.input(0), y)])), undefined];
  },
  ReduceMax: extremum,
  ReduceMin: extremum,
  // Values output of TopK: scatter dY back to the picked indices
  TopK: (c) => {
    const b = c.b;
    const x = c.input(0);
    const axis = c.attrNum('axis', -1);
    const zeros = b.zerosLike(x);
    return [b.node('ScatterElements', [zeros, c.output(1), c.gradOutput(0)!], { axis, reduction: 'add' }), undefined];
  },
};

import type { RuleContext, RuleTable } from '../context.js';

/** Reshapes a per-channel vector [C] to [1, C, 1, ...] for a rank-r activation. */
function perChannel(c: RuleContext, v: string, rank: number): string {
  return c.b.reshape(v, c.b.int64([1, -1, ...new Array(rank - 2).fill(1)]));
}

/**
 * Shared backward of normalization over `axes`: with x̂ = (x - μ)/σ and g = dY·scale,
 * dX = (g - mean(g) - x̂·mean(g·x̂)) / σ.
 */
function normalizeBackward(c: RuleContext, x: string, g: string, axes: number[], eps: number): { dx: string; xhat: string } {
  const b = c.b;
  const mu = b.reduce('ReduceMean', x, axes, true);
  const xc = b.sub(x, mu);
  const variance = b.reduce('ReduceMean', b.mul(xc, xc), axes, true);
  const sigma = b.node('Sqrt', [b.add(variance, b.scalar(eps))]);
  const xhat = b.div(xc, sigma);
  const gMean = b.reduce('ReduceMean', g, axes, true);
  const gxMean = b.reduce('ReduceMean', b.mul(g, xhat), axes, true);
  const dx = b.div(b.sub(b.sub(g, gMean), b.mul(xhat, gxMean)), sigma);
  return { dx, xhat };
}

export const normRules: RuleTable = {
  // Inference form, an affine map per channel: dX = dY·scale/√(var+ε); dScale = Σ dY·x̂; dB = Σ dY
  BatchNormalization: (c) => {
    const b = c.b;
    if (c.attrNum('training_mode', 0) === 1 || c.node.outputs.filter(Boolean).length > 1) {
      c.unsupported('training-mode BatchNormalization; export the model in eval mode');
    }
    const [x, scale, , mean, variance] = [0, 1, 2, 3, 4].map((i) => c.input(i)) as [string, string, string, string, string];
    const dY = c.gradOutput(0)!;
    const rank = c.dims(x).length;
    const eps = c.attrNum('epsilon', 1e-5);
    const invStd = b.div(b.scalar(1), b.node('Sqrt', [b.add(variance, b.scalar(eps))]));
    const axes = [0, ...Array.from({ length: rank - 2 }, (_, i) => i + 2)];
    const xc = c.needsGrad(1) || c.needsGrad(4) ? b.sub(x, perChannel(c, mean, rank)) : '';
    const dx = c.needsGrad(0) ? b.mul(dY, perChannel(c, b.mul(scale, invStd), rank)) : undefined;
    const dScale = c.needsGrad(1) ? b.reduceSum(b.mul(dY, b.mul(xc, perChannel(c, invStd, rank))), axes, false) : undefined;
    const dBias = c.needsGrad(2) ? b.reduceSum(dY, axes, false) : undefined;
    // dMean = -Σ dY·scale/σ; dVar = -½·Σ dY·(x-μ)·scale/σ³
    const dMean = c.needsGrad(3) ? b.neg(b.mul(b.reduceSum(dY, axes, false), b.mul(scale, invStd))) : undefined;
    const dVar = c.needsGrad(4)
      ? b.mul(b.reduceSum(b.mul(dY, xc), axes, false), b.mul(b.scalar(-0.5), b.mul(scale, b.mul(invStd, b.mul(invStd, invStd)))))
      : undefined;
    return [dx, dScale, dBias, dMean, dVar];
  },
  // Normalized over axes [axis, rank): dX by normalizeBackward; dScale = Σ dY·x̂; dB = Σ dY over the leading axes
  LayerNormalization: (c) => {
    const b = c.b;
    const [x, scale, bias] = [c.input(0), c.input(1), c.input(2)];
    const dY = c.gradOutput(0)!;
    if (c.gradOutput(1) || c.gradOutput(2)) c.unsupported('gradients through the Mean/InvStdDev outputs');
    const rank = c.dims(x).length;
    let axis = c.attrNum('axis', -1);
    if (axis < 0) axis += rank;
    const axes = Array.from({ length: rank - axis }, (_, i) => i + axis);
    const { dx, xhat } = normalizeBackward(c, x, b.mul(dY, scale), axes, c.attrNum('epsilon', 1e-5));
    return [
      c.needsGrad(0) ? dx : undefined,
      c.needsGrad(1) ? c.unbroadcast(b.mul(dY, xhat), scale) : undefined,
      bias && c.needsGrad(2) ? c.unbroadcast(dY, bias) : undefined,
    ];
  },
  // Normalized per (n, c) over space; scale and B per channel
  InstanceNormalization: (c) => {
    const b = c.b;
    const [x, scale] = [c.input(0), c.input(1)];
    const dY = c.gradOutput(0)!;
    const rank = c.dims(x).length;
    const spatial = Array.from({ length: rank - 2 }, (_, i) => i + 2);
    const { dx, xhat } = normalizeBackward(c, x, b.mul(dY, perChannel(c, scale, rank)), spatial, c.attrNum('epsilon', 1e-5));
    const batchAndSpace = [0, ...spatial];
    return [
      c.needsGrad(0) ? dx : undefined,
      c.needsGrad(1) ? b.reduceSum(b.mul(dY, xhat), batchAndSpace, false) : undefined,
      c.needsGrad(2) ? b.reduceSum(dY, batchAndSpace, false) : undefined,
    ];
  },
};

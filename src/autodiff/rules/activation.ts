import type { RuleContext, RuleTable } from '../context.js';

const dY = (c: RuleContext) => c.gradOutput(0)!;

/** Softmax-family axis: the opset-13 form (normalize along one axis; the pass rewrites older forms first). */
const axisOf = (c: RuleContext) => c.attrNum('axis', -1);

export const activationRules: RuleTable = {
  // dX = dY·[X > 0] (a Mul by the cast mask: onnxruntime's Where with a broadcast scalar is several times slower)
  Relu: (c) => [c.b.mul(dY(c), c.b.cast(c.b.node('Greater', [c.input(0), c.b.scalar(0)]), c.elemType(c.input(0))))],
  // dX = dY where X > 0, alpha·dY elsewhere
  LeakyRelu: (c) => {
    const b = c.b;
    const alpha = c.attrNum('alpha', 0.01);
    return [b.where(b.node('Greater', [c.input(0), b.scalar(0)]), dY(c), b.mul(dY(c), b.scalar(alpha)))];
  },
  // dX = dY·slope where X < 0 (PRelu); dSlope = Σ dY·X where X < 0
  PRelu: (c) => {
    const b = c.b;
    const x = c.input(0);
    const pos = b.node('Greater', [x, b.scalar(0)]);
    const dx = c.needsGrad(0) ? b.where(pos, dY(c), b.mul(dY(c), c.input(1))) : undefined;
    const ds = c.needsGrad(1) ? c.unbroadcast(b.where(pos, b.scalar(0), b.mul(dY(c), x)), c.input(1)) : undefined;
    return [dx, ds];
  },
  // dX = dY where X > 0, dY·(Y + alpha) elsewhere
  Elu: (c) => {
    const b = c.b;
    const alpha = c.attrNum('alpha', 1);
    return [b.where(b.node('Greater', [c.input(0), b.scalar(0)]), dY(c), b.mul(dY(c), b.add(c.output(0), b.scalar(alpha))))];
  },
  // dX = gamma·dY where X > 0, dY·(Y + alpha·gamma) elsewhere
  Selu: (c) => {
    const b = c.b;
    const alpha = c.attrNum('alpha', 1.67326319217681884765625);
    const gamma = c.attrNum('gamma', 1.05070102214813232421875);
    return [b.where(b.node('Greater', [c.input(0), b.scalar(0)]), b.mul(dY(c), b.scalar(gamma)), b.mul(dY(c), b.add(c.output(0), b.scalar(alpha * gamma))))];
  },
  // dX = dY·Y·(1 - Y)
  Sigmoid: (c) => {
    const b = c.b;
    const y = c.output(0);
    return [b.mul(dY(c), b.mul(y, b.sub(b.scalar(1), y)))];
  },
  // dX = alpha·dY where 0 < alpha·X + beta < 1
  HardSigmoid: (c) => {
    const b = c.b;
    const alpha = c.attrNum('alpha', 0.2);
    const beta = c.attrNum('beta', 0.5);
    const t = b.add(b.mul(c.input(0), b.scalar(alpha)), b.scalar(beta));
    const inside = b.node('And', [b.node('Greater', [t, b.scalar(0)]), b.node('Less', [t, b.scalar(1)])]);
    return [b.where(inside, b.mul(dY(c), b.scalar(alpha)), b.scalar(0))];
  },
  // HardSwish y = x·HardSigmoid(x; 1/6, 1/2): dX = dY·(x/3 + 1/2) on (-3, 3), dY above
  HardSwish: (c) => {
    const b = c.b;
    const x = c.input(0);
    const mid = b.add(b.mul(x, b.scalar(1 / 3)), b.scalar(0.5));
    const inside = b.node('And', [b.node('Greater', [x, b.scalar(-3)]), b.node('Less', [x, b.scalar(3)])]);
    const slope = b.where(inside, mid, b.cast(b.node('GreaterOrEqual', [x, b.scalar(3)]), c.elemType(x)));
    return [b.mul(dY(c), slope)];
  },
  // dX = dY·(1 - Y²)
  Tanh: (c) => {
    const b = c.b;
    const y = c.output(0);
    return [b.mul(dY(c), b.sub(b.scalar(1), b.mul(y, y)))];
  },
  // dX = dY·sigmoid(X)
  Softplus: (c) => [c.b.mul(dY(c), c.b.node('Sigmoid', [c.input(0)]))],
  // dX = dY / (1 + |X|)²
  Softsign: (c) => {
    const b = c.b;
    const d = b.add(b.scalar(1), b.node('Abs', [c.input(0)]));
    return [b.div(dY(c), b.mul(d, d))];
  },
  // dX = Y·(dY - Σ_axis dY·Y)
  Softmax: (c) => {
    const b = c.b;
    const y = c.output(0);
    const s = b.reduceSum(b.mul(dY(c), y), [axisOf(c)], true);
    return [b.mul(y, b.sub(dY(c), s))];
  },
  // dX = dY - exp(Y)·Σ_axis dY
  LogSoftmax: (c) => {
    const b = c.b;
    const s = b.reduceSum(dY(c), [axisOf(c)], true);
    return [b.sub(dY(c), b.mul(b.node('Exp', [c.output(0)]), s))];
  },
  // exact: dX = dY·(Φ(x) + x·φ(x)); tanh form: derivative of 0.5·x·(1 + tanh(√(2/π)(x + 0.044715x³)))
  Gelu: (c) => {
    const b = c.b;
    const x = c.input(0);
    if (c.attrStr('approximate', 'none') === 'tanh') {
      const k = Math.sqrt(2 / Math.PI);
      const x2 = b.mul(x, x);
      const inner = b.mul(b.scalar(k), b.add(x, b.mul(b.scalar(0.044715), b.mul(x2, x))));
      const t = b.node('Tanh', [inner]);
      const dInner = b.mul(b.scalar(k), b.add(b.scalar(1), b.mul(b.scalar(3 * 0.044715), x2)));
      const sech2 = b.sub(b.scalar(1), b.mul(t, t));
      const d = b.add(b.mul(b.scalar(0.5), b.add(b.scalar(1), t)), b.mul(b.mul(b.scalar(0.5), x), b.mul(sech2, dInner)));
      return [b.mul(dY(c), d)];
    }
    const cdf = b.mul(b.scalar(0.5), b.add(b.scalar(1), b.node('Erf', [b.mul(x, b.scalar(Math.SQRT1_2))])));
    const pdf = b.mul(b.scalar(1 / Math.sqrt(2 * Math.PI)), b.node('Exp', [b.mul(b.mul(x, x), b.scalar(-0.5))]));
    return [b.mul(dY(c), b.add(cdf, b.mul(x, pdf)))];
  },
};

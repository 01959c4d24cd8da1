import { ELEM } from '../../onnx/ir.js';
import type { RuleContext, RuleTable } from '../context.js';

const isFloat = (t: number) => t === ELEM.FLOAT || t === ELEM.DOUBLE || t === ELEM.FLOAT16;

/** The gradient of output 0, which the walker guarantees for single-output ops. */
const dY = (c: RuleContext) => c.gradOutput(0)!;

export const elementwiseRules: RuleTable = {
  // dA = dY, dB = dY (each summed back over broadcast axes)
  Add: (c) => [c.needsGrad(0) ? c.unbroadcast(dY(c), c.input(0)) : undefined, c.needsGrad(1) ? c.unbroadcast(dY(c), c.input(1)) : undefined],
  // dA = dY, dB = -dY
  Sub: (c) => [c.needsGrad(0) ? c.unbroadcast(dY(c), c.input(0)) : undefined, c.needsGrad(1) ? c.unbroadcast(c.b.neg(dY(c)), c.input(1)) : undefined],
  // dA = dY·B, dB = dY·A
  Mul: (c) => [
    c.needsGrad(0) ? c.unbroadcast(c.b.mul(dY(c), c.input(1)), c.input(0)) : undefined,
    c.needsGrad(1) ? c.unbroadcast(c.b.mul(dY(c), c.input(0)), c.input(1)) : undefined,
  ],
  // dA = dY / B, dB = -dY·Y / B
  Div: (c) => [
    c.needsGrad(0) ? c.unbroadcast(c.b.div(dY(c), c.input(1)), c.input(0)) : undefined,
    c.needsGrad(1) ? c.unbroadcast(c.b.neg(c.b.div(c.b.mul(dY(c), c.output(0)), c.input(1))), c.input(1)) : undefined,
  ],
  // dX = -dY
  Neg: (c) => [c.b.neg(dY(c))],
  // dX = -dY·Y²
  Reciprocal: (c) => [c.b.neg(c.b.mul(dY(c), c.b.mul(c.output(0), c.output(0))))],
  // dA = dY·B·A^(B-1); dB = dY·Y·ln A
  Pow: (c) => {
    const b = c.b;
    const [x, e] = [c.input(0), c.input(1)];
    const eF = c.elemType(e) === c.elemType(x) ? e : b.cast(e, c.elemType(x));
    // As PyTorch at x = 0: an exponent of 0 gives dA = 0 (not 0·x⁻¹ = NaN), and dB = 0 where x = 0 and B ≥ 0
    // (not 0·ln 0 = NaN). A constant exponent without zeros needs no mask.
    const eConst = c.constValue(e);
    let dA: string | undefined;
    if (c.needsGrad(0)) {
      let g = b.mul(dY(c), b.mul(eF, b.node('Pow', [x, b.sub(eF, b.scalar(1))])));
      if (!eConst || Array.from(eConst as ArrayLike<number | bigint>).some((v) => Number(v) === 0)) g = b.where(b.node('Equal', [eF, b.scalar(0)]), b.scalar(0), g);
      dA = c.unbroadcast(g, x);
    }
    let dB: string | undefined;
    if (c.needsGrad(1)) {
      const atZero = b.node('And', [b.node('Equal', [x, b.scalar(0)]), b.node('Not', [b.node('Less', [eF, b.scalar(0)])])]);
      dB = c.unbroadcast(b.where(atZero, b.scalar(0), b.mul(dY(c), b.mul(c.output(0), b.node('Log', [x])))), e);
    }
    return [dA, dB];
  },
  // dX = dY / (2·Y)
  Sqrt: (c) => [c.b.div(dY(c), c.b.mul(c.output(0), c.b.scalar(2)))],
  // dX = dY·Y
  Exp: (c) => [c.b.mul(dY(c), c.output(0))],
  // dX = dY / X
  Log: (c) => [c.b.div(dY(c), c.input(0))],
  // dX = dY·sign(X) (0 at 0, as PyTorch)
  Abs: (c) => [c.b.mul(dY(c), c.b.node('Sign', [c.input(0)]))],
  // dX = dY·2/√π·exp(-X²)
  Erf: (c) => {
    const b = c.b;
    const x = c.input(0);
    return [b.mul(dY(c), b.mul(b.scalar(2 / Math.sqrt(Math.PI)), b.node('Exp', [b.neg(b.mul(x, x))])))];
  },
  // Piecewise-constant ops: the derivative is zero almost everywhere (a gradient-masking check reports them).
  Floor: (c) => [c.b.zerosLike(c.input(0))],
  Ceil: (c) => [c.b.zerosLike(c.input(0))],
  Round: (c) => [c.b.zerosLike(c.input(0))],
  Sign: (c) => [c.b.zerosLike(c.input(0))],
  // dX = dY
  Identity: (c) => [dY(c)],
  // Inference-mode Dropout is the identity; its mask output carries no gradient.
  Dropout: (c) => {
    // training_mode must be absent or a constant false: a computed or fed flag could turn the random mask on
    const mode = c.input(2) ? c.constValue(c.input(2)) : undefined;
    if (c.input(2) && (mode === undefined || mode[0])) c.unsupported(mode === undefined ? 'training_mode is not a constant: dropout could be random; export the model in eval mode' : 'training_mode=true dropout is random; export the model in eval mode');
    return [dY(c), undefined, undefined];
  },
  // dX = Cast(dY) back to the input's float type
  Cast: (c) => {
    const from = c.elemType(c.input(0));
    if (!isFloat(from)) return [undefined];
    return [from === c.elemType(dY(c)) ? dY(c) : c.b.cast(dY(c), from)];
  },
  // dX = dY where min <= X <= max (bounds inclusive, as PyTorch's clamp)
  Clip: (c) => {
    const b = c.b;
    const x = c.input(0);
    let pass: string | undefined;
    if (c.input(1)) pass = b.node('GreaterOrEqual', [x, c.input(1)]);
    if (c.input(2)) {
      const le = b.node('LessOrEqual', [x, c.input(2)]);
      pass = pass ? b.node('And', [pass, le]) : le;
    }
    const dx = pass ? b.where(pass, dY(c), b.scalar(0)) : dY(c);
    if (c.needsGrad(1) || c.needsGrad(2)) c.unsupported('gradients with respect to the clip bounds are not supported');
    return [dx, undefined, undefined];
  },
  // dA = dY where cond, dB = dY where not cond
  Where: (c) => {
    const b = c.b;
    const cond = c.input(0);
    const zero = b.scalar(0);
    return [
      undefined,
      c.needsGrad(1) ? c.unbroadcast(b.where(cond, dY(c), zero), c.input(1)) : undefined,
      c.needsGrad(2) ? c.unbroadcast(b.where(cond, zero, dY(c)), c.input(2)) : undefined,
    ];
  },
  // dX = dY summed over the expanded axes
  Expand: (c) => [c.unbroadcast(dY(c), c.input(0)), undefined],
  // Sum of n inputs: each gets dY
  Sum: (c) => c.node.inputs.map((inp, i) => (c.needsGrad(i) ? c.unbroadcast(dY(c), inp) : undefined)),
  // Mean of n inputs: each gets dY / n
  Mean: (c) => {
    const g = c.b.div(dY(c), c.b.scalar(c.node.inputs.length));
    return c.node.inputs.map((inp, i) => (c.needsGrad(i) ? c.unbroadcast(g, inp) : undefined));
  },
  // Max/Min of two: the gradient goes to the input that equals the output (split evenly on ties)
  Max: (c) => minMaxGrad(c),
  Min: (c) => minMaxGrad(c),
};

function minMaxGrad(c: RuleContext): (string | undefined)[] {
  const b = c.b;
  if (c.node.inputs.length === 1) return [dY(c)];
  if (c.node.inputs.length !== 2) c.unsupported('only one or two inputs are supported');
  const y = c.output(0);
  const ft = c.elemType(y);
  const m0 = b.cast(b.node('Equal', [c.input(0), y]), ft);
  const m1 = b.cast(b.node('Equal', [c.input(1), y]), ft);
  const share = b.div(dY(c), b.add(m0, m1));
  return [c.needsGrad(0) ? c.unbroadcast(b.mul(share, m0), c.input(0)) : undefined, c.needsGrad(1) ? c.unbroadcast(b.mul(share, m1), c.input(1)) : undefined];
}

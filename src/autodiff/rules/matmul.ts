import { floatAttr } from '../../onnx/builder.js';
import type { RuleContext, RuleTable } from '../context.js';

/** Swaps the last two axes of a rank-r value. */
function swapLast(c: RuleContext, x: string, rank: number): string {
  const perm = Array.from({ length: rank }, (_, i) => i);
  [perm[rank - 2], perm[rank - 1]] = [perm[rank - 1]!, perm[rank - 2]!];
  return c.b.transpose(x, perm);
}

export const matmulRules: RuleTable = {
  // dA = dY·Bᵀ, dB = Aᵀ·dY (batched, broadcast axes summed; 1-D operands promoted as numpy.matmul does)
  MatMul: (c) => {
    const b = c.b;
    let a = c.input(0);
    let bb = c.input(1);
    let g = c.gradOutput(0)!;
    const ra = c.dims(a).length;
    const rb = c.dims(bb).length;
    if (ra === 1 && rb === 1) {
      // a dot product: the scalar gradient becomes [1, 1]
      a = b.node('Unsqueeze', [a, b.int64([0])]);
      bb = b.node('Unsqueeze', [bb, b.int64([1])]);
      g = b.node('Unsqueeze', [g, b.int64([0, 1])]);
    } else {
      if (ra === 1) {
        a = b.node('Unsqueeze', [a, b.int64([0])]);
        g = b.node('Unsqueeze', [g, b.int64([-2])]);
      }
      if (rb === 1) {
        bb = b.node('Unsqueeze', [bb, b.int64([1])]);
        g = b.node('Unsqueeze', [g, b.int64([-1])]);
      }
    }
    const rA = Math.max(ra, 2);
    const rB = Math.max(rb, 2);
    const rG = Math.max(rA, rB);
    // Batch dims of the product: the broadcast of both operands' leading dims.
    const da = c.dims(c.input(0));
    const db = c.dims(c.input(1));
    const outBatch = c.dims(c.output(0)).slice(0, rG - 2);
    let dA: string | undefined;
    let dB: string | undefined;
    if (c.needsGrad(0)) {
      dA = b.node('MatMul', [g, swapLast(c, bb, rB)]);
      dA = ra === 1 ? b.reshape(b.reduceSum(dA, rangeTo(rG - 1), false), b.shape(c.input(0))) : c.unbroadcast(dA, c.input(0), [...outBatch, ...da.slice(-2)]);
    }
    if (c.needsGrad(1)) {
      dB = b.node('MatMul', [swapLast(c, a, rA), g]);
      dB = rb === 1 ? b.reshape(b.reduceSum(dB, [...rangeTo(rG - 2), rG - 1], false), b.shape(c.input(1))) : c.unbroadcast(dB, c.input(1), [...outBatch, ...db.slice(-2)]);
    }
    return [dA, dB];
  },
  // Y = alpha·A'·B' + beta·C with A' = transA ? Aᵀ : A; each gradient is one more Gemm.
  Gemm: (c) => {
    const b = c.b;
    const [A, B, C] = [c.input(0), c.input(1), c.input(2)];
    const dY = c.gradOutput(0)!;
    const alpha = c.attrNum('alpha', 1);
    const beta = c.attrNum('beta', 1);
    const tA = c.attrNum('transA', 0);
    const tB = c.attrNum('transB', 0);
    const al = floatAttr(alpha);
    let dA: string | undefined;
    let dB: string | undefined;
    let dC: string | undefined;
    if (c.needsGrad(0)) {
      // dA' = alpha·dY·B'ᵀ; with transA, dA = (dA')ᵀ = alpha·B'·dYᵀ
      dA = tA ? b.node('Gemm', [B, dY], { alpha: al, transA: tB, transB: 1 }) : b.node('Gemm', [dY, B], { alpha: al, transB: tB ? 0 : 1 });
    }
    if (c.needsGrad(1) && c.perExample(1)) {
      // Per example n: dB_n = alpha·a_nᵀ·dy_n (an outer product), as one batched MatMul [N,K,1]·[N,1,M].
      if (tA) c.unsupported('per-example gradients with transA=1 (the batch is not the leading axis of A)');
      const a3 = b.node('Unsqueeze', [A, b.int64([tB ? 1 : 2])]);
      const g3 = b.node('Unsqueeze', [dY, b.int64([tB ? 2 : 1])]);
      const outer = tB ? b.node('MatMul', [g3, a3]) : b.node('MatMul', [a3, g3]);
      dB = alpha === 1 ? outer : b.mul(outer, b.scalar(alpha));
    } else if (c.needsGrad(1)) {
      // dB' = alpha·A'ᵀ·dY; with transB, dB = alpha·dYᵀ·A'
      dB = tB ? b.node('Gemm', [dY, A], { alpha: al, transA: 1, transB: tA }) : b.node('Gemm', [A, dY], { alpha: al, transA: tA ? 0 : 1 });
    }
    if (C && c.needsGrad(2)) {
      const scaled = beta === 1 ? dY : b.mul(dY, b.scalar(beta));
      dC = c.perExample(2) ? b.reshape(scaled, b.int64([0, ...c.dims(C)])) : c.unbroadcast(scaled, C);
    }
    return [dA, dB, dC];
  },
};

function rangeTo(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

/**
 * Interval bound propagation (Gowal et al. 2019, https://arxiv.org/abs/1810.12715): sound per-example L∞
 * verification of ReLU networks. Intervals run through the graph in centre-radius form (affine layers map the centre
 * by W and the radius by |W|; monotone layers map the ends); the final linear layer is folded into the margins
 * z_y − z_j (elision, Gowal et al. §3), so each margin's lower bound is (w_y − w_j)·c − |w_y − w_j|·r + b_y − b_j.
 * An example is verified when every margin's lower bound is > 0: no input in the eps-box changes its class.
 */
import { BulwarkError } from '../../core/errors.js';
import { sizeOf, type Float32Tensor } from '../../core/tensor.js';
import { attrInts, attrNum, attrStr, realInputs, topoSort, type Graph, type Node } from '../../onnx/ir.js';
import type { Network } from '../../nn/network.js';

const GOWAL = 'Gowal et al. 2019, https://arxiv.org/abs/1810.12715';

/** An interval tensor of one example: lo ≤ x ≤ hi elementwise, per-example dims (no batch axis). */
interface Box {
  lo: Float64Array;
  hi: Float64Array;
  dims: number[];
}

/** Ops {@link ibpVerify} propagates. */
export const IBP_OPS = ['Gemm', 'MatMul', 'Conv', 'Relu', 'MaxPool', 'AveragePool', 'GlobalAveragePool', 'Flatten', 'Reshape', 'Identity', 'Dropout', 'BatchNormalization', 'Add', 'Sub', 'Mul'] as const;

/** Result of {@link ibpVerify}. */
export interface IbpResult {
  /** Per example: every margin's lower bound is > 0 (robust to any L∞ perturbation ≤ eps within the bounds). */
  verified: Uint8Array;
  /** Per example: min over j ≠ y of the lower bound of z_y − z_j. */
  marginLower: Float64Array;
  /** Fraction verified (clean mistakes are never verified: their margin bound is ≤ 0 at eps 0 already). */
  verifiedAccuracy: number;
  eps: number;
  /** Whether the final linear layer was folded into the margins. */
  elided: boolean;
  paper: string;
}

function unsupported(n: Node, why: string): never {
  throw new BulwarkError('BULWARK_E_UNSUPPORTED_OP', `interval bound propagation does not support ${n.opType} (node ${n.name || n.outputs[0]}): ${why}`, {
    hint: `IBP handles ReLU networks built from ${IBP_OPS.join(', ')} with constant weights; verify another model or use randomized smoothing (bulwark certify).`,
  });
}

/** Conv of one example, generic groups/strides/pads/dilations: out[m] = Σ W·x (+ b). */
function conv(x: Float64Array, dims: number[], w: Float64Array, wd: number[], b: Float64Array | undefined, n: Node, absW = false): { out: Float64Array; dims: number[] } {
  const [c, h, wi] = dims as [number, number, number];
  const [m, cg, kh, kw] = wd as [number, number, number, number];
  const group = attrNum(n, 'group', 1);
  const [sh, sw] = (attrInts(n, 'strides', [1, 1]) ?? [1, 1]) as [number, number];
  const [dh, dw] = (attrInts(n, 'dilations', [1, 1]) ?? [1, 1]) as [number, number];
  const [pt, pl, pb, pr] = (attrInts(n, 'pads', [0, 0, 0, 0]) ?? [0, 0, 0, 0]) as [number, number, number, number];
  if (attrStr(n, 'auto_pad', 'NOTSET') !== 'NOTSET') unsupported(n, 'auto_pad (re-export with explicit pads)');
  if (cg * group !== c) unsupported(n, `weight has ${cg} input channels per group for ${c} channels in ${group} groups`);
  const oh = Math.floor((h + pt + pb - dh * (kh - 1) - 1) / sh) + 1;
  const ow = Math.floor((wi + pl + pr - dw * (kw - 1) - 1) / sw) + 1;
  const out = new Float64Array(m * oh * ow);
  const mPerG = m / group;
  for (let o = 0; o < m; o++) {
    const g = Math.floor(o / mPerG);
    const bias = b && !absW ? b[o]! : 0;
    for (let y = 0; y < oh; y++) {
      for (let xx = 0; xx < ow; xx++) {
        let s = bias;
        for (let ci = 0; ci < cg; ci++) {
          const ch = g * cg + ci;
          for (let ky = 0; ky < kh; ky++) {
            const iy = y * sh - pt + ky * dh;
            if (iy < 0 || iy >= h) continue;
            for (let kx = 0; kx < kw; kx++) {
              const ix = xx * sw - pl + kx * dw;
              if (ix < 0 || ix >= wi) continue;
              const wv = w[((o * cg + ci) * kh + ky) * kw + kx]!;
              s += (absW ? Math.abs(wv) : wv) * x[(ch * h + iy) * wi + ix]!;
            }
          }
        }
        out[(o * oh + y) * ow + xx] = s;
      }
    }
  }
  return { out, dims: [m, oh, ow] };
}

/** Max or average pooling of one example's values (monotone, so it maps interval ends to interval ends). */
function pool(x: Float64Array, dims: number[], n: Node, kind: 'max' | 'avg'): { out: Float64Array; dims: number[] } {
  const [c, h, w] = dims as [number, number, number];
  const [kh, kw] = attrInts(n, 'kernel_shape', undefined) as [number, number];
  const [sh, sw] = (attrInts(n, 'strides', [1, 1]) ?? [1, 1]) as [number, number];
  const [pt, pl, pb, pr] = (attrInts(n, 'pads', [0, 0, 0, 0]) ?? [0, 0, 0, 0]) as [number, number, number, number];
  if (attrNum(n, 'ceil_mode', 0) !== 0) unsupported(n, 'ceil_mode = 1');
  if (attrStr(n, 'auto_pad', 'NOTSET') !== 'NOTSET') unsupported(n, 'auto_pad (re-export with explicit pads)');
  if ((attrInts(n, 'dilations', [1, 1]) ?? [1, 1]).some((d) => d !== 1)) unsupported(n, 'dilated pooling');
  const includePad = attrNum(n, 'count_include_pad', 0) === 1;
  const oh = Math.floor((h + pt + pb - kh) / sh) + 1;
  const ow = Math.floor((w + pl + pr - kw) / sw) + 1;
  const out = new Float64Array(c * oh * ow);
  for (let ch = 0; ch < c; ch++) {
    for (let y = 0; y < oh; y++) {
      for (let xx = 0; xx < ow; xx++) {
        let acc = kind === 'max' ? -Infinity : 0;
        let cnt = 0;
        for (let ky = 0; ky < kh; ky++) {
          const iy = y * sh - pt + ky;
          for (let kx = 0; kx < kw; kx++) {
            const ix = xx * sw - pl + kx;
            const inside = iy >= 0 && iy < h && ix >= 0 && ix < w;
            if (!inside) {
              if (includePad) cnt++;
              continue;
            }
            const v = x[(ch * h + iy) * w + ix]!;
            if (kind === 'max') acc = Math.max(acc, v);
            else acc += v;
            cnt++;
          }
        }
        out[(ch * oh + y) * ow + xx] = kind === 'max' ? acc : acc / cnt;
      }
    }
  }
  return { out, dims: [c, oh, ow] };
}

/** Affine map y = W·x + b of an interval, W [K, F] row-major: centre by W, radius by |W|. */
function affine(box: Box, w: Float64Array, k: number, b: Float64Array | undefined): Box {
  const f = box.lo.length;
  const lo = new Float64Array(k);
  const hi = new Float64Array(k);
  for (let i = 0; i < k; i++) {
    let c = b ? b[i]! : 0;
    let r = 0;
    for (let j = 0; j < f; j++) {
      const wv = w[i * f + j]!;
      c += wv * 0.5 * (box.lo[j]! + box.hi[j]!);
      r += Math.abs(wv) * 0.5 * (box.hi[j]! - box.lo[j]!);
    }
    lo[i] = c - r;
    hi[i] = c + r;
  }
  return { lo, hi, dims: [k] };
}

/** A Gemm/MatMul with a constant weight as W [K, F] and bias [K]. */
function linearOf(n: Node, consts: Map<string, { data: Float64Array; dims: number[] }>): { w: Float64Array; b: Float64Array | undefined; k: number } {
  const B = consts.get(n.inputs[1]!);
  if (!B) unsupported(n, 'the weight is not a constant');
  let w: Float64Array;
  let k: number;
  const [r, c] = B.dims as [number, number];
  const transB = n.opType === 'Gemm' ? attrNum(n, 'transB', 0) : 0;
  if (n.opType === 'Gemm' && attrNum(n, 'transA', 0) !== 0) unsupported(n, 'transA = 1');
  const alpha = n.opType === 'Gemm' ? attrNum(n, 'alpha', 1) : 1;
  const beta = n.opType === 'Gemm' ? attrNum(n, 'beta', 1) : 1;
  if (transB) {
    k = r;
    w = B.data.map((v) => v * alpha);
  } else {
    k = c;
    w = new Float64Array(r * c);
    for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) w[j * r + i] = alpha * B.data[i * c + j]!;
  }
  let b: Float64Array | undefined;
  if (n.opType === 'Gemm' && n.inputs[2]) {
    const C = consts.get(n.inputs[2]);
    if (!C) unsupported(n, 'the bias is not a constant');
    b = new Float64Array(k);
    for (let i = 0; i < k; i++) b[i] = beta * C.data[C.data.length === 1 ? 0 : i]!;
  }
  return { w, b, k };
}

/** A constant broadcast over one example's dims (batch axis dropped). */
function broadcastConst(cst: { data: Float64Array; dims: number[] }, dims: number[], n: Node): (i: number) => number {
  const size = sizeOf(dims);
  if (cst.data.length === 1) return () => cst.data[0]!;
  let cd = cst.dims.slice();
  if (cd.length === dims.length + 1) {
    if (cd[0] !== 1) unsupported(n, 'a constant with a batch axis other than 1');
    cd = cd.slice(1);
  }
  while (cd.length < dims.length) cd.unshift(1);
  if (cd.length !== dims.length || cd.some((d, i) => d !== 1 && d !== dims[i])) unsupported(n, `constant of shape [${cst.dims}] does not broadcast to [${dims}]`);
  const strides = dims.map((_, i) => (cd[i] === 1 ? 0 : sizeOf(cd.slice(i + 1))));
  const idx = new Int32Array(size);
  for (let i = 0; i < size; i++) {
    let rem = i;
    let off = 0;
    for (let a = dims.length - 1; a >= 0; a--) {
      const coord = rem % dims[a]!;
      rem = Math.floor(rem / dims[a]!);
      off += coord * strides[a]!;
    }
    idx[i] = off;
  }
  return (i) => cst.data[idx[i]!]!;
}

function graphOf(model: Graph | Network): Graph {
  return 'nodes' in model ? model : model.inferenceGraph();
}

/**
 * Verifies per-example L∞ robustness by interval bound propagation.
 * @param model an ONNX graph (a loaded model's graph) or a Bulwark Network; a ReLU network of {@link IBP_OPS}
 * @param x inputs [N, ...]
 * @param y labels
 * @param eps L∞ radius (≥ 0)
 * @param bounds valid input range (the box is intersected with it); default [0, 1]
 * @returns verified flags, the lower bound of the worst margin per example, verified accuracy
 * @throws BulwarkError BULWARK_E_UNSUPPORTED_OP naming the op and node; BULWARK_E_ARG for eps < 0
 * @example const r = ibpVerify(net, x, y, 0.1); r.verifiedAccuracy
 */
export function ibpVerify(model: Graph | Network, x: Float32Tensor, y: ArrayLike<number>, eps: number, bounds: [number, number] = [0, 1]): IbpResult {
  if (!(eps >= 0 && Number.isFinite(eps))) throw new BulwarkError('BULWARK_E_ARG', `eps must be a finite number >= 0, got ${eps}`);
  const g = graphOf(model);
  const input = realInputs(g)[0]!.name;
  const consts = new Map<string, { data: Float64Array; dims: number[] }>();
  for (const [name, t] of g.initializers) {
    if (typeof (t.data as ArrayLike<number | bigint>)[0] === 'bigint') consts.set(name, { data: Float64Array.from(t.data as BigInt64Array, Number), dims: [...t.dims] });
    else consts.set(name, { data: Float64Array.from(t.data as ArrayLike<number>), dims: [...t.dims] });
  }
  const nodes = topoSort(g);
  for (const n of nodes) if (n.opType === 'Constant') {
    const v = n.attrs.get('value')?.value as { data: ArrayLike<number | bigint>; dims: number[] } | undefined;
    if (!v) unsupported(n, 'only tensor-valued Constant nodes');
    consts.set(n.outputs[0]!, { data: Float64Array.from(v.data as ArrayLike<number>, Number), dims: [...v.dims] });
  }
  // Elision: the node that yields the logits, seen through Identity.
  let outName = g.outputs[0]!.name;
  const producer = new Map<string, Node>();
  for (const n of nodes) for (const o of n.outputs) producer.set(o, n);
  while (producer.get(outName)?.opType === 'Identity') outName = producer.get(outName)!.inputs[0]!;
  const last = producer.get(outName);
  const elide = !!last && (last.opType === 'Gemm' || last.opType === 'MatMul') && consts.has(last.inputs[1]!);
  const stopAt = elide ? last.inputs[0]! : outName;

  const n = x.shape[0]!;
  const d = sizeOf(x.shape.slice(1));
  const verified = new Uint8Array(n);
  const marginLower = new Float64Array(n);
  const work = nodes.filter((nd) => nd.opType !== 'Constant');
  for (let e = 0; e < n; e++) {
    const vals = new Map<string, Box>();
    const lo = new Float64Array(d);
    const hi = new Float64Array(d);
    for (let j = 0; j < d; j++) {
      const v = x.data[e * d + j]!;
      lo[j] = Math.max(bounds[0], v - eps);
      hi[j] = Math.min(bounds[1], v + eps);
    }
    vals.set(input, { lo, hi, dims: x.shape.slice(1) });
    for (const nd of work) {
      if (vals.has(stopAt)) break;
      if (!nd.inputs.some((i) => vals.has(i))) continue;
      vals.set(nd.outputs[0]!, step(nd, vals, consts));
    }
    const h = vals.get(stopAt);
    if (!h) throw new BulwarkError('BULWARK_E_MODEL', `interval propagation never reached ${stopAt} from the input ${input}`);
    const label = y[e]!;
    let worst = Infinity;
    if (elide) {
      const { w, b, k } = linearOf(last, consts);
      const f = h.lo.length;
      for (let j = 0; j < k; j++) {
        if (j === label) continue;
        let c = b ? b[label]! - b[j]! : 0;
        let r = 0;
        for (let t = 0; t < f; t++) {
          const dw = w[label * f + t]! - w[j * f + t]!;
          c += dw * 0.5 * (h.lo[t]! + h.hi[t]!);
          r += Math.abs(dw) * 0.5 * (h.hi[t]! - h.lo[t]!);
        }
        worst = Math.min(worst, c - r);
      }
    } else {
      for (let j = 0; j < h.lo.length; j++) if (j !== label) worst = Math.min(worst, h.lo[label]! - h.hi[j]!);
    }
    marginLower[e] = worst;
    verified[e] = worst > 0 ? 1 : 0;
  }
  let count = 0;
  for (const v of verified) count += v;
  return { verified, marginLower, verifiedAccuracy: n ? count / n : 0, eps, elided: elide, paper: GOWAL };
}

function step(nd: Node, vals: Map<string, Box>, consts: Map<string, { data: Float64Array; dims: number[] }>): Box {
  const a = vals.get(nd.inputs[0]!);
  switch (nd.opType) {
    case 'Identity':
    case 'Dropout':
      return a!;
    case 'Flatten':
      if (attrNum(nd, 'axis', 1) !== 1) unsupported(nd, 'axis other than 1');
      return { lo: a!.lo, hi: a!.hi, dims: [a!.lo.length] };
    case 'Reshape': {
      const s = consts.get(nd.inputs[1]!);
      if (!s || !a) unsupported(nd, 'a shape that is not a constant');
      const per = Array.from(s.data.slice(1), (v, i) => (v === 0 ? a.dims[i]! : v));
      const known = per.filter((v) => v > 0).reduce((p, v) => p * v, 1);
      return { lo: a.lo, hi: a.hi, dims: per.map((v) => (v < 0 ? a.lo.length / known : v)) };
    }
    case 'Relu': {
      if (!a) unsupported(nd, 'input is not reached from the model input');
      return { lo: a.lo.map((v) => Math.max(0, v)), hi: a.hi.map((v) => Math.max(0, v)), dims: a.dims };
    }
    case 'MaxPool':
    case 'AveragePool': {
      if (!a || a.dims.length !== 3) unsupported(nd, 'only 2-D pooling of [C,H,W] inputs');
      if (nd.outputs.length > 1 && nd.outputs[1]) unsupported(nd, 'the indices output');
      const kind = nd.opType === 'MaxPool' ? 'max' : 'avg';
      const l = pool(a.lo, a.dims, nd, kind);
      return { lo: l.out, hi: pool(a.hi, a.dims, nd, kind).out, dims: l.dims };
    }
    case 'GlobalAveragePool': {
      if (!a || a.dims.length < 2) unsupported(nd, 'input rank');
      const c = a.dims[0]!;
      const sp = a.lo.length / c;
      const lo = new Float64Array(c);
      const hi = new Float64Array(c);
      for (let i = 0; i < c; i++) {
        for (let j = 0; j < sp; j++) {
          lo[i]! += a.lo[i * sp + j]!;
          hi[i]! += a.hi[i * sp + j]!;
        }
        lo[i]! /= sp;
        hi[i]! /= sp;
      }
      return { lo, hi, dims: [c, ...a.dims.slice(1).map(() => 1)] };
    }
    case 'Gemm':
    case 'MatMul': {
      if (!a || a.dims.length !== 1) unsupported(nd, 'the data input must be [N, F]');
      const { w, b, k } = linearOf(nd, consts);
      return affine(a, w, k, b);
    }
    case 'Conv': {
      const W = consts.get(nd.inputs[1]!);
      if (!a || !W) unsupported(nd, 'the weight is not a constant');
      if (a.dims.length !== 3) unsupported(nd, 'only 2-D convolutions');
      const B = nd.inputs[2] ? consts.get(nd.inputs[2]) : undefined;
      const c = new Float64Array(a.lo.length);
      const r = new Float64Array(a.lo.length);
      for (let j = 0; j < c.length; j++) {
        c[j] = 0.5 * (a.lo[j]! + a.hi[j]!);
        r[j] = 0.5 * (a.hi[j]! - a.lo[j]!);
      }
      const oc = conv(c, a.dims, W.data, W.dims, B?.data, nd);
      const or = conv(r, a.dims, W.data, W.dims, undefined, nd, true);
      return { lo: oc.out.map((v, i) => v - or.out[i]!), hi: oc.out.map((v, i) => v + or.out[i]!), dims: oc.dims };
    }
    case 'BatchNormalization': {
      if (!a) unsupported(nd, 'input is not reached from the model input');
      const [gm, bt, mn, vr] = nd.inputs.slice(1).map((i) => consts.get(i));
      if (!gm || !bt || !mn || !vr) unsupported(nd, 'parameters that are not constants');
      if (nd.outputs.length > 1 && nd.outputs.slice(1).some(Boolean)) unsupported(nd, 'training mode');
      const epsBn = attrNum(nd, 'epsilon', 1e-5);
      const c = a.dims[0]!;
      const sp = a.lo.length / c;
      const lo = new Float64Array(a.lo.length);
      const hi = new Float64Array(a.lo.length);
      for (let ch = 0; ch < c; ch++) {
        const s = gm.data[ch]! / Math.sqrt(vr.data[ch]! + epsBn);
        const t = bt.data[ch]! - s * mn.data[ch]!;
        for (let j = ch * sp; j < (ch + 1) * sp; j++) {
          const u = s * a.lo[j]! + t;
          const v = s * a.hi[j]! + t;
          lo[j] = Math.min(u, v);
          hi[j] = Math.max(u, v);
        }
      }
      return { lo, hi, dims: a.dims };
    }
    case 'Add':
    case 'Sub':
    case 'Mul': {
      const b = vals.get(nd.inputs[1]!);
      if (a && b) {
        if (nd.opType === 'Mul') unsupported(nd, 'a product of two inputs-dependent values');
        if (a.lo.length !== b.lo.length) unsupported(nd, 'broadcasting between input-dependent values');
        if (nd.opType === 'Add') return { lo: a.lo.map((v, i) => v + b.lo[i]!), hi: a.hi.map((v, i) => v + b.hi[i]!), dims: a.dims };
        return { lo: a.lo.map((v, i) => v - b.hi[i]!), hi: a.hi.map((v, i) => v - b.lo[i]!), dims: a.dims };
      }
      const box = a ?? b!;
      const cst = consts.get(a ? nd.inputs[1]! : nd.inputs[0]!);
      if (!cst) unsupported(nd, 'an operand that is neither the input path nor a constant');
      const cv = broadcastConst(cst, box.dims, nd);
      const lo = new Float64Array(box.lo.length);
      const hi = new Float64Array(box.lo.length);
      for (let i = 0; i < lo.length; i++) {
        const k = cv(i);
        let u: number;
        let v: number;
        if (nd.opType === 'Add') [u, v] = [box.lo[i]! + k, box.hi[i]! + k];
        else if (nd.opType === 'Mul') [u, v] = [box.lo[i]! * k, box.hi[i]! * k];
        else if (a) [u, v] = [box.lo[i]! - k, box.hi[i]! - k];
        else [u, v] = [k - box.hi[i]!, k - box.lo[i]!];
        lo[i] = Math.min(u, v);
        hi[i] = Math.max(u, v);
      }
      return { lo, hi, dims: box.dims };
    }
    default:
      return unsupported(nd, 'no interval rule for this op');
  }
}

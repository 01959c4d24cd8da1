import { ELEM } from '../../onnx/ir.js';
import type { RuleContext, RuleTable } from '../context.js';

/** Static geometry of a convolution or pooling window, auto_pad resolved to explicit pads. */
export interface Window {
  spatial: number[];
  kernel: number[];
  strides: number[];
  dilations: number[];
  padsBegin: number[];
  padsEnd: number[];
}

/** Reads kernel/strides/dilations/pads/auto_pad of a node over the input's static spatial dims. */
export function windowOf(c: RuleContext, x: string, kernel: number[]): Window {
  const xd = c.dims(x);
  const spatial = xd.slice(2);
  if (spatial.some((d) => d < 0)) c.unsupported(`spatial dims of ${x} must be static, got [${xd}]`);
  const n = spatial.length;
  const strides = c.attrInts('strides', undefined) ?? new Array(n).fill(1);
  const dilations = c.attrInts('dilations', undefined) ?? new Array(n).fill(1);
  const autoPad = c.attrStr('auto_pad', 'NOTSET');
  let pads = c.attrInts('pads', undefined) ?? new Array(2 * n).fill(0);
  if (autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') {
    pads = new Array(2 * n).fill(0);
    for (let i = 0; i < n; i++) {
      const out = Math.ceil(spatial[i]! / strides[i]!);
      const total = Math.max((out - 1) * strides[i]! + (kernel[i]! - 1) * dilations[i]! + 1 - spatial[i]!, 0);
      const small = Math.floor(total / 2);
      pads[i] = autoPad === 'SAME_UPPER' ? small : total - small;
      pads[i + n] = total - pads[i]!;
    }
  } else if (autoPad === 'VALID') {
    pads = new Array(2 * n).fill(0);
  }
  return { spatial, kernel, strides, dilations, padsBegin: pads.slice(0, n), padsEnd: pads.slice(n) };
}

/**
 * Crops or zero-pads the trailing end of each spatial axis of `x` (whose spatial lengths are `have`) to `want`.
 * Gradient convolutions may reach past the input's last row (when the stride does not divide evenly) or stop short of it.
 */
export function fitSpatial(c: RuleContext, x: string, have: number[], want: number[]): string {
  const b = c.b;
  const n = want.length;
  let y = x;
  const cropAxes: number[] = [];
  const cropEnds: number[] = [];
  const padEnds = new Array<number>(n).fill(0);
  for (let i = 0; i < n; i++) {
    if (have[i]! > want[i]!) {
      cropAxes.push(i + 2);
      cropEnds.push(want[i]!);
    } else if (have[i]! < want[i]!) {
      padEnds[i] = want[i]! - have[i]!;
    }
  }
  if (cropAxes.length) y = b.node('Slice', [y, b.int64(cropAxes.map(() => 0)), b.int64(cropEnds), b.int64(cropAxes)]);
  if (padEnds.some((p) => p > 0)) y = b.node('Pad', [y, b.int64([0, 0, ...new Array(n).fill(0), 0, 0, ...padEnds])]);
  return y;
}

/**
 * The convolution restricted to its first `extent` outputs per spatial axis (a gradient that is zero past them, see
 * RuleContext.gradOutputExtent): it reads x only up to `reach` = (u-1)·s + (k-1)·d + 1 - padBegin, so its window is x
 * cut to that length (padded at the end where the reach passes x's end). Undefined when it does not apply (no
 * extent, the full output, or a first output that reads only padding).
 */
export function restrictWindow(w: Window, outSpatial: number[], extent: number[] | undefined): Window | undefined {
  if (!extent || extent.length !== outSpatial.length || extent.every((u, i) => u >= outSpatial[i]!)) return undefined;
  const reach = extent.map((u, i) => (u - 1) * w.strides[i]! + (w.kernel[i]! - 1) * w.dilations[i]! + 1 - w.padsBegin[i]!);
  if (extent.some((u) => u < 1) || reach.some((r) => r < 1)) return undefined;
  return { ...w, spatial: reach.map((r, i) => Math.min(w.spatial[i]!, r)), padsEnd: reach.map((r, i) => Math.max(0, r - w.spatial[i]!)) };
}

/** Output length of a convolution along one axis. */
function convOut(len: number, k: number, s: number, d: number, pb: number, pe: number): number {
  return Math.floor((len + pb + pe - (k - 1) * d - 1) / s) + 1;
}

/**
 * Weight gradient of a (grouped) convolution: dW[o, i, k] = Σ_n Σ_p X[n, g·Cig + i, p·s + k·d - pad] · dY[n, o, p].
 * Computed as one Conv with the batch folded into channels: the forward strides act as dilations and vice versa.
 */
export function convWeightGrad(c: RuleContext, x: string, dY: string, cin: number, group: number, w: Window, outSpatial: number[]): string {
  const b = c.b;
  const n = w.kernel.length;
  const cig = cin / group;
  const sp = w.spatial;
  // X [N, C, *sp] -> [Cig, g·N, *sp], channel order (group, n) so that a grouped Conv pairs group g of X with group g of dY.
  const x5 = b.reshape(x, b.int64([0, group, cig, ...sp]));
  const xt = b.transpose(x5, [2, 1, 0, ...Array.from({ length: n }, (_, i) => i + 3)]);
  const xr = b.reshape(xt, b.int64([cig, -1, ...sp]));
  // dY [N, M, *out] -> [M, N, *out]: used as M filters of N channels each (per group).
  const dyt = b.transpose(dY, [1, 0, ...Array.from({ length: n }, (_, i) => i + 2)]);
  const conv = b.node('Conv', [xr, dyt], { strides: w.dilations, dilations: w.strides, pads: [...w.padsBegin, ...w.padsEnd], group });
  const have = w.kernel.map((_, i) => convOut(sp[i]!, outSpatial[i]!, w.dilations[i]!, w.strides[i]!, w.padsBegin[i]!, w.padsEnd[i]!));
  const fitted = fitSpatial(c, conv, have, w.kernel);
  // [Cig, M, *k] -> [M, Cig, *k]
  return b.transpose(fitted, [1, 0, ...Array.from({ length: n }, (_, i) => i + 2)]);
}

/**
 * Weight gradient of an ungrouped convolution by im2col and batched GEMM: a depthwise Conv with an identity kernel
 * bank lays the receptive fields out as channels (cols [N, C·K, P]), then dW = Σ_n dY[n]·cols[n]ᵀ. MLAS runs this
 * far faster than one convolution whose kernel is the whole output map. With keepBatch the per-example gradients
 * [N, ...W shape] are returned (the batch sum is simply not taken).
 */
export function convWeightGradIm2col(c: RuleContext, x: string, dY: string, cin: number, cout: number, w: Window, keepBatch = false): string {
  const b = c.b;
  const kSize = w.kernel.reduce((a, k) => a * k, 1);
  const eye = new Array<number>(cin * kSize * kSize).fill(0);
  for (let ch = 0; ch < cin; ch++) for (let q = 0; q < kSize; q++) eye[(ch * kSize + q) * kSize + q] = 1;
  const bank = b.floats(c.temp('im2col_bank'), eye, [cin * kSize, 1, ...w.kernel]);
  const cols = b.node('Conv', [x, bank], { strides: w.strides, dilations: w.dilations, pads: [...w.padsBegin, ...w.padsEnd], group: cin, kernel_shape: w.kernel });
  const colsR = b.reshape(cols, b.int64([0, cin * kSize, -1]));
  const dyT = b.transpose(b.reshape(dY, b.int64([0, cout, -1])), [0, 2, 1]);
  const perExample = b.node('MatMul', [colsR, dyT]);
  if (keepBatch) return b.reshape(b.transpose(perExample, [0, 2, 1]), b.int64([0, cout, cin, ...w.kernel]));
  const summed = b.reduceSum(perExample, [0], false);
  return b.reshape(b.transpose(summed, [1, 0]), b.int64([cout, cin, ...w.kernel]));
}

/**
 * Weight gradient of an ungrouped convolution, one kernel tap at a time: dW[:, :, k] = dY·X_kᵀ, where dY is laid out as
 * [Cout, N·P] and X_k [Cin, N·P] is the (padded) input seen through tap k (a strided Slice). Each product sums over
 * the whole batch and every output position in one GEMM whose inner dimension is N·P, which MLAS runs near its peak;
 * no per-example products are formed and no batch reduction follows. With few input channels the taps are stacked
 * first ([K·Cin, N·P]) and multiplied once.
 */
export function convWeightGradTaps(c: RuleContext, x: string, dY: string, cin: number, cout: number, w: Window, outSpatial: number[]): string {
  const b = c.b;
  const n = w.kernel.length;
  const spatialAxes = Array.from({ length: n }, (_, i) => i + 2);
  const swap = [1, 0, ...spatialAxes];
  const padded = w.padsBegin.some((p) => p > 0) || w.padsEnd.some((p) => p > 0);
  const xp = padded ? b.node('Pad', [x, b.int64([0, 0, ...w.padsBegin, 0, 0, ...w.padsEnd])]) : x;
  const xt = b.transpose(xp, swap);
  const dyr = b.reshape(b.transpose(dY, swap), b.int64([cout, -1]));
  const kSize = w.kernel.reduce((a, k) => a * k, 1);
  const taps: string[] = [];
  for (let t = 0; t < kSize; t++) {
    const k: number[] = [];
    let rem = t;
    for (let i = n - 1; i >= 0; i--) {
      k[i] = rem % w.kernel[i]!;
      rem = Math.floor(rem / w.kernel[i]!);
    }
    const starts = k.map((ki, i) => ki * w.dilations[i]!);
    const ends = starts.map((s, i) => s + (outSpatial[i]! - 1) * w.strides[i]! + 1);
    const tap = b.node('Slice', [xt, b.int64(starts), b.int64(ends), b.int64(spatialAxes), b.int64(w.strides)]);
    taps.push(b.reshape(tap, b.int64([cin, -1])));
  }
  if (cin < 16) {
    // [K·Cin, N·P] -> dY·colsᵀ [Cout, K·Cin] -> [Cout, Cin, *k]
    const cols = taps.length === 1 ? taps[0]! : b.node('Concat', taps, { axis: 0 });
    const g = b.node('MatMul', [dyr, b.transpose(cols, [1, 0])]);
    return b.reshape(b.transpose(b.reshape(g, b.int64([cout, kSize, cin])), [0, 2, 1]), b.int64([cout, cin, ...w.kernel]));
  }
  const per = taps.map((tap) => b.node('Unsqueeze', [b.node('MatMul', [dyr, b.transpose(tap, [1, 0])]), b.int64([2])]));
  const stacked = per.length === 1 ? per[0]! : b.node('Concat', per, { axis: 2 });
  return b.reshape(stacked, b.int64([cout, cin, ...w.kernel]));
}

/** W [g·Cog, Cig, *k] -> [g·Cig, Cog, *k] with every spatial axis reversed: the kernel of the transposed convolution. */
function flippedKernel(c: RuleContext, wt: string, wd: number[], group: number): string {
  const b = c.b;
  const n = wd.length - 2;
  const [m, cig] = [wd[0]!, wd[1]!];
  const k = wd.slice(2);
  const w5 = b.reshape(wt, b.int64([group, m / group, cig, ...k]));
  const t = b.transpose(w5, [0, 2, 1, ...Array.from({ length: n }, (_, i) => i + 3)]);
  const swapped = b.reshape(t, b.int64([group * cig, m / group, ...k]));
  const axes = Array.from({ length: n }, (_, i) => i + 2);
  return b.node('Slice', [swapped, b.int64(axes.map(() => -1)), b.int64(axes.map(() => -(2 ** 62))), b.int64(axes), b.int64(axes.map(() => -1))]);
}

/** Input channels below which a Conv's weight gradient takes the im2col form whatever the session's threads. */
export const FEW_CHANNELS = 8;

let blockedConvWidth = 0;

/**
 * Tells the Conv rule that the runtime moves convolutions with computed kernels onto blocked (NCHWc) kernels of this
 * channel width (runtime/nchwc.ts); 0 when it does not. Then the input gradient of a kernel fed as a graph input is a
 * Conv with the flipped kernel as well, which those kernels run faster than ConvTranspose.
 */
export function setBlockedConvWidth(n: number): void {
  blockedConvWidth = n;
}

export const convRules: RuleTable = {
  // dX = ConvTranspose(dY, W) cut to X's extent; dW = conv of X with dY; dB = Σ dY over batch and space
  Conv: (c) => {
    const b = c.b;
    const [x, wt, bias] = [c.input(0), c.input(1), c.input(2)];
    let dY = c.gradOutput(0)!;
    const wd = c.dims(wt);
    const kernel = c.attrInts('kernel_shape', undefined) ?? wd.slice(2);
    const whole = windowOf(c, x, kernel);
    const group = c.attrNum('group', 1);
    const n = kernel.length;
    // A gradient that stops short of the output's end (a pool drops the last rows): the rule runs on the convolution
    // restricted to the outputs it covers, which reads only the first rows of x; dX is zero-padded back to x's extent.
    const ext = c.gradOutputExtent;
    const outWhole = c.dims(c.output(0)).slice(2);
    const restricted = restrictWindow(whole, outWhole, ext);
    const w = restricted ?? whole;
    const outSpatial = restricted ? ext! : outWhole;
    if (ext && !restricted) dY = fitSpatial(c, dY, ext, outSpatial);
    const cut = restricted && restricted.spatial.some((d, i) => d < whole.spatial[i]!);
    // x as the restricted convolution reads it (for the weight-gradient forms that take x's extent as the window's)
    const xw = () => (cut ? b.node('Slice', [x, b.int64(w.spatial.map(() => 0)), b.int64(w.spatial), b.int64(Array.from({ length: n }, (_, i) => i + 2))]) : x);
    let dx: string | undefined;
    if (c.needsGrad(0)) {
      const fullPad = kernel.map((k, i) => (k - 1) * w.dilations[i]!);
      // A constant kernel (an attacked model) with unit stride and enough channels: dX is a plain Conv of dY with the
      // flipped, channel-swapped kernel, constant-folded at session start, which onnxruntime runs on its blocked (NCHWc)
      // convolution path. A kernel fed as a graph input (training) gets no such path: there ConvTranspose, one GEMM and
      // a col2im per example, is faster than a Conv that flips the kernel at every run.
      const constKernel = c.constValue(wt) !== undefined;
      const bw = blockedConvWidth;
      const blocked = !constKernel && bw > 0 && group === 1 && n === 2 && wd[0]! % bw === 0 && wd[1]! % bw === 0 && c.elemType(wt) === ELEM.FLOAT;
      if ((constKernel ? c.dims(x)[1]! / group >= 8 : blocked) && w.strides.every((s) => s === 1) && w.padsBegin.every((p, i) => p <= fullPad[i]!) && w.padsEnd.every((p, i) => p <= fullPad[i]!)) {
        const pads = [...w.padsBegin.map((p, i) => fullPad[i]! - p), ...w.padsEnd.map((p, i) => fullPad[i]! - p)];
        const flipped = flippedKernel(c, wt, wd, group);
        // Declared shape: the runtime pass that moves computed kernels onto blocked convolutions reads it.
        if (!constKernel) b.graph.valueInfo.set(flipped, { name: flipped, elemType: ELEM.FLOAT, shape: [wd[1]! * group, wd[0]! / group, ...wd.slice(2)] });
        dx = b.node('Conv', [dY, flipped], { dilations: w.dilations, group, pads, kernel_shape: kernel });
      } else {
        // End pads crop what lies past the input's extent (no Slice follows); a result that falls short is zero-padded.
        const full = outSpatial.map((o, i) => (o - 1) * w.strides[i]! + (kernel[i]! - 1) * w.dilations[i]! + 1 - w.padsBegin[i]!);
        const crop = full.map((h, i) => Math.max(0, h - w.spatial[i]!));
        const ct = b.node('ConvTranspose', [dY, wt], { strides: w.strides, dilations: w.dilations, group, pads: [...w.padsBegin, ...crop], kernel_shape: kernel });
        dx = fitSpatial(c, ct, full.map((h, i) => h - crop[i]!), w.spatial);
      }
      if (cut) dx = fitSpatial(c, dx, w.spatial, whole.spatial);
    }
    const cin = c.dims(x)[1]!;
    const kSize = kernel.reduce((a, k) => a * k, 1);
    let dw: string | undefined;
    if (c.needsGrad(1)) {
      const im2col = group === 1 && cin * kSize * kSize <= 1 << 20;
      if (c.perExample(1) && !im2col) c.unsupported('per-example gradients of grouped (or very wide) convolutions');
      // (the taps slice x themselves and need no cut)
      if (c.perExample(1)) dw = convWeightGradIm2col(c, xw(), dY, cin, wd[0]!, w, true);
      // Few input channels (a first layer) take im2col on one thread too: its identity bank runs as one blocked Conv,
      // where the taps would be as many strided copies of the input and a transpose of dY per convolution (cnn-small
      // training step, batch 128, 1 thread, interleaved: 53.0 -> 51.4 and 55.0 -> 52.2 ms, medians of 20).
      else if (group === 1 && kSize <= 64 && c.convWeightGradient === 'taps' && cin >= FEW_CHANNELS) dw = convWeightGradTaps(c, x, dY, cin, wd[0]!, w, outSpatial);
      else dw = im2col ? convWeightGradIm2col(c, xw(), dY, cin, wd[0]!, w) : convWeightGrad(c, xw(), dY, cin, group, w, outSpatial);
    }
    const spatialAxes = Array.from({ length: n }, (_, i) => i + 2);
    const db = bias && c.needsGrad(2) ? b.reduceSum(dY, c.perExample(2) ? spatialAxes : [0, ...spatialAxes], false) : undefined;
    return [dx, dw, db];
  },
  // Y = ConvTranspose(X, W): dX = Conv(dY, W) with the same geometry; dW = conv of dY with X; dB = Σ dY
  ConvTranspose: (c) => {
    const b = c.b;
    const [x, wt, bias] = [c.input(0), c.input(1), c.input(2)];
    const dY = c.gradOutput(0)!;
    const wd = c.dims(wt);
    const kernel = c.attrInts('kernel_shape', undefined) ?? wd.slice(2);
    const group = c.attrNum('group', 1);
    const xs = c.dims(x).slice(2);
    const ys = c.dims(c.output(0)).slice(2);
    if (xs.some((d) => d < 0) || ys.some((d) => d < 0)) c.unsupported('spatial dims must be static');
    const n = kernel.length;
    const strides = c.attrInts('strides', undefined) ?? new Array(n).fill(1);
    const dilations = c.attrInts('dilations', undefined) ?? new Array(n).fill(1);
    const outPad = c.attrInts('output_padding', undefined) ?? new Array(n).fill(0);
    // Recover the begin padding from the actual output size (covers pads, auto_pad and output_shape alike).
    let padsBegin = (c.attrInts('pads', undefined) ?? new Array(2 * n).fill(0)).slice(0, n);
    const autoPad = c.attrStr('auto_pad', 'NOTSET');
    if (c.attrInts('output_shape', undefined) || autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') {
      padsBegin = xs.map((len, i) => {
        // clamped at 0 as onnxruntime does: a larger output_shape than the natural one adds rows of bias only
        const total = Math.max(0, strides[i]! * (len - 1) + outPad[i]! + (kernel[i]! - 1) * dilations[i]! + 1 - ys[i]!);
        return autoPad === 'SAME_UPPER' ? Math.floor(total / 2) : total - Math.floor(total / 2);
      });
    }
    // The forward map: Y[o] += X[i]·W[k] where o = i·s + k·d - padBegin. Padding dY by padBegin turns it into a Conv.
    const padsEnd = xs.map((len, i) => Math.max(0, (len - 1) * strides[i]! + (kernel[i]! - 1) * dilations[i]! + 1 - (ys[i]! + padsBegin[i]!)));
    const win = { spatial: ys, kernel, strides, dilations, padsBegin, padsEnd };
    let dx: string | undefined;
    if (c.needsGrad(0)) {
      const conv = b.node('Conv', [dY, wt], { strides, dilations, group, pads: [...padsBegin, ...padsEnd], kernel_shape: kernel });
      const have = ys.map((len, i) => convOut(len, kernel[i]!, strides[i]!, dilations[i]!, padsBegin[i]!, padsEnd[i]!));
      dx = fitSpatial(c, conv, have, xs);
    }
    // dW[c, m, k] = Σ_n Σ_i X[n, c, i]·dYpad[n, m, i·s + k·d]: the Conv weight gradient with dY as input and X as output gradient.
    const dw = c.needsGrad(1) ? convWeightGrad(c, dY, x, c.dims(c.output(0))[1]!, group, win, xs) : undefined;
    const db = bias && c.needsGrad(2) ? b.reduceSum(dY, [0, ...Array.from({ length: n }, (_, i) => i + 2)], false) : undefined;
    return [dx, dw, db];
  },
};

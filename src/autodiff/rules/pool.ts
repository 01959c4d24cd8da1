import { ELEM } from '../../onnx/ir.js';
import type { RuleTable } from '../context.js';
import { fitSpatial, windowOf } from './conv.js';

const spatialAxes = (rank: number) => Array.from({ length: rank - 2 }, (_, i) => i + 2);

/**
 * Divisors of AveragePool per output cell, as onnxruntime computes them: windows clipped to the input (or, with
 * count_include_pad, to the padded input), so ceil_mode windows hanging past the edge count only what they cover.
 */
export function averagePoolDivisors(spatial: number[], out: number[], kernel: number[], strides: number[], dilations: number[], padsBegin: number[], padsEnd: number[], countIncludePad: boolean): Float64Array {
  const perAxis = spatial.map((len, a) => {
    const counts = new Float64Array(out[a]!);
    for (let o = 0; o < out[a]!; o++) {
      const start = o * strides[a]! - padsBegin[a]!;
      let cnt = 0;
      for (let k = 0; k < kernel[a]!; k++) {
        const p = start + k * dilations[a]!;
        if (countIncludePad ? p < len + padsEnd[a]! : p >= 0 && p < len) cnt++;
      }
      counts[o] = cnt;
    }
    return counts;
  });
  const total = out.reduce((a, b) => a * b, 1);
  const res = new Float64Array(total);
  for (let i = 0; i < total; i++) {
    let rem = i;
    let v = 1;
    for (let a = out.length - 1; a >= 0; a--) {
      v *= perAxis[a]![rem % out[a]!]!;
      rem = Math.floor(rem / out[a]!);
    }
    res[i] = v;
  }
  return res;
}

export const poolRules: RuleTable = {
  // dX = scatter-add of dY at the argmax indices that MaxPool reports (overlapping windows add up)
  MaxPool: (c) => {
    const b = c.b;
    const x = c.input(0);
    if (c.attrNum('storage_order', 0) !== 0) c.unsupported('storage_order=1 (column-major indices) is not supported');
    const idx = c.ensureOutput(1);
    const kernel = c.attrInts('kernel_shape', undefined)!;
    const strides = c.attrInts('strides', undefined) ?? kernel.map(() => 1);
    const dilations = c.attrInts('dilations', undefined) ?? kernel.map(() => 1);
    const pads = c.attrInts('pads', undefined) ?? [];
    const autoPad = c.attrStr('auto_pad', 'NOTSET');
    // MaxUnpool takes no pads or ceil mode (onnxruntime then wants a larger output than x) and only float32
    const plain = pads.every((p) => p === 0) && (autoPad === 'NOTSET' || autoPad === 'VALID') && c.attrNum('ceil_mode', 0) === 0 && c.elemType(x) === ELEM.FLOAT;
    if (plain && kernel.every((k, i) => strides[i]! >= k && dilations[i] === 1)) {
      // Windows do not overlap, so each input cell is the argmax of at most one window: MaxUnpool places dY there.
      return [b.node('MaxUnpool', [c.gradOutput(0)!, idx, b.shape(x)], { kernel_shape: kernel, strides })];
    }
    const flat = b.int64([-1]);
    const zeros = b.zerosOfShape(b.reshape(b.node('Size', [x]), b.int64([1])));
    const scattered = b.node('ScatterElements', [zeros, b.reshape(idx, flat), b.reshape(c.gradOutput(0)!, flat)], { axis: 0, reduction: 'add' });
    return [b.reshape(scattered, b.shape(x))];
  },
  // dX = ConvTranspose of dY/divisor with a ones kernel per channel, cut to X's extent
  AveragePool: (c) => {
    const b = c.b;
    const x = c.input(0);
    const xd = c.dims(x);
    const channels = xd[1]!;
    if (channels < 0) c.unsupported('the channel dim must be static');
    const kernel = c.attrInts('kernel_shape', undefined)!;
    const w = windowOf(c, x, kernel);
    const out = c.dims(c.output(0)).slice(2);
    const div = averagePoolDivisors(w.spatial, out, kernel, w.strides, w.dilations, w.padsBegin, w.padsEnd, c.attrNum('count_include_pad', 0) === 1);
    const inv = b.floats(c.temp('inv_count'), Array.from(div, (d) => 1 / d), [1, 1, ...out]);
    const ones = b.floats(c.temp('ones_kernel'), new Array(channels * kernel.reduce((a, k) => a * k, 1)).fill(1), [channels, 1, ...kernel]);
    const n = kernel.length;
    const ct = b.node('ConvTranspose', [b.mul(c.gradOutput(0)!, inv), ones], { strides: w.strides, dilations: w.dilations, group: channels, pads: [...w.padsBegin, ...new Array(n).fill(0)], kernel_shape: kernel });
    const have = out.map((o, i) => (o - 1) * w.strides[i]! + (kernel[i]! - 1) * w.dilations[i]! + 1 - w.padsBegin[i]!);
    return [fitSpatial(c, ct, have, w.spatial)];
  },
  // dX = dY / (H·W) broadcast over space
  GlobalAveragePool: (c) => {
    const b = c.b;
    const xd = c.dims(c.input(0));
    if (xd.slice(2).some((d) => d < 0)) c.unsupported('spatial dims must be static');
    const area = xd.slice(2).reduce((a, d) => a * d, 1);
    return [b.node('Expand', [b.div(c.gradOutput(0)!, b.scalar(area)), b.shape(c.input(0))])];
  },
  // dX = dY where X equals the spatial max (split evenly on ties)
  GlobalMaxPool: (c) => {
    const b = c.b;
    const x = c.input(0);
    const ft = c.elemType(x) || ELEM.FLOAT;
    const mask = b.cast(b.node('Equal', [x, c.output(0)]), ft);
    const count = b.reduceSum(mask, spatialAxes(c.dims(x).length), true);
    return [b.mul(mask, b.div(c.gradOutput(0)!, count))];
  },
};

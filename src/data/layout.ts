import type { Float32Tensor } from '../core/tensor.js';

/** How {@link fitLayout} changed a dataset's examples to the model's input layout, or undefined when it did not. */
export type LayoutChange = 'NCHW -> NHWC' | 'images -> flat rows' | 'flat rows -> images';

/**
 * A dataset's examples in the layout a model's input declares, when they differ only in a way that is certain: the
 * built-in image datasets are NCHW ([N, C, H, W]); a model exported from TensorFlow/Keras takes NHWC ([N, H, W, C]),
 * an MLP flat rows ([N, C·H·W]), and an image model may take rows that a flat dataset holds. `want` is the model's
 * input shape with -1 for free dims. Anything else (or an exact fit) comes back unchanged, for the caller's own
 * shape check to report.
 */
export function fitLayout(x: Float32Tensor, want: readonly number[]): { x: Float32Tensor; change?: LayoutChange } {
  const got = x.shape;
  const fits = got.length === want.length && got.every((d, i) => i === 0 || want[i]! < 0 || want[i] === d);
  if (fits) return { x };
  const n = got[0]!;
  const per = got.slice(1).reduce((a, d) => a * d, 1);
  const known = want.slice(1).every((d) => d > 0);
  if (got.length === 4 && want.length === 4 && known) {
    const [, c, h, w] = got as [number, number, number, number];
    if (want[1] === h && want[2] === w && want[3] === c) {
      const out = new Float32Array(x.data.length);
      for (let i = 0; i < n; i++) {
        const base = i * per;
        for (let ch = 0; ch < c; ch++) for (let p = 0; p < h * w; p++) out[base + p * c + ch] = x.data[base + ch * h * w + p]!;
      }
      return { x: { data: out, shape: [n, h, w, c], dtype: 'float32' }, change: 'NCHW -> NHWC' };
    }
  }
  if (known && want.slice(1).reduce((a, d) => a * d, 1) === per) {
    if (got.length > 2 && want.length === 2) return { x: { data: x.data, shape: [n, per], dtype: 'float32' }, change: 'images -> flat rows' };
    if (got.length === 2 && want.length > 2) return { x: { data: x.data, shape: [n, ...want.slice(1)], dtype: 'float32' }, change: 'flat rows -> images' };
  }
  return { x };
}

import { stridesOf } from '../core/tensor.js';
import type { GraphBuilder } from '../onnx/builder.js';
import { ELEM, attrInts, attrNum, attrStr, type Graph, type Node } from '../onnx/ir.js';
import type { ShapeMap } from '../onnx/shapes.js';

/**
 * A convolution whose only reader is a non-overlapping MaxPool (kernel = stride), computed as one strided
 * convolution per window position ("phase") and an elementwise Max of the phases.
 *
 * Why: onnxruntime's MaxPool kernel that reports argmax Indices (which the gradient needs) is a scalar loop many
 * times slower than its plain MaxPool, and with data-dependent branches it slows further on noisy (adversarial)
 * inputs. The phases give the pooled maximum exactly (the same products, taken at the same positions), never
 * materialize the full-resolution convolution output, and make the argmax an elementwise comparison: the first phase,
 * in row-major window order, that equals the maximum, which is the element MaxPool reports. The gradient then
 * scatters dY to that element (MaxUnpool) and applies the convolution's own gradient rule, so parameter gradients,
 * per-example gradients and every Conv attribute keep their existing paths.
 */
export interface PooledConv {
  /** The original Conv node (no longer in the graph); its output is the virtual full-resolution map. */
  conv: Node;
  /** Phase outputs, window positions in row-major order. */
  phases: string[];
  /** Flat offset of each phase's element from its window's first element in the covered map (`used`). */
  offsets: number[];
  /** Pool kernel (= strides). */
  window: number[];
  /** Spatial dims of the pooled output. */
  pooled: number[];
  /**
   * The leading part of the full-resolution map that the pool's windows cover (pooled x window per axis; the rows and
   * columns past it never reach the loss). The gradient map is built at this size and `offsets` index into it.
   */
  used: number[];
  channels: number;
}

/** Conv geometry with auto_pad resolved; undefined when the rewrite does not apply. */
function convGeometry(conv: Node, xDims: number[], wDims: number[]): { kernel: number[]; padsBegin: number[]; padsEnd: number[] } | undefined {
  const n = xDims.length - 2;
  if (n < 1 || xDims.slice(2).some((d) => d < 0) || wDims.some((d) => d < 0)) return undefined;
  const kernel = attrInts(conv, 'kernel_shape', undefined) ?? wDims.slice(2);
  const strides = attrInts(conv, 'strides', undefined) ?? new Array<number>(n).fill(1);
  const dilations = attrInts(conv, 'dilations', undefined) ?? new Array<number>(n).fill(1);
  if (kernel.length !== n || strides.some((s) => s !== 1) || dilations.some((d) => d !== 1)) return undefined;
  const autoPad = attrStr(conv, 'auto_pad', 'NOTSET');
  let pads = attrInts(conv, 'pads', undefined) ?? new Array<number>(2 * n).fill(0);
  if (autoPad === 'VALID') pads = new Array<number>(2 * n).fill(0);
  else if (autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') {
    pads = new Array<number>(2 * n).fill(0);
    for (let i = 0; i < n; i++) {
      const total = kernel[i]! - 1;
      const small = Math.floor(total / 2);
      pads[i] = autoPad === 'SAME_UPPER' ? small : total - small;
      pads[i + n] = total - pads[i]!;
    }
  } else if (autoPad !== 'NOTSET') return undefined;
  return { kernel, padsBegin: pads.slice(0, n), padsEnd: pads.slice(n) };
}

/** The pool window when `pool` is a plain non-overlapping MaxPool (kernel = strides, no pads or dilation). */
function poolWindow(pool: Node, n: number): number[] | undefined {
  const kernel = attrInts(pool, 'kernel_shape', undefined);
  if (!kernel || kernel.length !== n) return undefined;
  const strides = attrInts(pool, 'strides', undefined) ?? new Array<number>(n).fill(1);
  const dilations = attrInts(pool, 'dilations', undefined) ?? new Array<number>(n).fill(1);
  const pads = attrInts(pool, 'pads', undefined) ?? new Array<number>(2 * n).fill(0);
  const autoPad = attrStr(pool, 'auto_pad', 'NOTSET');
  if (autoPad !== 'NOTSET' && autoPad !== 'VALID') return undefined;
  if (attrNum(pool, 'ceil_mode', 0) !== 0 || attrNum(pool, 'storage_order', 0) !== 0) return undefined;
  if (kernel.some((k, i) => k !== strides[i] || dilations[i] !== 1) || pads.some((p) => p !== 0)) return undefined;
  if (kernel.reduce((a, k) => a * k, 1) < 2 || kernel.reduce((a, k) => a * k, 1) > 16) return undefined;
  return kernel;
}

/**
 * Rewrites every Conv → MaxPool pair that `wanted` accepts (see {@link PooledConv}) in place. New values get their
 * shapes in `shapes`. Returns the rewritten pairs keyed by the name of the Max node that replaces the pool.
 */
export function splitPooledConvs(g: Graph, shapes: ShapeMap, b: GraphBuilder, wanted: (conv: Node) => boolean): Map<string, PooledConv> {
  const done = new Map<string, PooledConv>();
  const consumers = new Map<string, Node[]>();
  for (const n of g.nodes) for (const i of n.inputs) if (i) consumers.set(i, [...(consumers.get(i) ?? []), n]);
  const graphOutputs = new Set(g.outputs.map((o) => o.name));
  const removed = new Set<Node>();
  for (const conv of [...g.nodes]) {
    if (conv.opType !== 'Conv' || conv.domain !== '' || !wanted(conv)) continue;
    const y = conv.outputs[0];
    if (!y || graphOutputs.has(y)) continue;
    const users = consumers.get(y) ?? [];
    const pool = users[0];
    if (users.length !== 1 || !pool || pool.opType !== 'MaxPool' || pool.domain !== '') continue;
    if (pool.outputs.slice(1).some((o) => o)) continue;
    const [x, w, bias] = [conv.inputs[0]!, conv.inputs[1]!, conv.inputs[2] ?? ''];
    const xDims = shapes.get(x)?.dims;
    const wDims = shapes.get(w)?.dims;
    const yDims = shapes.get(y)?.dims;
    const pDims = shapes.get(pool.outputs[0]!)?.dims;
    if (!xDims || !wDims || !yDims || !pDims) continue;
    const geo = convGeometry(conv, xDims, wDims);
    const window = poolWindow(pool, xDims.length - 2);
    if (!geo || !window) continue;
    const spatial = xDims.slice(2);
    const full = yDims.slice(2);
    const pooled = pDims.slice(2);
    if (full.some((d) => d < 0) || pooled.some((d, i) => d < 1 || d !== Math.floor(full[i]! / window[i]!))) continue;
    const channels = wDims[0]!;
    const n = spatial.length;
    // Row-major strides of the covered part of the full-resolution grid, for the flat offsets.
    const used = pooled.map((d, i) => d * window[i]!);
    const usedStride = stridesOf(used);
    const phases: string[] = [];
    const offsets: number[] = [];
    const total = window.reduce((a, k) => a * k, 1);
    for (let p = 0; p < total; p++) {
      // Window position a (row-major) of phase p.
      const a: number[] = [];
      let rem = p;
      for (let i = n - 1; i >= 0; i--) {
        a[i] = rem % window[i]!;
        rem = Math.floor(rem / window[i]!);
      }
      // Output q = s·j + a reads input rows q - padBegin .. q - padBegin + k - 1; keep j in [0, pooled).
      const starts: number[] = [];
      const ends: number[] = [];
      const padsBegin: number[] = [];
      const padsEnd: number[] = [];
      for (let i = 0; i < n; i++) {
        const first = a[i]! - geo.padsBegin[i]!;
        const last = window[i]! * (pooled[i]! - 1) + a[i]! - geo.padsBegin[i]! + geo.kernel[i]!;
        starts.push(Math.max(0, first));
        ends.push(Math.min(spatial[i]!, last));
        padsBegin.push(Math.max(0, -first));
        padsEnd.push(Math.max(0, last - spatial[i]!));
      }
      const sliced = starts.some((s) => s > 0) || ends.some((e, i) => e < spatial[i]!);
      const input = sliced
        ? b.node('Slice', [x, b.int64(starts), b.int64(ends), b.int64(Array.from({ length: n }, (_, i) => i + 2))], {}, `${conv.name}/phase${p}/crop`)
        : x;
      if (sliced) shapes.set(input, { dims: [...xDims.slice(0, 2), ...ends.map((e, i) => e - starts[i]!)], elemType: shapes.get(x)!.elemType });
      const attrs: Record<string, number | number[]> = { kernel_shape: geo.kernel, strides: window, pads: [...padsBegin, ...padsEnd], group: attrNum(conv, 'group', 1) };
      const out = b.node('Conv', bias ? [input, w, bias] : [input, w], attrs, `${conv.name}/phase${p}`, b.uniq(`${y}/phase${p}`));
      shapes.set(out, { dims: [...pDims], elemType: shapes.get(y)!.elemType });
      phases.push(out);
      offsets.push(a.reduce((acc, ai, i) => acc + ai * usedStride[i]!, 0));
    }
    const maxName = b.uniq(`${pool.name}/phase_max`);
    // Pairwise Max nodes, the last one named maxName: onnxruntime spreads a two-input Max over its threads.
    let level = phases;
    while (level.length > 2) {
      const next: string[] = [];
      for (let i = 0; i + 1 < level.length; i += 2) {
        const m = b.node('Max', [level[i]!, level[i + 1]!], {}, b.uniq(`${pool.name}/phase_max_part`));
        shapes.set(m, { dims: [...pDims], elemType: shapes.get(y)!.elemType });
        next.push(m);
      }
      if (level.length % 2) next.push(level.at(-1)!);
      level = next;
    }
    g.nodes.push({ name: maxName, opType: 'Max', domain: '', inputs: level, outputs: [pool.outputs[0]!], attrs: new Map() });
    removed.add(conv);
    removed.add(pool);
    done.set(maxName, { conv, phases, offsets, window, pooled, used, channels });
  }
  if (done.size) g.nodes = g.nodes.filter((n) => !removed.has(n));
  return done;
}

/**
 * Gradient of a {@link PooledConv}'s Max with respect to the full-resolution conv output: dY scattered by MaxUnpool to
 * the first phase (row-major) equal to the maximum, the element onnxruntime's MaxPool reports as its argmax. The map
 * holds only the part the windows cover (`pc.used`; the gradient is zero past it), which the Conv rule reads as a
 * gradient that stops short of its output's end.
 */
export function pooledConvUnpool(b: GraphBuilder, pc: PooledConv, maxOut: string, dY: string): string {
  const n = pc.used.length;
  const area = pc.used.reduce((a, d) => a * d, 1);
  const batch = b.node('Slice', [b.shape(dY), b.int64([0]), b.int64([1])]);
  // Flat index of each window's first element: (n·C + c)·area + Σ s_i·p_i·stride_i.
  const planes = b.node('Range', [b.int64([0], []), b.node('Squeeze', [b.mul(batch, b.int64([pc.channels]))]), b.int64([1], [])]);
  const planeBase = b.mul(b.reshape(planes, b.int64([-1, pc.channels, ...new Array<number>(n).fill(1)])), b.int64([area], []));
  const cells = pc.pooled.reduce((a, d) => a * d, 1);
  const grid = new Array<number>(cells);
  const usedStride = stridesOf(pc.used);
  for (let k = 0; k < cells; k++) {
    let rem = k;
    let flat = 0;
    for (let i = n - 1; i >= 0; i--) {
      flat += (rem % pc.pooled[i]!) * pc.window[i]! * usedStride[i]!;
      rem = Math.floor(rem / pc.pooled[i]!);
    }
    grid[k] = flat;
  }
  const base = b.add(planeBase, b.int64(grid, [1, 1, ...pc.pooled]));
  // The chosen phase's offset is picked among float constants (onnxruntime's Where runs several times faster on float
  // than on int64) and cast once; offsets are small integers, exact in float while below 2^24.
  const inFloat = pc.offsets.every((o) => o < 2 ** 24);
  const constant = (v: number) => (inFloat ? b.scalar(v) : b.int64([v], []));
  let chosen = constant(pc.offsets.at(-1)!);
  for (let p = pc.phases.length - 2; p >= 0; p--) {
    chosen = b.where(b.node('Equal', [pc.phases[p]!, maxOut]), constant(pc.offsets[p]!), chosen);
  }
  const indices = b.add(base, inFloat ? b.cast(chosen, ELEM.INT64) : chosen);
  const outShape = b.node('Concat', [batch, b.int64([pc.channels, ...pc.used])], { axis: 0 });
  return b.node('MaxUnpool', [dY, indices, outShape], { kernel_shape: pc.window, strides: pc.window }, `${pc.conv.name}/unpool`);
}

/**
 * Gradient of a {@link PooledConv}'s Max with respect to each phase: dY goes to the first phase (row-major) equal to
 * the maximum and the others get zero. Each phase Conv then takes its own (strided) gradient rule. Cheaper than
 * {@link pooledConvUnpool} when the Conv's input gradient is a ConvTranspose anyway (few input channels).
 */
export function pooledConvCascade(b: GraphBuilder, pc: PooledConv, maxOut: string, dY: string, floatType: number): string[] {
  // First-hit masks in bool (a byte per element): phase p wins where it equals the maximum and no earlier phase does;
  // the last phase takes what is left. Then one cast and one product per phase.
  const out: string[] = [];
  let seen: string | undefined;
  for (let p = 0; p < pc.phases.length - 1; p++) {
    const equal = b.node('Equal', [pc.phases[p]!, maxOut]);
    const first = seen ? b.node('And', [equal, b.node('Not', [seen])]) : equal;
    out.push(b.mul(dY, b.cast(first, floatType)));
    seen = seen ? b.node('Or', [seen, equal]) : equal;
  }
  out.push(seen ? b.mul(dY, b.cast(b.node('Not', [seen]), floatType)) : dY);
  return out;
}

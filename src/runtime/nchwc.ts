import * as ort from 'onnxruntime-node';
import { setBlockedConvWidth } from '../autodiff/rules/conv.js';
import { GraphBuilder } from '../onnx/builder.js';
import { ELEM, attrInts, attrNum, attrStr, cloneGraph, emptyGraph, writeModelBytes, type Graph } from '../onnx/ir.js';

/**
 * onnxruntime runs a Conv on its fast blocked-channel (NCHWc) kernels only when the kernel is a constant: its graph
 * optimizer reorders the constant into the blocked layout once. Training graphs take the weights as inputs, so their
 * convolutions fall back to im2col + GEMM at about half the speed. onnxruntime's CPU provider also registers the
 * blocked kernels themselves (domain com.microsoft.nchwc: ReorderInput, Conv, ReorderOutput), which accept the blocked
 * kernel as an ordinary input; {@link nchwcWeightInputConvs} feeds them a kernel reordered inside the graph. The
 * channel block is the CPU's SIMD width (8 floats with AVX2, 16 with AVX-512), found by {@link nchwcBlockSize}.
 */
export const NCHWC_DOMAIN = 'com.microsoft.nchwc';

let probed: Promise<number> | undefined;

/**
 * Probes, once per process, which channel block the blocked Conv kernel uses: a 16-channel Conv is run with its kernel
 * laid out for each candidate block and compared with the plain Conv. 0 when none matches (or the kernels are absent,
 * as on CPUs without them), in which case graphs are left as they are. `BULWARK_NCHWC=0` turns the rewrite off.
 */
export function nchwcBlockSize(): Promise<number> {
  probed ??= (async () => {
    if (process.env['BULWARK_NCHWC'] === '0') return 0;
    const c = 16;
    const x = Float32Array.from({ length: c * 25 }, (_, i) => Math.sin(i * 0.37));
    const w = Float32Array.from({ length: c * c * 9 }, (_, i) => Math.cos(i * 0.11));
    const plain = await runOnce(convGraph(0, c), { x: new ort.Tensor('float32', x, [1, c, 5, 5]), w: new ort.Tensor('float32', w, [c, c, 3, 3]) });
    if (!plain) return 0;
    for (const block of [16, 8]) {
      const got = await runOnce(convGraph(block, c), { x: new ort.Tensor('float32', x, [1, c, 5, 5]), w: new ort.Tensor('float32', w, [c, c, 3, 3]) });
      if (got && got.every((v, i) => Math.abs(v - plain[i]!) <= 1e-4 * (1 + Math.abs(plain[i]!)))) return block;
    }
    return 0;
  })().then((b) => {
    setBlockedConvWidth(b);
    return b;
  });
  return probed;
}

function convGraph(block: number, c: number): Graph {
  const g = emptyGraph({ name: 'nchwc-probe', opset: 17, inputs: [{ name: 'x', elemType: ELEM.FLOAT, shape: [1, c, 5, 5] }, { name: 'w', elemType: ELEM.FLOAT, shape: [c, c, 3, 3] }] });
  const b = new GraphBuilder(g);
  const y = b.node('Conv', ['x', 'w'], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] });
  g.outputs.push({ name: y, elemType: ELEM.FLOAT, shape: [1, c, 5, 5] });
  return block ? nchwcWeightInputConvs(g, block) : g;
}

async function runOnce(g: Graph, feeds: Record<string, ort.Tensor>): Promise<Float32Array | undefined> {
  try {
    const s = await ort.InferenceSession.create(writeModelBytes(g), { intraOpNumThreads: 1, logSeverityLevel: 4 });
    try {
      const r = await s.run(feeds);
      return r[g.outputs[0]!.name]!.data as Float32Array;
    } finally {
      await s.release();
    }
  } catch {
    return undefined;
  }
}

/**
 * Rewrites each 2-D float Conv whose kernel is not a constant (a graph input, or computed) and whose channel counts
 * are multiples of `block` into ReorderInput → nchwc Conv (the kernel reordered in the graph to [O/B][I/B][kh][kw][B][B])
 * → ReorderOutput; a Conv with fewer input channels than the block (a first layer) and a multiple of it out reads its
 * NCHW input directly, the kernel laid out [O/B][I][kh][kw][B]. Values are those of the plain Conv up to summation
 * order.
 */
export function nchwcWeightInputConvs(source: Graph, block: number): Graph {
  if (block < 2) return source;
  const g = cloneGraph(source);
  const constant = new Set([...g.initializers.keys(), ...g.nodes.filter((n) => n.opType === 'Constant').flatMap((n) => n.outputs)]);
  const infos = new Map([...g.inputs, ...g.valueInfo.values()].map((v) => [v.name, v]));
  const b = new GraphBuilder(g);
  const out: typeof g.nodes = [];
  let changed = false;
  const reordered = new Map<string, string>();
  const kernels = new Map<string, string>();
  for (const n of g.nodes) {
    const w = n.inputs[1];
    const kernel = attrInts(n, 'kernel_shape', undefined);
    const ok = n.opType === 'Conv' && n.domain === '' && w && !constant.has(w) && attrNum(n, 'group', 1) === 1 && kernel?.length === 2
      && attrStr(n, 'auto_pad', 'NOTSET') === 'NOTSET' && n.inputs.length <= 3;
    const dims = ok ? kernelChannels(infos.get(w)) : undefined;
    // A first layer (fewer input channels than the block) reads its input as it is, in NCHW, with the kernel laid out
    // [O/B][I][kh][kw][B]; otherwise the input is reordered and the kernel is [O/B][I/B][kh][kw][B][B].
    const nchwInput = dims !== undefined && dims.cin < block;
    if (!ok || !dims || dims.cout % block !== 0 || (dims.cin % block !== 0 && !nchwInput)) {
      out.push(n);
      continue;
    }
    changed = true;
    const { cout, cin } = dims;
    const [kh, kw] = kernel!;
    const start = g.nodes.length;
    // Convolutions that share an input or a kernel (the phases of a pooled convolution) share its reordered form.
    let wb = kernels.get(w!);
    if (!wb) {
      if (nchwInput) {
        const w5 = b.reshape(w!, b.int64([cout / block, block, cin, kh!, kw!]));
        wb = b.reshape(b.transpose(w5, [0, 2, 3, 4, 1]), b.int64([cout, cin, kh!, kw!]));
      } else {
        const w6 = b.reshape(w!, b.int64([cout / block, block, cin / block, block, kh!, kw!]));
        wb = b.reshape(b.transpose(w6, [0, 2, 4, 5, 3, 1]), b.int64([cout, cin, kh!, kw!]));
      }
      kernels.set(w!, wb);
    }
    let xb = nchwInput ? n.inputs[0]! : reordered.get(n.inputs[0]!);
    if (!xb) {
      xb = b.nodeN('ReorderInput', [n.inputs[0]!], {}, 1, `${n.name}/nchwc_in`, NCHWC_DOMAIN)[0]!;
      reordered.set(n.inputs[0]!, xb);
    }
    const attrs: Record<string, number[]> = { kernel_shape: kernel! };
    for (const k of ['strides', 'pads', 'dilations']) {
      const v = attrInts(n, k, undefined);
      if (v) attrs[k] = v;
    }
    const [yb] = b.nodeN('Conv', [xb, wb, ...(n.inputs[2] ? [n.inputs[2]] : [])], attrs, 1, `${n.name}/nchwc`, NCHWC_DOMAIN);
    b.nodeN('ReorderOutput', [yb!], { channels: cout }, [n.outputs[0]!], `${n.name}/nchwc_out`, NCHWC_DOMAIN);
    out.push(...g.nodes.splice(start));
  }
  if (!changed) return source;
  g.nodes = out;
  if (!g.opsetImports.some((o) => o.domain === NCHWC_DOMAIN)) g.opsetImports = [...g.opsetImports, { domain: NCHWC_DOMAIN, version: 1 }];
  return g;
}

/**
 * Output and input channel counts of a float kernel whose static shape is declared (a graph input, or value info that
 * the Conv gradient rule adds for the kernels it computes).
 */
function kernelChannels(info: { elemType: number; shape: (number | string | null)[] | null } | undefined): { cout: number; cin: number } | undefined {
  const s = info?.shape;
  if (!info || info.elemType !== ELEM.FLOAT || !s || s.length !== 4 || typeof s[0] !== 'number' || typeof s[1] !== 'number') return undefined;
  return { cout: s[0], cin: s[1] };
}

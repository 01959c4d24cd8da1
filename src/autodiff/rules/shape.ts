import { ELEM } from '../../onnx/ir.js';
import type { RuleContext, RuleTable } from '../context.js';

/** dX = dY reshaped back to X's runtime shape. */
const reshapeBack = (c: RuleContext) => [c.b.reshape(c.gradOutput(0)!, c.b.shape(c.input(0))), undefined];

/** An end of exactly INT32_MAX or INT64_MAX with a negative step runs through index 0 in onnxruntime. */
const isIntMaxEnd = (end: number) => end === 2 ** 31 - 1 || end >= 2 ** 63 - 1;

function constInts(c: RuleContext, name: string, what: string): number[] {
  const v = c.constValue(name);
  if (!v) c.unsupported(`${what} must be a constant`);
  return Array.from(v as ArrayLike<number | bigint>, (x) => Number(x));
}

/**
 * Indices of a Python-style slice start:end:step over a length, as onnxruntime's Slice computes them (the ONNX
 * clamping, plus onnxruntime's reading of an INT_MAX end with a negative step as "through index 0").
 */
export function sliceIndices(len: number, start: number, end: number, step: number): number[] {
  const clamp = (v: number, lo: number, hi: number) => Math.min(Math.max(v, lo), hi);
  let s = start < 0 ? start + len : start;
  let e = end < 0 ? end + len : end;
  if (step > 0) {
    s = clamp(s, 0, len);
    e = clamp(e, 0, len);
  } else {
    if (len === 0) return [];
    s = clamp(s, 0, len - 1);
    e = isIntMaxEnd(end) ? -1 : clamp(e, -1, len - 1);
  }
  const out: number[] = [];
  for (let i = s; step > 0 ? i < e : i > e; i += step) out.push(i);
  return out;
}

/**
 * Scatter-adds `g` into zeros whose extent along `axis` is `full`, at positions `idx` (one per slot of g along
 * axis): the gradient of any op that picks slices along one axis (Slice with steps, Resize nearest, Gather).
 */
function scatterAlong(c: RuleContext, g: string, axis: number, rank: number, idx: number[], full: number): string {
  const b = c.b;
  const shapeG = b.shape(g);
  // Target shape = shape(g) with the axis extent replaced by `full`.
  const keep = Array.from({ length: rank }, (_, i) => (i === axis ? 0 : 1));
  const put = Array.from({ length: rank }, (_, i) => (i === axis ? full : 0));
  const target = b.add(b.mul(shapeG, b.int64(keep)), b.int64(put));
  const zeros = b.zerosOfShape(target);
  const idxShape = Array.from({ length: rank }, (_, i) => (i === axis ? idx.length : 1));
  const indices = b.node('Expand', [b.int64(idx, idxShape), shapeG]);
  return b.node('ScatterElements', [zeros, indices, g], { axis, reduction: 'add' });
}

/** Source index along one axis for each output index of a nearest-neighbour Resize. */
export function nearestIndices(inLen: number, outLen: number, scale: number, coordMode: string, nearestMode: string): number[] {
  const out: number[] = [];
  for (let o = 0; o < outLen; o++) {
    let x: number;
    switch (coordMode) {
      case 'asymmetric':
        x = o / scale;
        break;
      case 'align_corners':
        x = outLen === 1 ? 0 : (o * (inLen - 1)) / (outLen - 1);
        break;
      case 'pytorch_half_pixel':
        x = outLen > 1 ? (o + 0.5) / scale - 0.5 : 0;
        break;
      case 'half_pixel_symmetric': {
        const adj = outLen / (scale * inLen);
        const center = inLen / 2;
        const offset = center * (1 - adj);
        x = offset + (o + 0.5) / scale - 0.5;
        break;
      }
      default:
        x = (o + 0.5) / scale - 0.5;
    }
    let i: number;
    switch (nearestMode) {
      case 'floor':
        i = Math.floor(x);
        break;
      case 'ceil':
        i = Math.ceil(x);
        break;
      case 'round_prefer_ceil':
        i = Math.round(x);
        break;
      default:
        i = x === Math.floor(x) + 0.5 ? Math.floor(x) : Math.round(x);
    }
    out.push(Math.min(Math.max(i, 0), inLen - 1));
  }
  return out;
}

export const shapeRules: RuleTable = {
  Flatten: reshapeBack,
  Reshape: reshapeBack,
  Squeeze: reshapeBack,
  Unsqueeze: reshapeBack,
  // dX = Transpose(dY, perm⁻¹)
  Transpose: (c) => {
    const rank = c.dims(c.input(0)).length;
    const perm = c.attrInts('perm', undefined) ?? Array.from({ length: rank }, (_, i) => rank - 1 - i);
    const inv = new Array<number>(rank);
    perm.forEach((p, i) => (inv[p] = i));
    return [c.b.transpose(c.gradOutput(0)!, inv)];
  },
  // dX_i = the slice of dY that X_i filled, by runtime extents along the axis
  Concat: (c) => {
    const b = c.b;
    const rank = c.dims(c.output(0)).length;
    let axis = c.attrNum('axis', 0);
    if (axis < 0) axis += rank;
    const sizes = b.node('Concat', c.node.inputs.map((x) => b.node('Gather', [b.shape(x), b.int64([axis])])), { axis: 0 });
    const parts = b.nodeN('Split', [c.gradOutput(0)!, sizes], { axis }, c.node.inputs.length);
    return parts.map((p, i) => (c.needsGrad(i) ? p : undefined));
  },
  // dX = Concat of the output gradients (zeros for outputs without one)
  Split: (c) => {
    const b = c.b;
    const axis = c.attrNum('axis', 0);
    const parts = c.node.outputs.map((o, i) => c.gradOutput(i) ?? b.zerosLike(o));
    return [b.node('Concat', parts, { axis }), undefined];
  },
  // dX = dY placed back at the sliced positions: a Pad for unit steps, scatters otherwise
  Slice: (c) => {
    const b = c.b;
    const x = c.input(0);
    const xd = c.dims(x);
    const rank = xd.length;
    const starts = constInts(c, c.input(1), 'Slice starts');
    const ends = constInts(c, c.input(2), 'Slice ends');
    const axes = c.input(3) ? constInts(c, c.input(3), 'Slice axes').map((a) => (a < 0 ? a + rank : a)) : starts.map((_, i) => i);
    const steps = c.input(4) ? constInts(c, c.input(4), 'Slice steps') : starts.map(() => 1);
    for (const a of axes) if (xd[a]! < 0) c.unsupported(`slicing along axis ${a}, whose extent is dynamic`);
    const picks = axes.map((a, i) => sliceIndices(xd[a]!, starts[i]!, ends[i]!, steps[i]!));
    let g = c.gradOutput(0)!;
    if (steps.every((s) => s === 1)) {
      const pads = new Array<number>(2 * rank).fill(0);
      axes.forEach((a, i) => {
        const p = picks[i]!;
        pads[a] = p.length ? p[0]! : xd[a]!;
        pads[a + rank] = p.length ? xd[a]! - 1 - p[p.length - 1]! : 0;
      });
      return [b.node('Pad', [g, b.int64(pads)])];
    }
    axes.forEach((a, i) => {
      g = scatterAlong(c, g, a, rank, picks[i]!, xd[a]!);
    });
    return [g];
  },
  // dData = scatter-add of dY at the gathered indices
  Gather: (c) => {
    const b = c.b;
    const [data, indices] = [c.input(0), c.input(1)];
    const dd = c.dims(data);
    const rank = dd.length;
    let axis = c.attrNum('axis', 0);
    if (axis < 0) axis += rank;
    const idxRank = c.dims(indices).length;
    let idx = c.elemType(indices) === ELEM.INT64 ? indices : b.cast(indices, ELEM.INT64);
    const extent = b.node('Gather', [b.shape(data), b.int64([axis])]);
    idx = b.where(b.node('Less', [idx, b.int64([0], [])]), b.add(idx, b.reshape(extent, b.int64([]))), idx);
    // Move the gathered axis first, ScatterND-add dY rows into it, and move it back.
    const permData = [axis, ...Array.from({ length: rank }, (_, i) => i).filter((i) => i !== axis)];
    const dataT = axis === 0 ? data : b.transpose(data, permData);
    const gRank = rank - 1 + idxRank;
    const permG = [...Array.from({ length: idxRank }, (_, i) => axis + i), ...Array.from({ length: axis }, (_, i) => i), ...Array.from({ length: gRank - axis - idxRank }, (_, i) => axis + idxRank + i)];
    const gT = axis === 0 ? c.gradOutput(0)! : b.transpose(c.gradOutput(0)!, permG);
    const zeros = b.zerosLike(dataT);
    const scattered = b.node('ScatterND', [zeros, b.node('Unsqueeze', [idx, b.int64([-1])]), gT], { reduction: 'add' });
    const inv = new Array<number>(rank);
    permData.forEach((p, i) => (inv[p] = i));
    return [axis === 0 ? scattered : b.transpose(scattered, inv), undefined];
  },
  // dData = scatter-add of dY at the element indices
  GatherElements: (c) => {
    const b = c.b;
    const [data, indices] = [c.input(0), c.input(1)];
    const rank = c.dims(data).length;
    let axis = c.attrNum('axis', 0);
    if (axis < 0) axis += rank;
    let idx = c.elemType(indices) === ELEM.INT64 ? indices : b.cast(indices, ELEM.INT64);
    const extent = b.reshape(b.node('Gather', [b.shape(data), b.int64([axis])]), b.int64([]));
    idx = b.where(b.node('Less', [idx, b.int64([0], [])]), b.add(idx, extent), idx);
    return [b.node('ScatterElements', [b.zerosLike(data), idx, c.gradOutput(0)!], { axis, reduction: 'add' }), undefined];
  },
  // constant mode: dX = the un-padded window of dY (negative pads crop, so their gradient pads back)
  Pad: (c) => {
    const b = c.b;
    const mode = c.attrStr('mode', 'constant');
    if (mode !== 'constant') c.unsupported(`Pad mode '${mode}' (only constant padding has a gradient rule)`);
    const xd = c.dims(c.input(0));
    const rank = xd.length;
    const raw = constInts(c, c.input(1), 'Pad pads');
    const axes = c.input(3) ? constInts(c, c.input(3), 'Pad axes').map((a) => (a < 0 ? a + rank : a)) : Array.from({ length: rank }, (_, i) => i);
    const begin = new Array<number>(rank).fill(0);
    const end = new Array<number>(rank).fill(0);
    axes.forEach((a, i) => {
      begin[a] = raw[i]!;
      end[a] = raw[i + axes.length]!;
    });
    let g = c.gradOutput(0)!;
    if (begin.some((p) => p < 0) || end.some((p) => p < 0)) {
      g = b.node('Pad', [g, b.int64([...begin.map((p) => Math.max(-p, 0)), ...end.map((p) => Math.max(-p, 0))])]);
    }
    const sliceAxes = Array.from({ length: rank }, (_, i) => i).filter((a) => begin[a]! > 0 || end[a]! > 0);
    if (sliceAxes.length) {
      for (const a of sliceAxes) if (xd[a]! < 0) c.unsupported(`padding along axis ${a}, whose extent is dynamic`);
      g = b.node('Slice', [g, b.int64(sliceAxes.map((a) => Math.max(begin[a]!, 0))), b.int64(sliceAxes.map((a) => Math.max(begin[a]!, 0) + xd[a]!)), b.int64(sliceAxes)]);
    }
    // the fill value reaches every padded cell: its gradient is dY summed over them, all of dY less what came from x
    const fill = c.input(2);
    const all = Array.from({ length: rank }, (_, i) => i);
    const dFill = fill && c.needsGrad(2) ? b.reshape(b.sub(b.reduceSum(c.gradOutput(0)!, all, false), b.reduceSum(g, all, false)), b.shape(fill)) : undefined;
    return [g, undefined, dFill, undefined];
  },
  // nearest mode is a Gather per axis: its gradient scatter-adds along each resized axis
  Resize: (c) => {
    const mode = c.attrStr('mode', 'nearest');
    if (mode !== 'nearest') c.unsupported(`Resize mode '${mode}' (only nearest has a gradient rule)`);
    const coord = c.attrStr('coordinate_transformation_mode', 'half_pixel');
    if (coord === 'tf_crop_and_resize') c.unsupported('coordinate_transformation_mode tf_crop_and_resize');
    const nearestMode = c.attrStr('nearest_mode', 'round_prefer_floor');
    const xd = c.dims(c.input(0));
    const yd = c.dims(c.output(0));
    const rank = xd.length;
    const scalesName = c.input(2);
    const given = scalesName && c.constValue(scalesName)?.length ? Array.from(c.constValue(scalesName) as Float32Array) : undefined;
    // opset 18: scales (or sizes) for the listed axes only; the aspect-ratio policies rescale sizes uniformly, so the
    // output extents would no longer give each axis's scale
    const policy = c.attrStr('keep_aspect_ratio_policy', 'stretch');
    if (policy !== 'stretch') c.unsupported(`keep_aspect_ratio_policy ${policy}`);
    const axes = c.attrInts('axes', undefined)?.map((a) => (a < 0 ? a + rank : a));
    let scales = given;
    if (given && axes) {
      if (axes.length !== given.length || axes.some((a) => a < 0 || a >= rank)) c.unsupported(`axes [${axes}] do not match the ${given.length} scales`);
      scales = new Array<number>(rank).fill(1);
      axes.forEach((a, k) => (scales![a] = given[k]!));
    }
    if (scales && scales.length !== rank) c.unsupported(`${scales.length} scales for a rank-${rank} input`);
    let g = c.gradOutput(0)!;
    for (let a = 0; a < rank; a++) {
      if (xd[a]! === yd[a]! && (!scales || scales[a] === 1)) continue;
      if (xd[a]! < 0 || yd[a]! < 0) c.unsupported(`resizing along axis ${a}, whose extent is dynamic`);
      const scale = scales ? scales[a]! : yd[a]! / xd[a]!;
      g = scatterAlong(c, g, a, rank, nearestIndices(xd[a]!, yd[a]!, scale, coord, nearestMode), xd[a]!);
    }
    return [g, undefined, undefined, undefined];
  },
  // dX = dY summed over the tile repeats
  Tile: (c) => {
    const b = c.b;
    const xd = c.dims(c.input(0));
    const reps = constInts(c, c.input(1), 'Tile repeats');
    if (xd.some((d, i) => d < 0 && reps[i] !== 1) || xd.filter((d) => d < 0).length > 1) c.unsupported('tiling with dynamic axes');
    // [.., r·d, ..] -> [.., r, d, ..] and sum over r
    const split: number[] = [];
    xd.forEach((d, i) => split.push(reps[i]!, d < 0 ? -1 : d));
    const g = b.reshape(c.gradOutput(0)!, b.int64(split));
    const summed = b.reduceSum(g, xd.map((_, i) => 2 * i), false);
    return [summed, undefined];
  },
};

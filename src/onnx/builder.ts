import { ATTR } from './proto.js';
import { ELEM, type Attr, type Graph, type Node, type TensorData } from './ir.js';
import type { TypedArray } from '../core/tensor.js';

/** An attribute as a builder call gives it: plain numbers are ints, `floatAttr(x)` marks floats. */
export type AttrInit = number | number[] | string | string[] | Attr;

export const floatAttr = (value: number): Attr => ({ type: ATTR.FLOAT, value });
export const floatsAttr = (value: number[]): Attr => ({ type: ATTR.FLOATS, value });
export const tensorAttr = (value: TensorData): Attr => ({ type: ATTR.TENSOR, value });

function toAttr(v: AttrInit): Attr {
  if (typeof v === 'number') return { type: ATTR.INT, value: v };
  if (typeof v === 'string') return { type: ATTR.STRING, value: v };
  if (Array.isArray(v)) {
    if (v.length > 0 && typeof v[0] === 'string') return { type: ATTR.STRINGS, value: v as string[] };
    return { type: ATTR.INTS, value: v as number[] };
  }
  return v;
}

/**
 * Appends nodes and constants to a Graph with deterministic, collision-free names. Used by the gradient pass
 * (names `<prefix>/<suffix>`) and by the layers that emit models.
 */
export class GraphBuilder {
  readonly graph: Graph;
  /** Element type of the float constants this builder makes (FLOAT, or DOUBLE for float64 copies). */
  floatType: number;
  private readonly used = new Set<string>();
  private readonly constCache = new Map<string, string>();

  constructor(graph: Graph, floatType: number = ELEM.FLOAT) {
    this.graph = graph;
    this.floatType = floatType;
    for (const v of graph.inputs) this.used.add(v.name);
    for (const k of graph.initializers.keys()) this.used.add(k);
    for (const n of graph.nodes) {
      this.used.add(n.name);
      for (const o of n.outputs) this.used.add(o);
    }
  }

  /** A name not yet used in the graph, `base` itself when free. */
  uniq(base: string): string {
    let name = base;
    let i = 1;
    while (this.used.has(name)) name = `${base}_${i++}`;
    this.used.add(name);
    return name;
  }

  /** Appends one node and returns its output names. */
  nodeN(opType: string, inputs: string[], attrs: Record<string, AttrInit> = {}, outputs: number | string[] = 1, name?: string, domain = ''): string[] {
    const nodeName = this.uniq(name ?? opType);
    const outs = typeof outputs === 'number' ? Array.from({ length: outputs }, (_, i) => this.uniq(outputs === 1 ? `${nodeName}:out` : `${nodeName}:out${i}`)) : outputs.map((o) => this.claim(o));
    const node: Node = { name: nodeName, opType, domain, inputs, outputs: outs, attrs: new Map(Object.entries(attrs).map(([k, v]) => [k, toAttr(v)])) };
    this.graph.nodes.push(node);
    return outs;
  }

  /** Appends one node with one output and returns that output's name. */
  node(opType: string, inputs: string[], attrs: Record<string, AttrInit> = {}, name?: string, output?: string): string {
    return this.nodeN(opType, inputs, attrs, output === undefined ? 1 : [output], name)[0]!;
  }

  private claim(name: string): string {
    this.used.add(name);
    return name;
  }

  /** Adds an initializer holding `data` and returns its name. */
  initializer(base: string, dataType: number, dims: number[], data: TypedArray, exactName = false): string {
    const name = exactName ? this.claim(base) : this.uniq(base);
    this.graph.initializers.set(name, { dataType, dims: [...dims], data });
    return name;
  }

  /** A float constant (of the builder's float type), shared when the same value is asked twice. */
  scalar(value: number, dims: number[] = []): string {
    const key = `f${this.floatType}:${value}:${dims.join('x')}`;
    const hit = this.constCache.get(key);
    if (hit) return hit;
    const n = dims.reduce((a, b) => a * b, 1);
    const data = this.floatType === ELEM.DOUBLE ? new Float64Array(n).fill(value) : new Float32Array(n).fill(value);
    const name = this.initializer(`const_${sanitize(String(value))}`, this.floatType, dims, data);
    this.constCache.set(key, name);
    return name;
  }

  /** A float tensor constant from values. */
  floats(base: string, values: ArrayLike<number>, dims: number[]): string {
    const data = this.floatType === ELEM.DOUBLE ? Float64Array.from(values) : Float32Array.from(values);
    return this.initializer(base, this.floatType, dims, data);
  }

  /** An int64 constant (1-D unless dims says otherwise), shared when the same values are asked twice. */
  int64(values: number[], dims: number[] = [values.length]): string {
    const key = `i64:${values.join(',')}:${dims.join('x')}`;
    const hit = this.constCache.get(key);
    if (hit) return hit;
    const name = this.initializer(`const_i64_${sanitize(values.slice(0, 4).join('_'))}`, ELEM.INT64, dims, BigInt64Array.from(values.map((v) => BigInt(v))));
    this.constCache.set(key, name);
    return name;
  }

  // Small op helpers that keep the rules readable.
  add(a: string, b: string): string {
    return this.node('Add', [a, b]);
  }
  sub(a: string, b: string): string {
    return this.node('Sub', [a, b]);
  }
  mul(a: string, b: string): string {
    return this.node('Mul', [a, b]);
  }
  div(a: string, b: string): string {
    return this.node('Div', [a, b]);
  }
  neg(a: string): string {
    return this.node('Neg', [a]);
  }
  shape(a: string): string {
    return this.node('Shape', [a]);
  }
  reshape(a: string, shape: string): string {
    return this.node('Reshape', [a, shape]);
  }
  transpose(a: string, perm: number[]): string {
    return this.node('Transpose', [a], { perm });
  }
  /** ReduceSum over axes (opset 13+ form: axes as an input). */
  reduceSum(a: string, axes: number[], keepdims = true): string {
    return this.reduce('ReduceSum', a, axes, keepdims);
  }
  /** ReduceMean/ReduceMax over axes (opset 18+ form). */
  reduce(op: 'ReduceMean' | 'ReduceMax' | 'ReduceMin' | 'ReduceSum', a: string, axes: number[], keepdims = true): string {
    return this.node(op, [a, this.int64(axes)], { keepdims: keepdims ? 1 : 0 });
  }
  where(cond: string, a: string, b: string): string {
    return this.node('Where', [cond, a, b]);
  }
  /** Zeros shaped like `like`, of the builder's float type. */
  zerosLike(like: string): string {
    return this.zerosOfShape(this.shape(like));
  }
  /** Zeros of a runtime shape, of the builder's float type. */
  zerosOfShape(shape: string): string {
    const zero = this.floatType === ELEM.DOUBLE ? new Float64Array(1) : new Float32Array(1);
    return this.node('ConstantOfShape', [shape], { value: tensorAttr({ dataType: this.floatType, dims: [1], data: zero }) });
  }
  cast(a: string, to: number): string {
    return this.node('Cast', [a], { to });
  }
}

function sanitize(s: string): string {
  return s.replace(/[^A-Za-z0-9_.-]/g, '_');
}

import { BulwarkError } from '../core/errors.js';
import type { TypedArray } from '../core/tensor.js';
import type { GraphBuilder } from '../onnx/builder.js';
import { attrInts, attrNum, attrStr, type Node } from '../onnx/ir.js';

/**
 * What a gradient rule sees of its node: names of inputs, outputs and output gradients, attributes, static
 * shapes, and a builder to emit the gradient's ONNX nodes. Rules are pure functions of this context.
 */
export interface RuleContext {
  readonly node: Node;
  readonly b: GraphBuilder;
  readonly opset: number;
  /** Name of input i ('' when the optional input is absent). */
  input(i: number): string;
  /** Name of output i. */
  output(i: number): string;
  /** Gradient flowing into output i, or undefined when it is zero (not on a path to the loss). */
  gradOutput(i: number): string | undefined;
  /** Whether the gradient of input i is wanted (it lies on a path from a requested input). */
  needsGrad(i: number): boolean;
  /** Whether input i (a parameter) wants per-example gradients, shaped [N, ...its shape], instead of the batch sum. */
  perExample(i: number): boolean;
  /**
   * When set, output 0's gradient covers only the leading `gradOutputExtent[i]` positions of each spatial axis i (it is
   * zero past them and is shaped so): a Conv whose output feeds a pool that drops its last rows. Undefined: the full
   * output.
   */
  readonly gradOutputExtent?: number[];
  /** How convolution weight gradients are formed (see GradientRequest.convWeightGradient). */
  readonly convWeightGradient: ConvWeightGradient;
  /** Static dims of a value; -1 for dims that follow the batch. */
  dims(name: string): number[];
  /** Element type of a value. */
  elemType(name: string): number;
  /** Value of a constant input (initializer or Constant node), or undefined. */
  constValue(name: string): TypedArray | undefined;
  attrNum(name: string, def: number): number;
  attrInts(name: string, def: number[] | undefined): number[] | undefined;
  attrStr(name: string, def: string): string;
  /** A name prefix for the rule's temporaries: `<node>_grad`. */
  temp(suffix: string): string;
  /** Adds a second output to the forward node (e.g. MaxPool's Indices) and returns its name. */
  ensureOutput(i: number): string;
  /** Sums a gradient (shaped like output 0 unless `gradDims` says otherwise) over broadcast axes back to `input`'s shape. */
  unbroadcast(grad: string, input: string, gradDims?: number[]): string;
  /** Throws BULWARK_E_UNSUPPORTED_OP naming this node and the reason. */
  unsupported(reason: string): never;
}

/**
 * 'taps': one GEMM per kernel tap over the whole batch (fastest when the session runs on one thread: its strided
 * copies are serial); 'im2col': an identity-bank Conv and per-example GEMMs, which onnxruntime spreads over its threads.
 */
export type ConvWeightGradient = 'taps' | 'im2col';

/** A gradient rule: returns one gradient name per input (undefined for inputs without gradient). */
export type Rule = (ctx: RuleContext) => (string | undefined)[];

/** A table of rules, one per op type. */
export type RuleTable = Record<string, Rule>;

export function makeUnsupported(node: Node, opset: number) {
  return (reason: string): never => {
    throw new BulwarkError('BULWARK_E_UNSUPPORTED_OP', `cannot differentiate node ${node.name} (${node.opType}, opset ${opset}): ${reason}`);
  };
}

export const attrReaders = (node: Node) => ({
  attrNum: (name: string, def: number) => attrNum(node, name, def),
  attrInts: (name: string, def: number[] | undefined) => attrInts(node, name, def),
  attrStr: (name: string, def: string) => attrStr(node, name, def),
});

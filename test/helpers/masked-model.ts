/**
 * A deliberately gradient-masked model for tests and reports: the reference model's graph with a quantizing layer
 * at its input, x ↦ Round(x·L)/L, and optionally its logits scaled by a large factor (a saturated softmax). Its
 * predictions are the original model's on an L-level grid, but the input gradient is exactly zero (Round's
 * derivative), so white-box gradient attacks see nothing while output-only attacks are unaffected. This is the
 * "shattered gradients" failure of Athalye, Carlini & Wagner 2018 (arXiv:1802.00420) in its simplest form.
 */
import { GraphBuilder } from '../../src/onnx/builder.js';
import { cloneGraph, readModel, realInputs, writeModelBytes } from '../../src/onnx/ir.js';

/** Options of {@link buildGradientMaskedModel}. */
export interface MaskingOptions {
  /** Quantization levels L of the input (Round(x·L)/L); default 255, 0 disables the layer. */
  levels?: number;
  /** Factor applied to the output logits (1: none); default 1. */
  logitScale?: number;
}

/**
 * Builds the masked model's ONNX bytes from an ONNX model (path or bytes) with one float input.
 * @param source the model to mask, e.g. fixtures/models/mnist-cnn-small.onnx
 * @returns ONNX bytes to pass to loadModel
 * @example const masked = await loadModel(buildGradientMaskedModel('fixtures/models/mnist-cnn-small.onnx'));
 */
export function buildGradientMaskedModel(source: string | Uint8Array, options: MaskingOptions = {}): Uint8Array {
  const levels = options.levels ?? 255;
  const scale = options.logitScale ?? 1;
  const g = cloneGraph(readModel(source));
  const b = new GraphBuilder(g);
  const x = realInputs(g)[0]!.name;
  if (levels > 0) {
    const body = [...g.nodes];
    const q = b.div(b.node('Round', [b.mul(x, b.scalar(levels))], {}, 'mask/round'), b.scalar(levels));
    // The quantizer's nodes were appended; every original consumer of x now reads the quantized value.
    for (const n of body) n.inputs = n.inputs.map((v) => (v === x ? q : v));
    g.nodes = [...g.nodes.slice(body.length), ...body];
  }
  if (scale !== 1) {
    const out = g.outputs[0]!;
    const scaled = b.node('Mul', [out.name, b.scalar(scale)], {}, 'mask/saturate');
    g.outputs[0] = { ...out, name: scaled };
  }
  return writeModelBytes(g);
}

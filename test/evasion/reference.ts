/** The reference MNIST model and data shared by the evasion tests. */
import * as path from 'node:path';
import { loadData } from '../../src/data/spec.js';
import { loadModel, type OnnxModel } from '../../src/runtime/model.js';
import type { Float32Tensor } from '../../src/core/tensor.js';
import { repoRoot } from '../helpers.js';

export const REFERENCE_MODEL = path.join(repoRoot, 'fixtures', 'models', 'mnist-cnn-small.onnx');

/** cnn-small trained by `bulwark train --arch cnn-small --data mnist:train --epochs 3 --seed 0` (99.28% on mnist:test). */
export function referenceModel(): Promise<OnnxModel> {
  // one onnxruntime thread: the test runner runs two files at once on CI's two cores
  return loadModel(REFERENCE_MODEL, { threads: 1 });
}

/** MNIST test images [start, end) in [0, 1] with their labels. */
export async function mnistTest(start: number, end: number): Promise<{ x: Float32Tensor; y: Int32Array }> {
  const d = await loadData(`mnist:test[${start}:${end}]`);
  return { x: d.x, y: d.y! };
}

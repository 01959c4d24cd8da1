/** The reference MNIST model and data shared by the evasion tests. */
import * as path from 'node:path';
import { loadData } from '../../src/data/spec.js';
import { loadModel, type Model, type OnnxModel } from '../../src/runtime/model.js';
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

/** A Model wrapper that counts queries independently of the wrapped model (to check the attacks' own counts). */
export function counting(inner: Model): Model & { seen: number } {
  const m = {
    inputShape: inner.inputShape,
    numClasses: inner.numClasses,
    bounds: inner.bounds,
    outputKind: inner.outputKind,
    queries: 0,
    seen: 0,
    async predict(x: Float32Tensor): Promise<Float32Tensor> {
      m.seen += x.shape[0]!;
      m.queries += x.shape[0]!;
      return inner.predict(x);
    },
  };
  return m;
}

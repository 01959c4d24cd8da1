/**
 * Mini-batches over a dataset, reproducible from a seed.
 */
import { BulwarkError } from '../core/errors.js';
import { Rng } from '../core/rng.js';
import { gatherRows, sliceRows, type Tensor } from '../core/tensor.js';
import type { Dataset } from './spec.js';

/** Options of {@link batches}. */
export interface BatchOptions {
  /** Examples per batch (a positive integer). */
  batchSize: number;
  /** Visit examples in a seeded random order; default false (file order). */
  shuffle?: boolean;
  /** Seed of the shuffle; default 0. Pass seed + epoch for a new order each epoch. */
  seed?: number;
  /** Skip a last batch smaller than batchSize; default false. */
  dropLast?: boolean;
}

/** One mini-batch. */
export interface Batch {
  /** Inputs [B, ...]: a view into the dataset when not shuffled, a copy when shuffled. */
  x: Tensor<Float32Array>;
  /** Labels of the batch (same sharing as x), or undefined when the dataset has none. */
  y: Int32Array | undefined;
  /** Dataset row of each batch example. */
  indices: Int32Array;
}

/**
 * Number of batches {@link batches} yields for `n` examples.
 * @param n the dataset size
 * @param batchSize examples per batch
 * @param dropLast whether a short last batch is skipped
 * @returns the batch count
 */
export function numBatches(n: number, batchSize: number, dropLast = false): number {
  return dropLast ? Math.floor(n / batchSize) : Math.ceil(n / batchSize);
}

/**
 * Yields mini-batches of a dataset. The order depends only on the seed, so a run is reproducible.
 * @param ds the dataset
 * @param opts batch size, shuffling, seed, dropLast
 * @returns a generator of batches
 * @throws BulwarkError BULWARK_E_ARG for a batch size that is not a positive integer
 */
export function* batches(ds: Dataset, opts: BatchOptions): Generator<Batch, void, undefined> {
  const { batchSize } = opts;
  if (!Number.isSafeInteger(batchSize) || batchSize < 1) throw new BulwarkError('BULWARK_E_ARG', `batchSize must be a positive integer, got ${batchSize}`);
  const n = ds.x.shape[0]!;
  const order = opts.shuffle === true ? new Rng(opts.seed ?? 0).permutation(n) : undefined;
  const count = numBatches(n, batchSize, opts.dropLast === true);
  for (let b = 0; b < count; b++) {
    const start = b * batchSize;
    const end = Math.min(start + batchSize, n);
    if (order === undefined) {
      const indices = Int32Array.from({ length: end - start }, (_, i) => start + i);
      yield { x: sliceRows(ds.x, start, end), y: ds.y?.subarray(start, end), indices };
    } else {
      const indices = order.slice(start, end);
      yield { x: gatherRows(ds.x, indices), y: ds.y ? Int32Array.from(indices, (i) => ds.y![i]!) : undefined, indices };
    }
  }
}

/**
 * Exact per-example query accounting for black-box attacks. Every forward pass an attack makes goes through a
 * {@link QueryLedger}, which sends rows to `model.predict` in memory-bounded chunks and charges each row to the
 * example it belongs to, so that Σ per-example counts equals the growth of `model.queries` exactly.
 */
import { BulwarkError } from '../../core/errors.js';
import { sizeOf, type Float32Tensor } from '../../core/tensor.js';
import type { Model } from '../../runtime/model.js';

/** Largest number of float32 elements sent to `predict` in one call (16 MiB of inputs). */
const MAX_ELEMENTS_PER_CALL = 1 << 22;

/** Counts queries per example against a per-example budget. */
export class QueryLedger {
  /** Queries charged to each example so far. */
  readonly perExample: Float64Array;
  /** Per-example budget (Infinity: none). */
  readonly budget: number;
  /** Sum of all charges (examples forwarded). */
  total = 0;

  /**
   * @param model the model every query goes to
   * @param n number of examples
   * @param budget queries each example may use
   */
  constructor(readonly model: Model, n: number, budget = Infinity) {
    this.perExample = new Float64Array(n);
    this.budget = budget;
  }

  /** Queries example `i` may still spend. */
  remaining(i: number): number {
    return this.budget - this.perExample[i]!;
  }

  /**
   * Runs the model on rows, charging row r to example `owners[r]`.
   * @param rows inputs [m, ...]
   * @param owners example index of each row [m]
   * @returns the model's outputs [m, K]
   * @throws BulwarkError BULWARK_E_INTERNAL if an attack asks beyond an example's budget (an attack bug)
   */
  async predict(rows: Float32Tensor, owners: ArrayLike<number>): Promise<Float32Array> {
    const m = rows.shape[0]!;
    if (owners.length !== m) throw new BulwarkError('BULWARK_E_INTERNAL', `query ledger: ${m} rows but ${owners.length} owners`);
    const add = new Map<number, number>();
    for (let r = 0; r < m; r++) add.set(owners[r]!, (add.get(owners[r]!) ?? 0) + 1);
    for (const [i, c] of add) {
      if (this.perExample[i]! + c > this.budget) throw new BulwarkError('BULWARK_E_INTERNAL', `query ledger: example ${i} would exceed its budget of ${this.budget}`);
    }
    for (const [i, c] of add) this.perExample[i]! += c;
    this.total += m;
    const row = sizeOf(rows.shape.slice(1));
    const chunk = Math.max(1, Math.floor(MAX_ELEMENTS_PER_CALL / Math.max(row, 1)));
    let out: Float32Array | undefined;
    let k = 0;
    for (let s = 0; s < m; s += chunk) {
      const e = Math.min(m, s + chunk);
      const res = await this.model.predict({ data: rows.data.subarray(s * row, e * row), shape: [e - s, ...rows.shape.slice(1)], dtype: 'float32' });
      if (out === undefined) {
        k = res.data.length / (e - s);
        if (!Number.isInteger(k) || k < 1) throw new BulwarkError('BULWARK_E_MODEL', `the model returned ${res.data.length} values for ${e - s} inputs`);
        out = new Float32Array(m * k);
      }
      if (res.data.length !== (e - s) * k) throw new BulwarkError('BULWARK_E_MODEL', `the model returned ${res.data.length} values for ${e - s} inputs; expected ${(e - s) * k}`);
      out.set(res.data, s * k);
    }
    return out ?? new Float32Array(0);
  }

  /** Per-example counts as integers. */
  counts(): Int32Array {
    return Int32Array.from(this.perExample);
  }
}

/** Mean and median of per-example counts (for summaries). */
export function queryStats(counts: ArrayLike<number>): { mean: number; median: number; max: number; total: number } {
  const a = Array.from(counts).sort((p, q) => p - q);
  if (a.length === 0) return { mean: 0, median: 0, max: 0, total: 0 };
  const total = a.reduce((s, v) => s + v, 0);
  const mid = a.length >> 1;
  const median = a.length % 2 ? a[mid]! : (a[mid - 1]! + a[mid]!) / 2;
  return { mean: total / a.length, median, max: a[a.length - 1]!, total };
}

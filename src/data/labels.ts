/**
 * Class labels, one loader for every path that reads them (--labels and --targets arrays, label arrays in .npz and
 * x.npy,y.npy data, CSV label columns): a label is a non-negative integer below MAX_CLASSES, checked on the value as
 * stored (an int64 2**32+1 or 2**64-1 is refused, never wrapped to 1 or 0 by a conversion to int32).
 */
import { BulwarkError } from '../core/errors.js';

/** The largest number of classes Bulwark accepts; a label must lie in [0, MAX_CLASSES). */
export const MAX_CLASSES = 100_000;

/**
 * Checks one stored label and returns it as a number.
 * @param raw the value as read (a bigint for 64-bit arrays)
 * @param i its index, for messages
 * @param what the file or flag, for messages
 * @throws BulwarkError BULWARK_E_LABELS
 */
export function classId(raw: number | bigint, i: number | string, what: string): number {
  const at = typeof i === 'number' ? `label ${i}` : i;
  if (typeof raw === 'bigint') {
    if (raw < 0n) throw labelError(what, at, String(raw), 'is negative');
    if (raw >= BigInt(MAX_CLASSES)) throw labelError(what, at, String(raw), tooLarge());
    return Number(raw);
  }
  if (!Number.isInteger(raw)) throw labelError(what, at, String(raw), 'is not an integer');
  if (raw < 0) throw labelError(what, at, String(raw), 'is negative');
  if (raw >= MAX_CLASSES) throw labelError(what, at, String(raw), tooLarge());
  return raw;
}

/**
 * Checks a class count (labels' max + 1, a one-hot width, a number of distinct text labels).
 * @throws BulwarkError BULWARK_E_LABELS when it exceeds MAX_CLASSES
 */
export function checkClassCount(k: number, what: string): number {
  if (k > MAX_CLASSES) {
    throw new BulwarkError('BULWARK_E_LABELS', `${what}: ${k} classes; at most ${MAX_CLASSES} are supported`);
  }
  return k;
}

/** Converts an array of stored labels to class ids, checking every value on its stored form. */
export function classIds(src: ArrayLike<number | bigint>, what: string): Int32Array {
  const y = new Int32Array(src.length);
  for (let i = 0; i < y.length; i++) y[i] = classId(src[i]!, i, what);
  return y;
}

function tooLarge(): string {
  return `is over the largest class id accepted, ${MAX_CLASSES - 1} (at most ${MAX_CLASSES} classes)`;
}

function labelError(what: string, at: string, value: string, why: string): BulwarkError {
  return new BulwarkError('BULWARK_E_LABELS', `${what}: ${at} is ${value}, which ${why}; labels must be integer class ids in [0, ${MAX_CLASSES})`);
}

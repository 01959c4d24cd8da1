/**
 * Strict number parsing for user-written text (flags, gate values, CSV cells): plain decimal or scientific notation
 * only, where Number() would also take 0x10, 0b1, Infinity, '' and ' 1 '.
 */

/** Plain decimal or scientific notation: 3, -0.5, .5, 1e-3 (not 0x10, 0b1, Infinity, 1_000 or blanks). */
const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

/** Whether `text` is written in plain decimal or scientific notation (no surrounding blanks). */
export function isDecimal(text: string): boolean {
  return DECIMAL.test(text);
}

/** A number written in plain decimal or scientific notation, else NaN (Number() would take 0x10, '' and ' 1 '). */
export function parseDecimal(text: string): number {
  return DECIMAL.test(text) ? Number(text) : NaN;
}

/**
 * A non-negative integer written as decimal digits only (no sign, point, exponent or blanks), else NaN; values past
 * Number.MAX_SAFE_INTEGER are NaN too, so a caller's range check never compares a rounded value.
 * @example parseDigits('12') // 12
 */
export function parseDigits(text: string): number {
  if (!/^\d+$/.test(text)) return NaN;
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : NaN;
}

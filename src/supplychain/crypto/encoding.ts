/**
 * Small byte helpers shared by the signing and encryption code: strict base64, constant-time comparison.
 */
import { timingSafeEqual } from 'node:crypto';

const B64_STD = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const B64_URL = /^[A-Za-z0-9_-]*$/;

/**
 * Decodes standard (padded) or URL-safe (unpadded) base64 strictly: any other character, a bad length or bad
 * padding is refused (Node's own decoder silently skips garbage, which would let two different strings decode to
 * the same bytes).
 * @returns the bytes, or null when `s` is not well-formed base64
 */
export function decodeBase64Strict(s: unknown): Buffer | null {
  if (typeof s !== 'string') return null;
  if (B64_STD.test(s)) return Buffer.from(s, 'base64');
  if (B64_URL.test(s) && s.length % 4 !== 1) return Buffer.from(s, 'base64url');
  return null;
}

/** Standard, padded base64 (the DSSE and key-file encoding). */
export function encodeBase64(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64');
}

/**
 * Compares two byte strings in time independent of their contents (only of their lengths).
 * Use it for anything derived from a secret (tags, keys, MACs) and for digests.
 */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  return timingSafeEqual(a, b);
}

/** Big-endian u32 as 4 bytes. */
export function u32be(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0, 0);
  return b;
}

/** Overwrites a buffer with zeros (best effort: JavaScript strings and engine copies cannot be wiped). */
export function wipe(...bufs: (Uint8Array | undefined | null)[]): void {
  for (const b of bufs) if (b) b.fill(0);
}

/** A lowercase hex string of exactly `bytes` bytes. */
export function isHex(s: unknown, bytes: number): s is string {
  return typeof s === 'string' && s.length === bytes * 2 && /^[0-9a-f]+$/.test(s);
}

/**
 * Random streams keyed by example. Every per-example random draw of an attack (random starts, restarts, Square's
 * windows, HopSkipJump's directions, NES/SPSA samples) comes from a generator derived from
 * (seed, attack, round, global example index, restart), never from a position in a batch. So an example's result
 * does not depend on how the data was batched, or on which other examples were still robust when the attack ran
 * (the evaluation ensemble runs each attack only on the survivors): attacking examples [0:100] at once, in batches
 * of 7, or the subset {3, 50, 77} alone gives bit-identical adversarial inputs for those indices (the model's
 * outputs being row-independent, as onnxruntime's CPU kernels are).
 */
import { Rng } from '../core/rng.js';

/** What a stream is keyed by. */
export interface StreamKey {
  /** The attack's seed option (any non-negative safe integer). */
  seed: number;
  /** The attack's name (`pgd`, `apgd-dlr`, `square`, ...): two attacks with one seed draw different numbers. */
  attack: string;
  /** The run of the attack inside one runner call: 0, or 1 + the target rank of an APGD-T-style targeted-topk round. */
  round: number;
  /** The example's global index (the runner's `indices`, default its position in the caller's batch). */
  index: number;
  /** Restart number (0 for attacks without restarts). */
  restart: number;
  /** A further sub-stream, for an attack that needs two independent streams per restart (default 0). */
  stream?: number;
}

/** FNV-1a over the UTF-16 code units of a string. */
function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h >>> 0;
}

/** One MurmurHash3 (x86, 32-bit) block step: mixes a 32-bit word into the state. */
function mixWord(h: number, v: number): number {
  let k = Math.imul(v >>> 0, 0xcc9e2d51);
  k = (k << 15) | (k >>> 17);
  k = Math.imul(k, 0x1b873593);
  h ^= k;
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) >>> 0;
}

/** MurmurHash3's finalizer (avalanche). */
function finalize(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Mixes a non-negative safe integer as two 32-bit words. */
function mixInt(h: number, v: number): number {
  const lo = v >>> 0;
  const hi = Math.floor(v / 4294967296) >>> 0;
  return mixWord(mixWord(h, lo), hi);
}

/**
 * The 32-bit seed of a stream: a MurmurHash3-style hash of the key's parts (the attack name through FNV-1a).
 * Distinct keys give unrelated seeds; two keys share one only by a 2⁻³² coincidence.
 */
export function streamSeed(key: StreamKey): number {
  let h = 0x5eed5eed;
  h = mixInt(h, key.seed);
  h = mixWord(h, hashString(key.attack));
  h = mixInt(h, key.round);
  h = mixInt(h, key.index);
  h = mixInt(h, key.restart);
  h = mixInt(h, key.stream ?? 0);
  return finalize(h ^ 48);
}

/** A fresh generator for the key: the same key always gives the same numbers. */
export function streamRng(key: StreamKey): Rng {
  return new Rng(streamSeed(key));
}

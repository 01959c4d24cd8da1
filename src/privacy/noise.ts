/**
 * Randomness for DP-SGD. Private runs draw Gaussian noise and Poisson sampling decisions from node:crypto
 * (randomFillSync): 53-bit uniforms from the OS CSPRNG, Gaussians by Marsaglia's polar method. Bulwark's seeded Rng
 * (xoshiro128**) is predictable from its seed, so noise drawn from it protects nothing: the seeded source exists
 * only for reproducible tests and is marked `private: false` everywhere it is recorded.
 */
import { randomFillSync } from 'node:crypto';
import { BulwarkError } from '../core/errors.js';
import { Rng } from '../core/rng.js';

/** A source of uniform and Gaussian draws. */
export interface NoiseSource {
  /** True only for the CSPRNG source; false means the run carries no privacy guarantee. */
  readonly private: boolean;
  /** How the draws are made, for the training record. */
  readonly description: string;
  /** Uniform in [0, 1). */
  uniform(): number;
  /** Fills `out` with independent N(0, std²) draws. */
  fillGaussian(out: Float32Array | Float64Array, std: number): void;
}

const TWO_POW_26 = 67108864;
const TWO_POW_53 = 9007199254740992;

/** A uniform source over blocks of 32-bit words: two words make one 53-bit uniform in [0, 1). */
class WordUniforms {
  private words = new Uint32Array(0);
  private pos = 0;
  constructor(private readonly refill: (words: Uint32Array) => void, private readonly block = 16384) {}

  next(): number {
    if (this.pos + 2 > this.words.length) {
      if (this.words.length !== this.block) this.words = new Uint32Array(this.block);
      this.refill(this.words);
      this.pos = 0;
    }
    const hi = this.words[this.pos++]! >>> 5;
    const lo = this.words[this.pos++]! >>> 6;
    return (hi * TWO_POW_26 + lo) / TWO_POW_53;
  }

  /**
   * Gaussians by Marsaglia's polar method: (v₁, v₂) uniform in the unit disc (rejection), then
   * v·√(−2 ln s / s) with s = v₁² + v₂² gives two independent N(0, 1). No trigonometry, one log per pair.
   */
  fillGaussian(out: Float32Array | Float64Array, std: number): void {
    const n = out.length;
    let i = 0;
    while (i < n) {
      const v1 = 2 * this.next() - 1;
      const v2 = 2 * this.next() - 1;
      const s = v1 * v1 + v2 * v2;
      if (s >= 1 || s === 0) continue;
      const m = Math.sqrt((-2 * Math.log(s)) / s) * std;
      out[i++] = v1 * m;
      if (i < n) out[i++] = v2 * m;
    }
  }
}

/**
 * The private source: 53-bit uniforms from node:crypto's CSPRNG (randomFillSync), Gaussians by the polar method.
 * @example const noise = secureNoise(); noise.fillGaussian(buf, sigma * C);
 */
export function secureNoise(): NoiseSource {
  const u = new WordUniforms((w) => randomFillSync(w));
  return { private: true, description: 'node:crypto randomFillSync (CSPRNG), Marsaglia polar Gaussians', uniform: () => u.next(), fillGaussian: (out, std) => u.fillGaussian(out, std) };
}

/**
 * NOT PRIVATE. A seeded source (xoshiro128**) for reproducible tests and benchmarks; anyone who knows or guesses the
 * seed can subtract the noise.
 * @param seed the seed
 */
export function seededNoise(seed: number): NoiseSource {
  const rng = new Rng(seed);
  const u = new WordUniforms((w) => {
    for (let i = 0; i < w.length; i++) w[i] = rng.u32();
  });
  return { private: false, description: `seeded xoshiro128** (seed ${seed}): NOT PRIVATE, for tests only`, uniform: () => u.next(), fillGaussian: (out, std) => u.fillGaussian(out, std) };
}

/**
 * Poisson sampling: each of n examples joins the batch independently with probability q.
 * @param n number of examples
 * @param q sampling rate
 * @param src the uniform source (the CSPRNG in private runs)
 * @returns the sorted indices of the sampled examples
 */
export function poissonSample(n: number, q: number, src: NoiseSource): Int32Array {
  const out: number[] = [];
  for (let i = 0; i < n; i++) if (src.uniform() < q) out.push(i);
  return Int32Array.from(out);
}

/**
 * The source an option names: `secure` (default) or `{ seed }` (NOT PRIVATE).
 * @throws BulwarkError BULWARK_E_ARG for a seed that is not a 32-bit unsigned integer
 */
export function noiseFromOption(opt: 'secure' | { seed: number }): NoiseSource {
  if (opt === 'secure') return secureNoise();
  if (!Number.isSafeInteger(opt.seed) || opt.seed < 0 || opt.seed > 0xffffffff) throw new BulwarkError('BULWARK_E_ARG', `noise seed must be an integer in [0, 2^32), got ${opt.seed}`);
  return seededNoise(opt.seed);
}

/**
 * A throughput measurement of hashing, signing, verifying, encrypting and decrypting one large file.
 * Not run by the tests; call it by hand, e.g.
 * `node -e "import('./dist/src/supplychain/index.js').then(m => m.benchmarkSigning({ sizeMB: 500 })).then(console.log)"`.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { generateKeyPair } from '../crypto/keys.js';
import { decryptFile, encryptFile } from '../crypto/encrypt.js';
import { hashModel } from './manifest.js';
import { signPath, verifyPath } from './sign.js';

/** Options of {@link benchmarkSigning}. */
export interface BenchOptions {
  /** File size in MB (10^6 bytes; default 500). */
  sizeMB?: number;
  /** Folder for the temporary files (default: the OS temp folder). */
  dir?: string;
  /** Also measure encrypt/decrypt (default true). */
  encryption?: boolean;
}

/** Throughputs in MB/s (10^6 bytes per second) and wall times in ms. */
export interface BenchResult {
  sizeMB: number;
  hashMBps: number;
  signMBps: number;
  verifyMBps: number;
  encryptMBps?: number;
  decryptMBps?: number;
  ms: Record<string, number>;
  note: string;
}

/**
 * Writes a temporary file of `sizeMB` pseudo-random MB, then times: hashing alone, signPath (hash + both
 * signatures), verifyPath (both checks + re-hash), and optionally encryptFile/decryptFile. The file is freshly
 * written, so it is mostly in the page cache: the figures are CPU-bound, not disk-bound. Temporary files are
 * removed afterwards.
 */
export async function benchmarkSigning(options: BenchOptions = {}): Promise<BenchResult> {
  const sizeMB = options.sizeMB ?? 500;
  const dir = await fs.promises.mkdtemp(path.join(options.dir ?? os.tmpdir(), 'bulwark-bench-'));
  const file = path.join(dir, 'model.bin');
  const ms: Record<string, number> = {};
  try {
    const block = randomBytes(8 * 1024 * 1024);
    const fh = await fs.promises.open(file, 'w');
    let left = sizeMB * 1e6;
    while (left > 0) {
      const n = Math.min(left, block.length);
      block[0] = (block[0]! + 1) & 0xff;
      await fh.write(block, 0, n);
      left -= n;
    }
    await fh.close();
    const { privateKey, publicKey } = generateKeyPair();
    const time = async (label: string, fn: () => Promise<unknown>): Promise<number> => {
      const t = performance.now();
      await fn();
      ms[label] = performance.now() - t;
      return sizeMB / (ms[label]! / 1000);
    };
    const hashMBps = await time('hash', () => hashModel(file));
    let envelope: Awaited<ReturnType<typeof signPath>>['envelope'] | undefined;
    const signMBps = await time('sign', async () => {
      envelope = (await signPath(file, privateKey)).envelope;
    });
    const verifyMBps = await time('verify', async () => {
      const r = await verifyPath(file, publicKey, envelope!);
      if (!r.valid) throw new Error(`benchmark verification failed: ${r.reasons.join('; ')}`);
    });
    const result: BenchResult = { sizeMB, hashMBps, signMBps, verifyMBps, ms, note: 'page-cached file; MB = 10^6 bytes' };
    if (options.encryption ?? true) {
      result.encryptMBps = await time('encrypt', () => encryptFile(file, `${file}.enc`, publicKey));
      result.decryptMBps = await time('decrypt', () => decryptFile(`${file}.enc`, `${file}.dec`, privateKey));
    }
    privateKey.destroy();
    return result;
  } finally {
    await fs.promises.rm(dir, { recursive: true, force: true });
  }
}

/**
 * Content-addressed blob store: `<root>/blobs/sha256/<hex>`, where hex is the SHA-256 of the bytes.
 *
 * A blob is staged (streamed into `<root>/blobs/tmp/`, hashed on the way, fsynced) and then committed by an atomic
 * rename to its address, followed by an fsync of the folder: a process killed at any point leaves either no blob
 * or the whole blob, never a partial one under a real address. Reads re-hash and refuse bytes that differ.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { BulwarkError } from '../../core/errors.js';
import { makeDirs } from '../../core/fsio.js';
import { AtomicFile } from '../../core/atomic.js';

const CHUNK = 1024 * 1024;
const HEX64 = /^[0-9a-f]{64}$/;

/** A blob written to the temporary area, not yet at its address. */
export interface StagedBlob {
  /** Hex SHA-256 of the bytes. */
  readonly digest: string;
  readonly size: number;
  /** The temporary file (read it for checks before committing). */
  readonly tempPath: string;
  /** Moves the blob to its address (atomic, durable). Idempotent. */
  commit(): Promise<string>;
  /** Removes the temporary file. Never throws. */
  discard(): Promise<void>;
}

async function fsyncDir(dir: string): Promise<void> {
  try {
    const h = await fs.promises.open(dir, 'r');
    try {
      await h.sync();
    } finally {
      await h.close();
    }
  } catch {
    // Some filesystems refuse fsync on a folder; the rename is atomic all the same.
  }
}

/** The blob folder of a registry. */
export class BlobStore {
  /** `<root>/blobs/sha256`. */
  readonly dir: string;
  /** `<root>/blobs/tmp`: staging area on the same filesystem, so the commit is a rename. */
  readonly tmpDir: string;

  constructor(root: string) {
    this.dir = path.join(root, 'blobs', 'sha256');
    this.tmpDir = path.join(root, 'blobs', 'tmp');
  }

  /**
   * The path of a blob.
   * @throws BulwarkError BULWARK_E_REGISTRY_INTEGRITY when `digest` is not 64 lowercase hex characters (stored
   *   metadata must never steer a path)
   */
  pathOf(digest: string): string {
    if (!HEX64.test(digest)) throw new BulwarkError('BULWARK_E_REGISTRY_INTEGRITY', `stored digest ${JSON.stringify(digest.slice(0, 80))} is not a SHA-256 hex digest`);
    return path.join(this.dir, digest);
  }

  /**
   * Streams a file into the staging area, hashing it.
   * @param file the source
   * @param what the argument the file came from, for messages
   * @throws BulwarkError BULWARK_E_FILE_NOT_FOUND, BULWARK_E_FILE_READ, BULWARK_E_FILE_WRITE
   */
  async stage(file: string, what = 'model'): Promise<StagedBlob> {
    let src: fs.promises.FileHandle;
    try {
      src = await fs.promises.open(file, 'r');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') throw new BulwarkError('BULWARK_E_FILE_NOT_FOUND', `${what}: no such file: ${file}`);
      throw new BulwarkError('BULWARK_E_FILE_READ', `${what}: cannot read ${file}: ${(e as Error).message}`);
    }
    try {
      const st = await src.stat();
      if (!st.isFile()) throw new BulwarkError('BULWARK_E_FILE_READ', `${what}: not a regular file: ${file}`, { hint: 'The registry stores single-file models; pack a folder model into one file first.' });
      makeDirs(this.tmpDir);
      const tmp = path.join(this.tmpDir, `${process.pid}-${randomBytes(8).toString('hex')}.tmp`);
      const out = await fs.promises.open(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o644);
      const h = createHash('sha256');
      let size = 0;
      try {
        const buf = Buffer.allocUnsafe(CHUNK);
        for (;;) {
          const { bytesRead } = await src.read(buf, 0, CHUNK, null);
          if (bytesRead === 0) break;
          const chunk = buf.subarray(0, bytesRead);
          h.update(chunk);
          let off = 0;
          while (off < bytesRead) off += (await out.write(chunk, off, bytesRead - off)).bytesWritten;
          size += bytesRead;
        }
        await out.sync();
      } catch (e) {
        await out.close().catch(() => undefined);
        await fs.promises.rm(tmp, { force: true });
        if (e instanceof BulwarkError) throw e;
        throw new BulwarkError('BULWARK_E_FILE_WRITE', `cannot stage ${file} into ${this.tmpDir}: ${(e as Error).message}`);
      }
      await out.close();
      return this.staged(tmp, h.digest('hex'), size);
    } finally {
      await src.close();
    }
  }

  private staged(tmp: string, digest: string, size: number): StagedBlob {
    let done = false;
    return {
      digest,
      size,
      tempPath: tmp,
      commit: async () => {
        const target = this.pathOf(digest);
        if (done) return target;
        try {
          makeDirs(this.dir);
          await fs.promises.chmod(tmp, 0o444);
          // Renaming over an existing blob of the same address replaces it with identical (and checked) bytes,
          // which also repairs a damaged copy.
          await fs.promises.rename(tmp, target);
        } catch (e) {
          await fs.promises.rm(tmp, { force: true }).catch(() => undefined);
          throw new BulwarkError('BULWARK_E_FILE_WRITE', `cannot store blob ${digest}: ${(e as Error).message}`);
        }
        done = true;
        await fsyncDir(this.dir);
        return target;
      },
      discard: async () => {
        if (!done) await fs.promises.rm(tmp, { force: true }).catch(() => undefined);
        done = true;
      },
    };
  }

  /** Whether a blob is present (not whether it is intact). */
  has(digest: string): boolean {
    return fs.existsSync(this.pathOf(digest));
  }

  /**
   * Re-hashes a blob.
   * @returns 'ok', 'missing', or 'corrupt' (present, different bytes or size)
   */
  async check(digest: string, size?: number): Promise<'ok' | 'missing' | 'corrupt'> {
    const p = this.pathOf(digest);
    let fh: fs.promises.FileHandle;
    try {
      fh = await fs.promises.open(p, 'r');
    } catch {
      return 'missing';
    }
    try {
      const h = createHash('sha256');
      const buf = Buffer.allocUnsafe(CHUNK);
      let n = 0;
      for (;;) {
        const { bytesRead } = await fh.read(buf, 0, CHUNK, null);
        if (bytesRead === 0) break;
        h.update(buf.subarray(0, bytesRead));
        n += bytesRead;
      }
      if (size !== undefined && n !== size) return 'corrupt';
      return h.digest('hex') === digest ? 'ok' : 'corrupt';
    } finally {
      await fh.close();
    }
  }

  /**
   * Reads a whole blob into memory and checks its digest.
   * @throws BulwarkError BULWARK_E_REGISTRY_INTEGRITY when the blob is missing or its bytes differ
   */
  async read(digest: string, subject: string): Promise<Buffer> {
    let bytes: Buffer;
    try {
      bytes = await fs.promises.readFile(this.pathOf(digest));
    } catch {
      throw new BulwarkError('BULWARK_E_REGISTRY_INTEGRITY', `${subject}: blob sha256:${digest} is missing from ${this.dir}`);
    }
    if (createHash('sha256').update(bytes).digest('hex') !== digest) {
      throw new BulwarkError('BULWARK_E_REGISTRY_INTEGRITY', `${subject}: blob sha256:${digest} was modified on disk (its bytes no longer hash to its address); refusing to load it`);
    }
    return bytes;
  }

  /**
   * Copies a blob to `dest` atomically, checking its digest on the way: on a mismatch nothing is written.
   * @throws BulwarkError BULWARK_E_REGISTRY_INTEGRITY, BULWARK_E_FILE_WRITE
   */
  async copyTo(digest: string, dest: string, subject: string): Promise<void> {
    let src: fs.promises.FileHandle;
    try {
      src = await fs.promises.open(this.pathOf(digest), 'r');
    } catch {
      throw new BulwarkError('BULWARK_E_REGISTRY_INTEGRITY', `${subject}: blob sha256:${digest} is missing from ${this.dir}`);
    }
    const out = await AtomicFile.create(dest, 0o644, '--out');
    try {
      const h = createHash('sha256');
      const buf = Buffer.allocUnsafe(CHUNK);
      for (;;) {
        const { bytesRead } = await src.read(buf, 0, CHUNK, null);
        if (bytesRead === 0) break;
        const chunk = buf.subarray(0, bytesRead);
        h.update(chunk);
        await out.write(chunk);
      }
      if (h.digest('hex') !== digest) {
        throw new BulwarkError('BULWARK_E_REGISTRY_INTEGRITY', `${subject}: blob sha256:${digest} was modified on disk (its bytes no longer hash to its address); nothing was written`);
      }
      await out.commit();
    } catch (e) {
      await out.abort();
      throw e;
    } finally {
      await src.close();
    }
  }

  /** Addresses of every blob present. */
  list(): string[] {
    try {
      return fs.readdirSync(this.dir).filter((n) => HEX64.test(n));
    } catch {
      return [];
    }
  }

  /** Leftover staging files (from interrupted pushes). */
  leftovers(): string[] {
    try {
      return fs.readdirSync(this.tmpDir).filter((n) => n.endsWith('.tmp'));
    } catch {
      return [];
    }
  }
}

/**
 * Atomic output files that can be written in a stream: bytes go to a fresh temporary file next to the target
 * (created exclusively, with the requested mode), are fsynced, and the file is renamed over the target only on
 * commit. On abort the temporary file is removed, so a failure never leaves a half-written target behind.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { BulwarkError } from './errors.js';
import { makeDirs, removeEmptyDirs, unreplaceableReason } from './fsio.js';

/** A temporary file that becomes `target` on {@link AtomicFile.commit}. */
export class AtomicFile {
  private done = false;

  private constructor(
    /** The final path. */
    readonly target: string,
    /** The temporary path, in the target's folder. */
    readonly tempPath: string,
    private readonly handle: fs.promises.FileHandle,
    private readonly what: string,
    /** Folders create() made for the target, removed again by abort() when left empty. */
    private readonly created: string[] = [],
  ) {}

  /**
   * Creates the temporary file for `target`.
   * @param target the output path
   * @param mode the permission bits of the new file (0o600 for secrets; the umask still applies)
   * @param what what the file is, for messages (e.g. "--out")
   * @throws BulwarkError BULWARK_E_FILE_WRITE
   */
  static async create(target: string, mode: number, what: string): Promise<AtomicFile> {
    const abs = path.resolve(target);
    const dir = path.dirname(abs);
    const created: string[] = [];
    try {
      makeDirs(dir, created);
      const reason = unreplaceableReason(abs);
      if (reason) throw new Error(reason);
      const tmp = path.join(dir, `.${path.basename(abs)}.${randomBytes(8).toString('hex')}.tmp`);
      const handle = await fs.promises.open(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, mode);
      return new AtomicFile(abs, tmp, handle, what, created);
    } catch (e) {
      removeEmptyDirs(created);
      throw new BulwarkError('BULWARK_E_FILE_WRITE', `${what}: cannot create ${target}: ${(e as Error).message}`);
    }
  }

  /** Appends bytes. */
  async write(data: Uint8Array): Promise<void> {
    let off = 0;
    try {
      while (off < data.byteLength) {
        const { bytesWritten } = await this.handle.write(data, off, data.byteLength - off);
        off += bytesWritten;
      }
    } catch (e) {
      throw new BulwarkError('BULWARK_E_FILE_WRITE', `${this.what}: cannot write ${this.target}: ${(e as Error).message}`);
    }
  }

  /**
   * fsyncs, closes and renames the temporary file over the target, then fsyncs the folder.
   * @param options.overwrite false: fail (BULWARK_E_ARG) rather than replace an existing target; the check and
   *   the publication are one atomic step (a hard link), so a file created meanwhile is never clobbered
   */
  async commit(options: { overwrite?: boolean } = {}): Promise<void> {
    if (this.done) throw new BulwarkError('BULWARK_E_INTERNAL', 'AtomicFile committed twice');
    try {
      await this.handle.sync();
      await this.handle.close();
      this.done = true;
      if (options.overwrite === false) {
        try {
          await fs.promises.link(this.tempPath, this.target);
        } catch (e) {
          const code = (e as NodeJS.ErrnoException).code;
          if (code === 'EEXIST') throw new BulwarkError('BULWARK_E_ARG', `${this.what}: ${this.target} already exists; refusing to overwrite it`);
          if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'ENOSYS') throw e;
          // Filesystems without hard links: check, then rename (not atomic against a concurrent creator).
          if (fs.existsSync(this.target)) throw new BulwarkError('BULWARK_E_ARG', `${this.what}: ${this.target} already exists; refusing to overwrite it`);
          await fs.promises.rename(this.tempPath, this.target);
        }
        await fs.promises.rm(this.tempPath, { force: true });
      } else {
        // Checked again: a device or FIFO may have appeared at the target while the file was streamed.
        const reason = unreplaceableReason(this.target);
        if (reason) throw new Error(reason);
        await fs.promises.rename(this.tempPath, this.target);
      }
    } catch (e) {
      await this.abort();
      if (e instanceof BulwarkError) throw e;
      throw new BulwarkError('BULWARK_E_FILE_WRITE', `${this.what}: cannot write ${this.target}: ${(e as Error).message}`);
    }
    try {
      const dh = await fs.promises.open(path.dirname(this.target), 'r');
      try {
        await dh.sync();
      } finally {
        await dh.close();
      }
    } catch {
      // Some filesystems refuse fsync on a folder; the rename is atomic all the same.
    }
  }

  /** Closes and removes the temporary file. Never throws; safe to call after commit or twice. */
  async abort(): Promise<void> {
    if (!this.done) {
      this.done = true;
      await this.handle.close().catch(() => undefined);
    }
    await fs.promises.rm(this.tempPath, { force: true }).catch(() => undefined);
    // After a commit the folders hold the target and are not empty, so this removes nothing then.
    removeEmptyDirs(this.created);
  }
}

/**
 * Writes a whole file atomically with the given mode (e.g. 0o600 for a private key).
 * @param options.overwrite false: refuse to replace an existing file (BULWARK_E_ARG)
 * @throws BulwarkError BULWARK_E_FILE_WRITE, BULWARK_E_ARG
 */
export async function writeFileAtomicMode(target: string, data: Uint8Array | string, mode: number, what: string, options: { overwrite?: boolean } = {}): Promise<void> {
  const f = await AtomicFile.create(target, mode, what);
  try {
    await f.write(typeof data === 'string' ? Buffer.from(data, 'utf8') : data);
    await f.commit(options);
  } catch (e) {
    await f.abort();
    throw e;
  }
}

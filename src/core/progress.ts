/**
 * A one-line progress bar for long work, drawn on a TTY stream (stderr by default) and silent elsewhere, so piped
 * output and --json stay clean.
 */

/** A progress bar handle. */
export interface Progress {
  /** Sets the amount done (of `total`) and an optional status text; redraws at most every 100 ms. */
  update(done: number, status?: string): void;
  /** Clears the line. */
  end(): void;
}

/** Options of {@link progressBar}. */
export interface ProgressOptions {
  /** Where to draw; default process.stderr. */
  stream?: NodeJS.WriteStream;
  /** Force drawing on or off; default: when the stream is a TTY. */
  enabled?: boolean;
}

/**
 * Starts a progress bar.
 * @param label text before the bar, e.g. "epoch 1/3"
 * @param total the amount that means done
 * @param opts stream and whether to draw
 * @returns the handle; a no-op when not drawing
 * @example const bar = progressBar('train', steps); bar.update(i, `loss 0.12`); bar.end();
 */
export function progressBar(label: string, total: number, opts: ProgressOptions = {}): Progress {
  const stream = opts.stream ?? process.stderr;
  const enabled = opts.enabled ?? stream.isTTY === true;
  if (!enabled) return { update() {}, end() {} };
  let last = 0;
  const width = 24;
  const draw = (done: number, status: string): void => {
    const frac = total > 0 ? Math.min(1, done / total) : 1;
    const fill = Math.round(frac * width);
    const line = `${label} [${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${done}/${total} ${status}`;
    const cols = stream.columns || 100;
    stream.write(`\r${line.slice(0, cols - 1)}\x1b[K`);
  };
  return {
    update(done, status = '') {
      const now = Date.now();
      if (now - last < 100 && done < total) return;
      last = now;
      draw(done, status);
    },
    end() {
      stream.write('\r\x1b[K');
    },
  };
}

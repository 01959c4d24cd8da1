/**
 * Progress of a long evaluation or assessment on a TTY: one bar per stage (ensemble, curve, checks, scan-file),
 * replaced when the stage changes, with the running attack and eps as status and the elapsed time.
 */
import { progressBar, type Progress } from '../core/progress.js';

/** A progress event of an evaluation or a section. */
export interface StageEvent {
  stage: string;
  done: number;
  total: number;
  status?: string;
  section?: string;
}

/**
 * A callback that draws stage progress bars on stderr (when it is a TTY and `enabled` is not false).
 * @returns the callback and `end()` to clear the last bar
 * @example const p = stageProgress(); await evaluateRobustness(m, x, y, { ..., onProgress: p.update }); p.end();
 */
export function stageProgress(enabled?: boolean): { update: (e: StageEvent) => void; end: () => void } {
  let bar: Progress | undefined;
  let key = '';
  const t0 = Date.now();
  return {
    update(e) {
      const k = `${e.section ?? ''}/${e.stage}`;
      if (k !== key) {
        bar?.end();
        key = k;
        bar = progressBar(e.section && e.section !== e.stage ? `${e.section}: ${e.stage}` : e.stage, e.total, enabled === undefined ? {} : { enabled });
      }
      bar!.update(e.done, `${e.status ?? ''} ${((Date.now() - t0) / 1000).toFixed(0)} s`.trim());
    },
    end() {
      bar?.end();
      bar = undefined;
    },
  };
}

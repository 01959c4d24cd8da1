import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import { BulwarkError } from '../src/core/errors.js';
import { GraphBuilder } from '../src/onnx/builder.js';
import { ELEM, emptyGraph, writeModelBytes } from '../src/onnx/ir.js';

/** The repository root (tests run from dist/test). */
export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** ‖a − b‖₂ / ‖b‖₂ (absolute when b is zero). */
export function relL2(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i]! - b[i]!) ** 2;
    den += b[i]! ** 2;
  }
  return den === 0 ? Math.sqrt(num) : Math.sqrt(num / den);
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/**
 * Runs the CLI in-process (src/cli/main.ts) and captures what it writes as text; the test runner's own binary
 * messages pass through to the real streams.
 */
export async function runCli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const { main } = await import('../src/cli/main.js');
  const out: string[] = [];
  const err: string[] = [];
  const ow = process.stdout.write;
  const ew = process.stderr.write;
  const grab = (sink: string[], orig: typeof process.stdout.write, stream: NodeJS.WriteStream) =>
    ((chunk: unknown, ...rest: unknown[]) => {
      if (typeof chunk === 'string') {
        sink.push(chunk);
        return true;
      }
      return (orig as (...a: unknown[]) => boolean).call(stream, chunk, ...rest);
    }) as typeof process.stdout.write;
  process.stdout.write = grab(out, ow, process.stdout);
  process.stderr.write = grab(err, ew, process.stderr);
  let code: number;
  try {
    code = await main(args);
  } finally {
    process.stdout.write = ow;
    process.stderr.write = ew;
  }
  return { code, stdout: out.join(''), stderr: err.join('') };
}

/** The JSON object on the last line of a command's stdout (the --json contract). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function lastJson(s: string): Record<string, any> {
  const lines = s.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]!);
}

/** An assert.throws/rejects predicate: a BulwarkError with this code (and message pattern). */
export function fails(code: string, pattern?: RegExp): (e: unknown) => boolean {
  return (e) => {
    assert.ok(e instanceof BulwarkError, `expected a BulwarkError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    if (pattern) assert.match(e.message, pattern);
    return true;
  };
}

/** Writes a 4-feature model whose output passes through Hardmax (no gradient rule) into `dir`; returns its path. */
export function hardmaxModel(dir: string): string {
  const g = emptyGraph({ name: 'hm', producer: 'test', inputs: [{ name: 'input', elemType: ELEM.FLOAT, shape: ['N', 4] }] });
  const b = new GraphBuilder(g);
  const w = b.floats('w', Array.from({ length: 12 }, (_, i) => (i % 5) / 5 - 0.4), [4, 3]);
  const out = b.node('Hardmax', [b.node('MatMul', ['input', w])], {}, 'hardmax', 'output');
  g.outputs.push({ name: out, elemType: ELEM.FLOAT, shape: ['N', 3] });
  const file = path.join(dir, 'hardmax.onnx');
  fs.writeFileSync(file, writeModelBytes(g));
  return file;
}

/** A CLI run that ended in a coded user error: exit 2, `bulwark: CODE: ...`, a hint, and no stack trace. */
export function assertUserError(r: { code: number | null; stderr: string }, code: string, pattern?: RegExp): void {
  assert.equal(r.code, 2, `exit code ${r.code}; stderr: ${r.stderr}`);
  assert.match(r.stderr, new RegExp(`bulwark: ${code}: `));
  assert.match(r.stderr, /\nhint: /);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  if (pattern) assert.match(r.stderr, pattern);
}

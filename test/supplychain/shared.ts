import * as fs from 'node:fs';
import pg from 'pg';
import { emptyGraph, writeModelBytes } from '../../src/onnx/ir.js';

/** Writes a valid ONNX model (one MatMul, x [N,4] -> y [N,n]) whose weights depend on `seed`, and returns its bytes. */
export function makeOnnx(file: string, seed: number, n = 256): Buffer {
  const w = new Float32Array(4 * n);
  for (let i = 0; i < w.length; i++) w[i] = Math.sin(i * 0.37 + seed);
  const g = emptyGraph({ name: 'g', producer: 'bulwark-test', inputs: [{ name: 'x', elemType: 1, shape: ['N', 4] }] });
  g.nodes.push({ name: 'mm', opType: 'MatMul', domain: '', inputs: ['x', 'W'], outputs: ['y'], attrs: new Map() });
  g.outputs.push({ name: 'y', elemType: 1, shape: ['N', n] });
  g.initializers.set('W', { dataType: 1, dims: [4, n], data: w });

  const bytes = Buffer.from(writeModelBytes(g));
  fs.writeFileSync(file, bytes);
  return bytes;
}

/**
 * The URL of a reachable PostgreSQL test database ($BULWARK_TEST_PG, or the local server as root or postgres), or
 * null outside CI. With CI=true an unreachable server fails the suite instead of skipping it.
 */
export async function findPostgres(): Promise<string | null> {
  const candidates = process.env['BULWARK_TEST_PG'] ? [process.env['BULWARK_TEST_PG']] : ['postgres://root@127.0.0.1:5432/test', 'postgres://postgres@127.0.0.1:5432/test'];
  const errors: string[] = [];
  for (const url of candidates) {
    const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 });
    try {
      await c.connect();
      await c.end();
      return url;
    } catch (e) {
      errors.push(`${url}: ${(e as Error).message}`);
      await c.end().catch(() => undefined);
    }
  }
  if (process.env['CI'] === 'true') throw new Error(`PostgreSQL is required in CI and is not reachable (${errors.join('; ')}); .ci/run starts it`);
  return null;
}

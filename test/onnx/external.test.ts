import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { encodeModel, type ModelProto } from '../../src/onnx/proto.js';
import { ELEM, readModel } from '../../src/onnx/ir.js';
import { BulwarkError } from '../../src/core/errors.js';
import { repoRoot, assertUserError } from '../helpers.js';

const bin = path.join(repoRoot, 'bin', 'bulwark.js');

/** y = x·W with W [2,2] float in external data at `location` (length given when `length` is). */
function extModel(location: string, length?: number): Uint8Array {
  const externalData = [{ key: 'location', value: location }, ...(length === undefined ? [] : [{ key: 'offset', value: '0' }, { key: 'length', value: String(length) }])];
  const proto: ModelProto = {
    irVersion: 7,
    opsetImport: [{ domain: '', version: 13 }],
    graph: {
      name: 'mm',
      node: [{ opType: 'MatMul', input: ['x', 'W'], output: ['y'], name: 'mm' }],
      initializer: [{ name: 'W', dims: [2, 2], dataType: ELEM.FLOAT, dataLocation: 1, externalData }],
      input: [{ name: 'x', type: { tensorType: { elemType: ELEM.FLOAT, shape: { dim: [{ dimParam: 'N' }, { dimValue: 2 }] } } } }],
      output: [{ name: 'y', type: { tensorType: { elemType: ELEM.FLOAT, shape: { dim: [{ dimParam: 'N' }, { dimValue: 2 }] } } } }],
    },
  };
  return encodeModel(proto);
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-ext2-'));
fs.mkdirSync(path.join(dir, 'sub'));
fs.writeFileSync(path.join(dir, 'w.bin'), Buffer.from(new Float32Array([1, 2, 3, 4]).buffer));

function model(name: string, location: string, length?: number): string {
  const f = path.join(dir, name);
  fs.writeFileSync(f, extModel(location, length));
  return f;
}

test('external data that is a folder is refused as not a regular file, with or without a length', () => {
  for (const len of [undefined, 16, 0]) {
    assert.throws(() => readModel(model('dir.onnx', 'sub', len)), (e: unknown) => e instanceof BulwarkError && e.code === 'BULWARK_E_FILE_READ' && /"sub" is a folder, not a regular file/.test(e.message), String(len));
  }
  assert.equal(readModel(model('ok.onnx', 'w.bin')).initializers.get('W')!.data.length, 4);
});

test('external data that is a FIFO is refused at once instead of blocking', () => {
  const fifo = path.join(dir, 'fifo');
  const mk = spawnSync('mkfifo', [fifo]);
  assert.equal(mk.status, 0, 'mkfifo (coreutils) makes the FIFO');
  for (const len of [undefined, 0, 16]) {
    const f = model('fifo.onnx', 'fifo', len);
    const r = spawnSync(process.execPath, [bin, 'info', f], { encoding: 'utf8', timeout: 20_000 });
    assert.notEqual(r.signal, 'SIGTERM', 'info blocked on the FIFO');
    assertUserError({ code: r.status, stderr: r.stderr }, 'BULWARK_E_FILE_READ', /"fifo" is a FIFO/);
  }
});

test("missing external data says paths resolve from the model's folder", () => {
  assert.throws(() => readModel(model('missing.onnx', 'nope.bin', 16)), (e: unknown) => e instanceof BulwarkError && e.code === 'BULWARK_E_FILE_NOT_FOUND' && /model's folder/.test(e.message) && /model's folder \(not the current directory\)/.test(e.hint));
});

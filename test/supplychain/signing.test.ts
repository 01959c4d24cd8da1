import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { inspect } from 'node:util';
import { BulwarkError } from '../../src/core/errors.js';
import {
  FOLDER_SIGNATURE_NAME,
  assertVerified,
  IN_TOTO_PAYLOAD_TYPE,
  PREDICATE_TYPE,
  STATEMENT_TYPE,
  generateKeyPair,
  hashModel,
  makeEnvelope,
  parseEnvelope,
  parsePrivateKey,
  parsePublicKey,
  parseStatement,
  preAuthEncoding,
  readSignature,
  rootDigest,
  saveKeyPair,
  serializePrivateKey,
  serializePublicKey,
  signPath,
  verifyPath,
  writeSignature,
  type BulwarkKeyPair,
  type DsseEnvelope,
} from '../../src/supplychain/index.js';

let tmp: string;
let A: BulwarkKeyPair;
let B: BulwarkKeyPair;

function mkModel(name = 'model'): string {
  const dir = fs.mkdtempSync(path.join(tmp, `${name}-`));
  const root = path.join(dir, name);
  fs.mkdirSync(path.join(root, 'weights', 'shards'), { recursive: true });
  fs.writeFileSync(path.join(root, 'model.onnx'), Buffer.from('onnx-graph-bytes'));
  fs.writeFileSync(path.join(root, 'config.json'), '{"layers": 3}');
  fs.writeFileSync(path.join(root, 'weights', 'shards', 'w0.bin'), Buffer.alloc(10_000, 7));
  fs.writeFileSync(path.join(root, 'weights', 'w1.bin'), Buffer.alloc(5_000, 9));
  fs.writeFileSync(path.join(root, 'empty.txt'), '');
  return root;
}

async function signFolder(root: string, kp = A): Promise<DsseEnvelope> {
  const r = await signPath(root, kp.privateKey);
  await writeSignature(r.sigPath, r.envelope);
  return r.envelope;
}

function decodePayload(env: DsseEnvelope): Record<string, any> {
  return JSON.parse(Buffer.from(env.payload, 'base64').toString('utf8'));
}

function clone(env: DsseEnvelope): DsseEnvelope {
  return JSON.parse(JSON.stringify(env));
}

function flipBase64Byte(b64: string, index: number): string {
  const b = Buffer.from(b64, 'base64');
  b[index] = b[index]! ^ 0x01;
  return b.toString('base64');
}

before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-signing-test-'));
  A = generateKeyPair();
  B = generateKeyPair();
});

after(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('DSSE', () => {
  test('PAE matches the DSSE v1 spec test vector', () => {
    // From secure-systems-lab/dsse protocol.md: PAE("http://example.com/HelloWorld", "hello world").
    const pae = preAuthEncoding('http://example.com/HelloWorld', Buffer.from('hello world'));
    assert.equal(pae.toString('utf8'), 'DSSEv1 29 http://example.com/HelloWorld 11 hello world');
    assert.deepEqual(pae, Buffer.from('DSSEv1 29 http://example.com/HelloWorld 11 hello world', 'ascii'));
    assert.equal(pae.length, 54);
  });

  test('PAE uses byte lengths (UTF-8) and handles an empty payload', () => {
    assert.equal(preAuthEncoding('', new Uint8Array()).toString('utf8'), 'DSSEv1 0  0 ');
    const pae = preAuthEncoding('t/é', Buffer.from('ü', 'utf8'));
    assert.equal(pae.toString('utf8'), 'DSSEv1 4 t/é 2 ü');
  });

  test('envelope parsing is strict', () => {
    const good = makeEnvelope(IN_TOTO_PAYLOAD_TYPE, Buffer.from('{}'), [{ keyid: 'k', sig: Buffer.from([1, 2, 3]) }]);
    assert.equal(parseEnvelope(good).payload.toString(), '{}');
    const bad: unknown[] = [
      'not json',
      [],
      { payloadType: 1, payload: '', signatures: [{ sig: 'AQ==' }] },
      { payloadType: 't', payload: 'e30=!', signatures: [{ sig: 'AQ==' }] },
      { payloadType: 't', payload: 'e30=', signatures: [] },
      { payloadType: 't', payload: 'e30=', signatures: [{ sig: '' }] },
      { payloadType: 't', payload: 'e30=', signatures: [{ sig: 'A Q==' }] },
      { payloadType: 't', payload: 'e30=', signatures: [{ keyid: 5, sig: 'AQ==' }] },
    ];
    for (const b of bad) {
      assert.throws(() => parseEnvelope(typeof b === 'string' ? b : JSON.stringify(b)), (e: unknown) => e instanceof BulwarkError && e.code === 'BULWARK_E_SIG_FORMAT', JSON.stringify(b));
    }
  });
});

describe('keys', () => {
  test('key files round-trip; key ids are SHA-256 of the public material', () => {
    const pubText = serializePublicKey(A.publicKey);
    const privText = serializePrivateKey(A.privateKey);
    const pub = parsePublicKey(pubText);
    const priv = parsePrivateKey(privText);
    assert.equal(pub.signing.keyId, A.publicKey.signing.keyId);
    assert.equal(priv.publicKey.encryption.keyId, A.publicKey.encryption.keyId);
    const s = A.publicKey.signing;
    assert.equal(s.keyId, createHash('sha256').update(s.ed25519Raw).update(s.mlDsa65).digest('hex'));
    assert.equal(s.ed25519KeyId, `ed25519:${createHash('sha256').update(s.ed25519Raw).digest('hex')}`);
    assert.equal(s.mlDsa65KeyId, `ml-dsa-65:${createHash('sha256').update(s.mlDsa65).digest('hex')}`);
    const e = A.publicKey.encryption;
    assert.equal(e.keyId, createHash('sha256').update(e.x25519Raw).update(e.mlKem768).digest('hex'));
    assert.notEqual(A.publicKey.signing.keyId, B.publicKey.signing.keyId);
    const j = JSON.parse(pubText);
    assert.equal(j.format, 'bulwark-key');
    assert.equal(j.version, 1);
    assert.equal(j.kind, 'public');
    assert.ok(!pubText.includes('PRIVATE KEY') && !('seed' in j.signing.mlDsa65));
    // A private key file also works where a public key is needed.
    assert.equal(parsePublicKey(privText).signing.keyId, A.publicKey.signing.keyId);
  });

  test('a private key never prints its secrets', () => {
    const privText = serializePrivateKey(A.privateKey);
    const j = JSON.parse(privText);
    const secrets = [j.signing.ed25519.privateKeyPem, j.signing.mlDsa65.seed, j.encryption.x25519.privateKeyPem, j.encryption.mlKem768.seed];
    for (const shown of [inspect(A.privateKey), JSON.stringify(A.privateKey), String(A.privateKey), inspect({ k: A.privateKey })]) {
      for (const s of secrets) assert.ok(!shown.includes(s.slice(40, 70)), shown);
      assert.match(shown, /redacted/);
    }
  });

  test('bad key files are refused with BULWARK_E_KEY', () => {
    const privText = serializePrivateKey(A.privateKey);
    const isKeyErr = (e: unknown) => e instanceof BulwarkError && e.code === 'BULWARK_E_KEY';
    assert.throws(() => parsePrivateKey(serializePublicKey(A.publicKey)), isKeyErr);
    assert.throws(() => parsePublicKey('{'), isKeyErr);
    assert.throws(() => parsePublicKey(JSON.stringify({ format: 'bulwark-key', version: 2, kind: 'public' })), isKeyErr);
    const j = JSON.parse(privText);
    j.signing.keyId = '0'.repeat(64);
    assert.throws(() => parsePrivateKey(JSON.stringify(j)), isKeyErr);
    // Public half swapped for another key's: the private part no longer matches.
    const jb = JSON.parse(serializePublicKey(B.publicKey));
    const mixed = JSON.parse(privText);
    mixed.signing.mlDsa65.publicKey = jb.signing.mlDsa65.publicKey;
    delete mixed.signing.keyId;
    delete mixed.signing.mlDsa65.keyId;
    assert.throws(() => parsePrivateKey(JSON.stringify(mixed)), isKeyErr);
    const seedless = JSON.parse(privText);
    seedless.encryption.mlKem768.seed = 'AAAA';
    assert.throws(() => parsePrivateKey(JSON.stringify(seedless)), isKeyErr);
  });

  test('saveKeyPair writes KEY with mode 0600 and KEY.pub, and refuses to overwrite', async () => {
    const out = path.join(fs.mkdtempSync(path.join(tmp, 'keys-')), 'key');
    const paths = await saveKeyPair(out, A);
    assert.equal(paths.publicKey, `${out}.pub`);
    if (process.platform !== 'win32') assert.equal(fs.statSync(out).mode & 0o777, 0o600);
    assert.equal(parsePrivateKey(fs.readFileSync(out, 'utf8')).publicKey.signing.keyId, A.publicKey.signing.keyId);
    await assert.rejects(saveKeyPair(out, B), (e: unknown) => e instanceof BulwarkError && e.code === 'BULWARK_E_ARG');
    await saveKeyPair(out, B, { force: true });
    assert.equal(parsePublicKey(fs.readFileSync(`${out}.pub`, 'utf8')).signing.keyId, B.publicKey.signing.keyId);
  });
});

describe('sign and verify', () => {
  test('a signed folder verifies; the statement follows the OpenSSF model signing layout', async () => {
    const root = mkModel();
    const r = await signPath(root, A.privateKey);
    assert.equal(r.sigPath, path.join(root, FOLDER_SIGNATURE_NAME));
    await writeSignature(r.sigPath, r.envelope);

    const env = r.envelope;
    assert.equal(env.payloadType, 'application/vnd.in-toto+json');
    assert.deepEqual(env.signatures.map((s) => s.keyid), [A.publicKey.signing.ed25519KeyId, A.publicKey.signing.mlDsa65KeyId]);
    const st = decodePayload(env);
    assert.equal(st._type, STATEMENT_TYPE);
    assert.equal(st.predicateType, PREDICATE_TYPE);
    assert.equal(st.subject.length, 1);
    assert.equal(st.subject[0].name, 'model');
    const names = st.predicate.resources.map((x: { name: string }) => x.name);
    assert.deepEqual(names, ['config.json', 'empty.txt', 'model.onnx', 'weights/shards/w0.bin', 'weights/w1.bin']);
    for (const res of st.predicate.resources) {
      assert.equal(res.algorithm, 'sha256');
      const want = createHash('sha256').update(fs.readFileSync(path.join(root, ...res.name.split('/')))).digest('hex');
      assert.equal(res.digest, want);
    }
    assert.equal(st.subject[0].digest.sha256, rootDigest(st.predicate.resources));
    assert.deepEqual(st.predicate.serialization, { method: 'files', hash_type: 'sha256', allow_symlinks: false, ignore_paths: ['model.sig'] });

    const v = await verifyPath(root, A.publicKey);
    assert.equal(v.valid, true, v.reasons.join('; '));
    assert.deepEqual(v.reasons, []);
    assert.deepEqual(v.signatures, { ed25519: 'valid', mlDsa65: 'valid' });
    assert.equal(v.files.length, 5);
    assertVerified(v);
    assert.ok(v.files.every((f) => f.status === 'ok'));
    // Verifying from the parsed file or from an envelope object gives the same answer.
    assert.equal((await verifyPath(root, A.publicKey, readSignature(r.sigPath).envelope)).valid, true);
  });

  test('a single file signs to <file>.sig and verifies', async () => {
    const dir = fs.mkdtempSync(path.join(tmp, 'single-'));
    const f = path.join(dir, 'net.onnx');
    fs.writeFileSync(f, Buffer.from('abc'));
    const r = await signPath(f, A.privateKey);
    assert.equal(r.sigPath, `${f}.sig`);
    await writeSignature(r.sigPath, r.envelope);
    const st = decodePayload(r.envelope);
    assert.deepEqual(st.predicate.resources, [{ name: 'net.onnx', algorithm: 'sha256', digest: createHash('sha256').update('abc').digest('hex') }]);
    assert.equal((await verifyPath(f, A.publicKey)).valid, true);
    fs.writeFileSync(f, Buffer.from('abd'));
    const v = await verifyPath(f, A.publicKey);
    assert.equal(v.valid, false);
    assert.deepEqual(v.files.map((x) => [x.name, x.status]), [['net.onnx', 'modified']]);
  });

  test('one changed byte fails and names the file', async () => {
    const root = mkModel();
    await signFolder(root);
    const w = path.join(root, 'weights', 'shards', 'w0.bin');
    const buf = fs.readFileSync(w);
    buf[4321] = buf[4321]! ^ 0x80;
    fs.writeFileSync(w, buf);
    const v = await verifyPath(root, A.publicKey);
    assert.equal(v.valid, false);
    assert.deepEqual(v.signatures, { ed25519: 'valid', mlDsa65: 'valid' });
    assert.deepEqual(v.files.filter((f) => f.status !== 'ok').map((f) => [f.name, f.status]), [['weights/shards/w0.bin', 'modified']]);
    assert.match(v.reasons.join('\n'), /modified: weights\/shards\/w0\.bin/);
    assert.throws(() => assertVerified(v), (e: unknown) => e instanceof BulwarkError && e.code === 'BULWARK_E_SIGNATURE' && e.exitCode === 1 && /w0\.bin/.test(e.message));
  });

  test('a renamed file fails (missing + added)', async () => {
    const root = mkModel();
    await signFolder(root);
    fs.renameSync(path.join(root, 'config.json'), path.join(root, 'config2.json'));
    const v = await verifyPath(root, A.publicKey);
    assert.equal(v.valid, false);
    assert.deepEqual(v.files.filter((f) => f.status !== 'ok').map((f) => [f.name, f.status]), [['config.json', 'missing'], ['config2.json', 'added']]);
  });

  test('an added file fails', async () => {
    const root = mkModel();
    await signFolder(root);
    fs.writeFileSync(path.join(root, 'weights', 'evil.py'), 'import os');
    const v = await verifyPath(root, A.publicKey);
    assert.equal(v.valid, false);
    assert.deepEqual(v.files.filter((f) => f.status !== 'ok').map((f) => [f.name, f.status]), [['weights/evil.py', 'added']]);
    assert.match(v.reasons.join('\n'), /weights\/evil\.py/);
  });

  test('an added empty folder does not matter, an added empty file does', async () => {
    const root = mkModel();
    await signFolder(root);
    fs.mkdirSync(path.join(root, 'new-folder'));
    assert.equal((await verifyPath(root, A.publicKey)).valid, true);
    fs.writeFileSync(path.join(root, 'new-folder', 'x'), '');
    assert.equal((await verifyPath(root, A.publicKey)).valid, false);
  });

  test('a removed file fails', async () => {
    const root = mkModel();
    await signFolder(root);
    fs.rmSync(path.join(root, 'empty.txt'));
    const v = await verifyPath(root, A.publicKey);
    assert.equal(v.valid, false);
    assert.deepEqual(v.files.filter((f) => f.status !== 'ok').map((f) => [f.name, f.status]), [['empty.txt', 'missing']]);
  });

  test('a signature from another key fails', async () => {
    const root = mkModel();
    await signFolder(root, B);
    const v = await verifyPath(root, A.publicKey);
    assert.equal(v.valid, false);
    assert.deepEqual(v.signatures, { ed25519: 'missing', mlDsa65: 'missing' });
    assert.deepEqual(v.files, []);
    // Relabelling B's signatures with A's keyids does not help.
    const env = clone(readSignature(path.join(root, 'model.sig')).envelope);
    env.signatures[0]!.keyid = A.publicKey.signing.ed25519KeyId;
    env.signatures[1]!.keyid = A.publicKey.signing.mlDsa65KeyId;
    const v2 = await verifyPath(root, A.publicKey, env);
    assert.equal(v2.valid, false);
    assert.deepEqual(v2.signatures, { ed25519: 'invalid', mlDsa65: 'invalid' });
  });

  describe('both halves of the hybrid signature are checked', () => {
    let root: string;
    let env: DsseEnvelope;
    before(async () => {
      root = mkModel();
      env = await signFolder(root);
    });

    test('corrupting only the Ed25519 signature fails', async () => {
      const e = clone(env);
      e.signatures[0]!.sig = flipBase64Byte(e.signatures[0]!.sig, 10);
      const v = await verifyPath(root, A.publicKey, e);
      assert.equal(v.valid, false);
      assert.deepEqual(v.signatures, { ed25519: 'invalid', mlDsa65: 'valid' });
      assert.match(v.reasons.join('\n'), /Ed25519 signature does not verify/);
    });

    test('corrupting only the ML-DSA-65 signature fails', async () => {
      const e = clone(env);
      e.signatures[1]!.sig = flipBase64Byte(e.signatures[1]!.sig, 1000);
      const v = await verifyPath(root, A.publicKey, e);
      assert.equal(v.valid, false);
      assert.deepEqual(v.signatures, { ed25519: 'valid', mlDsa65: 'invalid' });
      assert.match(v.reasons.join('\n'), /ML-DSA-65 signature does not verify/);
    });

    test('a truncated ML-DSA-65 signature fails (no exception)', async () => {
      const e = clone(env);
      e.signatures[1]!.sig = Buffer.from(e.signatures[1]!.sig, 'base64').subarray(0, 100).toString('base64');
      const v = await verifyPath(root, A.publicKey, e);
      assert.deepEqual(v.signatures, { ed25519: 'valid', mlDsa65: 'invalid' });
    });

    test('dropping the Ed25519 signature fails', async () => {
      const e = clone(env);
      e.signatures = [e.signatures[1]!];
      const v = await verifyPath(root, A.publicKey, e);
      assert.equal(v.valid, false);
      assert.deepEqual(v.signatures, { ed25519: 'missing', mlDsa65: 'valid' });
    });

    test('dropping the ML-DSA-65 signature fails', async () => {
      const e = clone(env);
      e.signatures = [e.signatures[0]!];
      const v = await verifyPath(root, A.publicKey, e);
      assert.equal(v.valid, false);
      assert.deepEqual(v.signatures, { ed25519: 'valid', mlDsa65: 'missing' });
    });

    test("replacing one half with another key's signature over the same payload fails", async () => {
      // B signs the very same payload; splice B's ML-DSA signature under A's keyid.
      const payload = Buffer.from(env.payload, 'base64');
      const pae = preAuthEncoding(env.payloadType, payload);
      const e = clone(env);
      e.signatures[1]!.sig = Buffer.from(B.privateKey.signMlDsa65(pae)).toString('base64');
      const v = await verifyPath(root, A.publicKey, e);
      assert.deepEqual(v.signatures, { ed25519: 'valid', mlDsa65: 'invalid' });
    });

    test('a duplicate signature entry fails; an extra unknown signature is ignored with a warning', async () => {
      const dup = clone(env);
      dup.signatures.push({ ...dup.signatures[0]! });
      const v = await verifyPath(root, A.publicKey, dup);
      assert.equal(v.valid, false);
      assert.equal(v.signatures.ed25519, 'duplicate');

      const extra = clone(env);
      extra.signatures.push({ keyid: 'someone-else', sig: Buffer.alloc(64, 1).toString('base64') });
      const v2 = await verifyPath(root, A.publicKey, extra);
      assert.equal(v2.valid, true, v2.reasons.join('; '));
      assert.equal(v2.warnings.length, 1);
    });

    test('a modified payload fails both signatures', async () => {
      const st = decodePayload(env);
      st.predicate.resources[0].digest = 'f'.repeat(64);
      const e = clone(env);
      e.payload = Buffer.from(JSON.stringify(st)).toString('base64');
      const v = await verifyPath(root, A.publicKey, e);
      assert.deepEqual(v.signatures, { ed25519: 'invalid', mlDsa65: 'invalid' });
      assert.equal(v.valid, false);
      // The payload type is signed too.
      const t = clone(env);
      t.payloadType = 'application/json';
      assert.deepEqual((await verifyPath(root, A.publicKey, t)).signatures, { ed25519: 'invalid', mlDsa65: 'invalid' });
    });
  });

  test('a properly signed but unsafe or inconsistent manifest is rejected', async () => {
    const root = mkModel();
    const good = decodePayload(await signFolder(root));
    const signRaw = (statement: unknown): DsseEnvelope => {
      const payload = Buffer.from(JSON.stringify(statement));
      const pae = preAuthEncoding(IN_TOTO_PAYLOAD_TYPE, payload);
      return makeEnvelope(IN_TOTO_PAYLOAD_TYPE, payload, [
        { keyid: A.publicKey.signing.ed25519KeyId, sig: A.privateKey.signEd25519(pae) },
        { keyid: A.publicKey.signing.mlDsa65KeyId, sig: A.privateKey.signMlDsa65(pae) },
      ]);
    };
    const escape = JSON.parse(JSON.stringify(good));
    escape.predicate.resources.unshift({ name: '../../etc/passwd', algorithm: 'sha256', digest: 'a'.repeat(64) });
    escape.subject[0].digest.sha256 = rootDigest(escape.predicate.resources);
    let v = await verifyPath(root, A.publicKey, signRaw(escape));
    assert.equal(v.valid, false);
    assert.match(v.reasons.join('\n'), /not a safe relative POSIX path/);

    const unsorted = JSON.parse(JSON.stringify(good));
    unsorted.predicate.resources.reverse();
    unsorted.subject[0].digest.sha256 = rootDigest(unsorted.predicate.resources);
    v = await verifyPath(root, A.publicKey, signRaw(unsorted));
    assert.match(v.reasons.join('\n'), /not sorted/);

    const badRoot = JSON.parse(JSON.stringify(good));
    badRoot.subject[0].digest.sha256 = '0'.repeat(64);
    v = await verifyPath(root, A.publicKey, signRaw(badRoot));
    assert.match(v.reasons.join('\n'), /subject digest does not match/);

    const wrongType = JSON.parse(JSON.stringify(good));
    wrongType.predicateType = 'https://example.com/other';
    v = await verifyPath(root, A.publicKey, signRaw(wrongType));
    assert.match(v.reasons.join('\n'), /predicateType/);

    assert.ok('error' in parseStatement(Buffer.from('[1]')));
  });

  test('symlinks are refused: sign throws, verify fails', async () => {
    if (process.platform === 'win32') return;
    const root = mkModel();
    const outside = path.join(path.dirname(root), 'outside.bin');
    fs.writeFileSync(outside, 'secret');
    fs.symlinkSync(outside, path.join(root, 'link.bin'));
    await assert.rejects(signPath(root, A.privateKey), (e: unknown) => e instanceof BulwarkError && e.code === 'BULWARK_E_PATH_ESCAPE' && /link\.bin/.test(e.message));
    fs.rmSync(path.join(root, 'link.bin'));
    await signFolder(root);
    // Replace a signed file by a link to an identical copy outside the folder.
    const cfg = path.join(root, 'config.json');
    fs.copyFileSync(cfg, outside);
    fs.rmSync(cfg);
    fs.symlinkSync(outside, cfg);
    const v = await verifyPath(root, A.publicKey);
    assert.equal(v.valid, false);
    assert.deepEqual(v.files.filter((f) => f.status !== 'ok').map((f) => [f.name, f.status]), [['config.json', 'refused']]);
    // A linked folder is refused too.
    fs.rmSync(cfg);
    fs.copyFileSync(outside, cfg);
    fs.symlinkSync(path.dirname(root), path.join(root, 'up'));
    const v2 = await verifyPath(root, A.publicKey);
    assert.deepEqual(v2.files.filter((f) => f.status !== 'ok').map((f) => [f.name, f.status]), [['up', 'refused']]);
  });

  test('--out inside the folder is excluded from the hashed set; elsewhere it is not needed', async () => {
    const root = mkModel();
    const inside = path.join(root, 'weights', 'sig.json');
    const r = await signPath(root, A.privateKey, { sigPath: inside });
    await writeSignature(inside, r.envelope);
    assert.deepEqual(r.statement.predicate.serialization.ignore_paths, ['weights/sig.json']);
    assert.equal((await verifyPath(root, A.publicKey, inside)).valid, true);

    const root2 = mkModel();
    const outside = path.join(path.dirname(root2), 'model.sig.json');
    const r2 = await signPath(root2, A.privateKey, { sigPath: outside });
    await writeSignature(outside, r2.envelope);
    assert.deepEqual(r2.statement.predicate.serialization.ignore_paths, []);
    assert.equal((await verifyPath(root2, A.publicKey, outside)).valid, true);
  });

  test('names are relative POSIX paths sorted by UTF-8 bytes', async () => {
    const dir = fs.mkdtempSync(path.join(tmp, 'names-'));
    const root = path.join(dir, 'm');
    fs.mkdirSync(path.join(root, 'b'), { recursive: true });
    for (const n of ['Z', 'a', 'é', 'b/c', 'ab', '\u{1F600}', '\uFF5E']) fs.writeFileSync(path.join(root, ...n.split('/')), n);
    const m = await hashModel(root);
    assert.deepEqual(m.files.map((f) => f.name), ['Z', 'a', 'ab', 'b/c', 'é', '\uFF5E', '\u{1F600}']);
  });

  test('hashing streams across chunk boundaries and matches a one-shot SHA-256', async () => {
    const dir = fs.mkdtempSync(path.join(tmp, 'big-'));
    const f = path.join(dir, 'big.bin');
    const data = Buffer.alloc(9 * 1024 * 1024 + 12345);
    for (let i = 0; i < data.length; i += 4096) data[i] = (i / 4096) & 0xff;
    fs.writeFileSync(f, data);
    const seen: number[] = [];
    const m = await hashModel(f, { onProgress: (d) => seen.push(d) });
    assert.equal(m.files[0]!.digest, createHash('sha256').update(data).digest('hex'));
    assert.equal(m.bytes, data.length);
    assert.ok(seen.length >= 3);
  });

  test('input errors throw; an empty folder cannot be signed', async () => {
    await assert.rejects(verifyPath(path.join(tmp, 'nope'), A.publicKey), (e: unknown) => e instanceof BulwarkError && e.code === 'BULWARK_E_FILE_NOT_FOUND');
    const root = mkModel();
    await assert.rejects(verifyPath(root, A.publicKey), (e: unknown) => e instanceof BulwarkError && e.code === 'BULWARK_E_FILE_NOT_FOUND');
    fs.writeFileSync(path.join(root, 'model.sig'), '{"payloadType":"x"}');
    await assert.rejects(verifyPath(root, A.publicKey), (e: unknown) => e instanceof BulwarkError && e.code === 'BULWARK_E_SIG_FORMAT');
    const empty = fs.mkdtempSync(path.join(tmp, 'empty-'));
    await assert.rejects(signPath(empty, A.privateKey), (e: unknown) => e instanceof BulwarkError && e.code === 'BULWARK_E_ARG');
  });
});

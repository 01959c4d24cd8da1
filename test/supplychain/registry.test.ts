import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import pg from 'pg';
import { BulwarkError } from '../../src/core/errors.js';
import { generateKeyPair, loadPrivateKey, saveKeyPair } from '../../src/supplychain/crypto/keys.js';
import { signPath, writeSignature } from '../../src/supplychain/signing/sign.js';
import { aliasStack, openRegistry, type Registry, type RegistryOptions } from '../../src/supplychain/registry/registry.js';
import { repoRoot, runCli, lastJson } from '../helpers.js';
import { findPostgres, makeOnnx } from './shared.js';



const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');


async function dropSchemas(url: string, schemas: string[]): Promise<void> {
  if (schemas.length === 0) return;
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    for (const s of schemas) await c.query(`DROP SCHEMA IF EXISTS "${s}" CASCADE`);
  } finally {
    await c.end();
  }
}



async function rejectsCode(p: Promise<unknown>, code: string, re?: RegExp): Promise<BulwarkError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof BulwarkError, `expected a BulwarkError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    if (re) assert.match(e.message, re);
    return e;
  }
  assert.fail(`expected ${code}`);
}

// ---- fixtures shared by both backends ----

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-registry-'));
const keys = { signer: path.join(tmp, 'keys', 'signer'), other: path.join(tmp, 'keys', 'other') };
const models: Record<string, { file: string; bytes: Buffer }> = {};
const pgUrl = await findPostgres();
const pgSchemas: string[] = [];

before(async () => {
  await saveKeyPair(keys.signer, generateKeyPair());
  await saveKeyPair(keys.other, generateKeyPair());
  fs.mkdirSync(path.join(tmp, 'models'));
  for (let i = 1; i <= 4; i++) {
    const file = path.join(tmp, 'models', `m${i}.onnx`);
    models[`m${i}`] = { file, bytes: makeOnnx(file, i) };
  }
  // m1..m3 are signed by the trusted key; m4 by another key.
  for (const [m, k] of [['m1', keys.signer], ['m2', keys.signer], ['m3', keys.signer], ['m4', keys.other]] as const) {
    const priv = loadPrivateKey(k);
    const r = await signPath(models[m]!.file, priv);
    await writeSignature(r.sigPath, r.envelope);
    priv.destroy();
  }
});

after(async () => {
  fs.rmSync(tmp, { recursive: true, force: true });
  if (pgUrl) await dropSchemas(pgUrl, pgSchemas);
});

/** One backend: how to open a fresh registry in it. */
interface Backend {
  name: string;
  skip: string | false;
  /** Fresh registry options (its own folder and its own database/schema). */
  fresh(extra?: Partial<RegistryOptions>): RegistryOptions;
}

let counter = 0;
const backends: Backend[] = [
  {
    name: 'sqlite',
    skip: false,
    fresh(extra = {}) {
      const root = path.join(tmp, `reg-sqlite-${++counter}`);
      return { root, ...extra };
    },
  },
  {
    name: 'postgres',
    skip: pgUrl ? false : 'PostgreSQL is not reachable at 127.0.0.1:5432 (set BULWARK_TEST_PG; CI=true makes this an error)',
    fresh(extra = {}) {
      const root = path.join(tmp, `reg-pg-${++counter}`);
      const schema = `bw_reg_${process.pid}_${counter}_${randomBytes(3).toString('hex')}`;
      pgSchemas.push(schema);
      return { root, db: `${pgUrl}?schema=${schema}`, ...extra };
    },
  },
];

for (const be of backends) {
  describe(`registry on ${be.name}`, { skip: be.skip }, () => {
    const open = async (extra: Partial<RegistryOptions> = {}, opts?: RegistryOptions): Promise<Registry> => openRegistry(opts ?? be.fresh(extra));

    test('push/pull round trip: identical bytes, content-addressed blob, versions immutable', async () => {
      const o = be.fresh();
      const reg = await open({}, o);
      try {
        const { info, warnings } = await reg.push(models['m1']!.file, { name: 'mnist', by: 'alice' });
        assert.equal(info.version, '1');
        assert.equal(info.ordinal, 1);
        assert.equal(info.digest, sha256(models['m1']!.bytes));
        assert.equal(info.size, models['m1']!.bytes.length);
        assert.equal(info.createdBy, 'alice');
        assert.ok(warnings.some((w) => /unverified/.test(w)), 'a signature without a trusted key is stored unverified, and said so');
        const blob = path.join(o.root, 'blobs', 'sha256', info.digest);
        assert.deepEqual(fs.readFileSync(blob), models['m1']!.bytes);
        assert.deepEqual(fs.readdirSync(path.join(o.root, 'blobs', 'tmp')), [], 'no staging file is left');

        const out = path.join(tmp, `pull-${be.name}.onnx`);
        const pulled = await reg.pull('mnist@1', out);
        assert.equal(pulled.info.digest, info.digest);
        assert.deepEqual(fs.readFileSync(out), models['m1']!.bytes);
        const loaded = await reg.load('mnist');
        assert.deepEqual(loaded.bytes, models['m1']!.bytes);

        // Same bytes again: a new version, the same blob.
        const again = await reg.push(models['m1']!.file, { name: 'mnist', version: 'v1-copy', signature: null });
        assert.equal(again.info.digest, info.digest);
        assert.equal(fs.readdirSync(path.join(o.root, 'blobs', 'sha256')).length, 1);
        await rejectsCode(reg.push(models['m2']!.file, { name: 'mnist', version: '1' }), 'BULWARK_E_REGISTRY_CONFLICT', /immutable/);
        await rejectsCode(reg.push(models['m2']!.file, { name: 'mnist', version: 'latest' }), 'BULWARK_E_ARG');
        await rejectsCode(reg.push(models['m2']!.file, { name: 'bad/name' }), 'BULWARK_E_ARG');
        const third = await reg.push(models['m2']!.file, { name: 'mnist' });
        assert.equal(third.info.version, '3', 'auto versions follow the ordinal');
        assert.equal((await reg.show('mnist')).version, '3', 'no ref means latest');
        assert.equal((await reg.show('mnist@latest')).version, '3');
        await rejectsCode(reg.show('mnist@9'), 'BULWARK_E_REGISTRY_NOT_FOUND');
        await rejectsCode(reg.show('nope'), 'BULWARK_E_REGISTRY_NOT_FOUND');
        const list = await reg.list();
        assert.deepEqual(list, [{ name: 'mnist', versions: 3, latest: '3', aliases: {} }]);
        assert.deepEqual((await reg.versions('mnist')).map((v) => v.version), ['1', 'v1-copy', '3']);
        const v = await reg.verify();
        assert.equal(v.ok, true, JSON.stringify(v.issues));
        assert.equal(v.audit.records, 3);
      } finally {
        await reg.close();
      }
    });

    test('aliases and rollback: recorded moves, a stack of earlier versions, refusals', async () => {
      const reg = await open();
      try {
        for (const m of ['m1', 'm2', 'm3']) await reg.push(models[m]!.file, { name: 'cls' });
        const s1 = await reg.setAlias('cls', 'production', '1', { by: 'ops' });
        assert.deepEqual([s1.from, s1.to, s1.changed], [null, '1', true]);
        await reg.setAlias('cls', 'production', '2');
        await reg.setAlias('cls', 'production', '3');
        await reg.setAlias('cls', 'staging', 'production');
        assert.equal((await reg.show('cls@staging')).version, '3', 'an alias can be set from another alias');
        const same = await reg.setAlias('cls', 'production', '3');
        assert.equal(same.changed, false);

        const r1 = await reg.rollback('cls', 'production', { by: 'oncall' });
        assert.deepEqual([r1.from, r1.to, r1.action, r1.by], ['3', '2', 'rollback', 'oncall']);
        assert.equal((await reg.load('cls@production')).info.version, '2');
        const r2 = await reg.rollback('cls', 'production');
        assert.equal(r2.to, '1', 'a second rollback goes one more step back');
        await rejectsCode(reg.rollback('cls', 'production'), 'BULWARK_E_REGISTRY_NOT_FOUND', /no earlier version/);
        const r3 = await reg.rollback('cls', 'production', { to: '3' });
        assert.equal(r3.to, '3');
        await rejectsCode(reg.rollback('cls', 'canary'), 'BULWARK_E_REGISTRY_NOT_FOUND');
        await rejectsCode(reg.setAlias('cls', 'production', '7'), 'BULWARK_E_REGISTRY_NOT_FOUND');
        await rejectsCode(reg.setAlias('cls', '2', '1'), 'BULWARK_E_REGISTRY_CONFLICT', /version named 2/);
        await rejectsCode(reg.setAlias('cls', 'latest', '1'), 'BULWARK_E_ARG');

        const hist = await reg.aliasHistory('cls', 'production');
        assert.deepEqual(
          hist.map((m) => [m.action, m.from, m.to]),
          [
            ['set', null, '1'],
            ['set', '1', '2'],
            ['set', '2', '3'],
            ['rollback', '3', '2'],
            ['rollback', '2', '1'],
            ['rollback', '1', '3'],
          ],
        );
        assert.deepEqual(aliasStack(hist), ['1', '3'], 'rollback --to a version off the stack pushes it, so the next rollback returns to 1');
        const audit = await reg.audit.records({ actionPrefix: 'registry.' });
        assert.deepEqual(
          audit.map((r) => r.action),
          ['registry.push', 'registry.push', 'registry.push', 'registry.alias', 'registry.alias', 'registry.alias', 'registry.alias', 'registry.rollback', 'registry.rollback', 'registry.rollback'],
        );
        assert.equal(hist[3]!.auditSeq, audit[7]!.seq, 'each move points at its audit record');
        assert.deepEqual((await reg.show('cls@3')).aliases, ['production', 'staging']);
        assert.equal((await reg.verify()).ok, true);

        // Aliases set by push commit in the same transaction.
        const p = await reg.push(models['m4']!.file, { name: 'cls', aliases: ['canary', 'staging'] });
        assert.deepEqual(p.info.aliases, ['canary', 'staging']);
        assert.deepEqual((await reg.aliasHistory('cls', 'staging')).map((m) => m.to), ['3', '4']);
        await rejectsCode(reg.push(models['m1']!.file, { name: 'cls', version: 'canary' }), 'BULWARK_E_REGISTRY_CONFLICT', /alias named canary/);
        assert.equal((await reg.verify()).ok, true);
      } finally {
        await reg.close();
      }
    });

    test('lineage round trip: parent, data hashes, training record and config, scan report, who and when', async () => {
      const reg = await open({ actor: 'ci-bot' });
      try {
        const data = path.join(tmp, `train-${be.name}.npz`);
        fs.writeFileSync(data, randomBytes(5000));
        await reg.push(models['m1']!.file, { name: 'base' });
        const rec = {
          format: 'bulwark.train-record/1',
          modelSha256: sha256(models['m2']!.bytes),
          arch: 'cnn-small',
          parameters: 1234,
          inputShape: [1, 28, 28],
          numClasses: 10,
          data: { spec: 'mnist:train[0:1000]', n: 1000 },
          validation: { spec: 'mnist:test[0:500]', n: 500 },
          hyperparameters: { epochs: 3, lr: 0.001, optimizer: 'adam' },
          seed: 7,
          final: { loss: 0.21, trainAccuracy: 0.94, valAccuracy: 0.93 },
        };
        const recFile = path.join(tmp, `rec-${be.name}.json`);
        fs.writeFileSync(recFile, JSON.stringify(rec));
        const before = Date.now();
        const { info } = await reg.push(models['m2']!.file, {
          name: 'tuned',
          parent: 'base@1',
          data: [{ path: data }, { name: 'cifar-subset', sha256: 'ab'.repeat(32), role: 'test' }],
          trainingRecord: recFile,
          trainingConfig: { note: 'fine-tuned', lr: 0.0005 },
          metrics: { robustAccuracy: 0.41 },
        });
        const back = await reg.show('tuned@1');
        assert.deepEqual(back, info);
        const l = back.lineage;
        assert.deepEqual(l.parent, { name: 'base', version: '1', digest: sha256(models['m1']!.bytes) });
        assert.equal(l.createdBy, 'ci-bot');
        assert.ok(Date.parse(l.createdAt) >= before - 1000 && Date.parse(l.createdAt) <= Date.now() + 1000);
        assert.deepEqual(l.data[0], { name: path.basename(data), sha256: sha256(fs.readFileSync(data)), size: 5000, uri: data, role: 'training' });
        assert.deepEqual(l.data[1], { name: 'cifar-subset', sha256: 'ab'.repeat(32), role: 'test' });
        assert.deepEqual(
          l.data.slice(2).map((d) => [d.name, d.role]),
          [
            ['mnist:train[0:1000]', 'training'],
            ['mnist:test[0:500]', 'validation'],
          ],
        );
        assert.equal(l.training?.recordFormat, 'bulwark.train-record/1');
        assert.deepEqual(l.training?.metrics, { loss: 0.21, trainAccuracy: 0.94, valAccuracy: 0.93, robustAccuracy: 0.41 });
        assert.equal(l.training?.config?.['arch'], 'cnn-small');
        assert.equal(l.training?.config?.['note'], 'fine-tuned');
        assert.deepEqual(l.training?.config?.['hyperparameters'], { epochs: 3, lr: 0.001, optimizer: 'adam' });
        assert.equal(l.scan?.['unsafe'], false);
        assert.deepEqual((l.scan?.['scanned'] as { format: string }[]).map((s) => s.format), ['onnx']);

        // A training record of another model is refused; so is an unknown parent.
        await rejectsCode(reg.push(models['m3']!.file, { name: 'tuned', trainingRecord: recFile }), 'BULWARK_E_ARG', /training record is for the model/);
        await rejectsCode(reg.push(models['m3']!.file, { name: 'tuned', parent: 'base@9' }), 'BULWARK_E_REGISTRY_NOT_FOUND');
        assert.equal((await reg.versions('tuned')).length, 1, 'refused pushes leave no version');

        const bom = await reg.bom('tuned@1');
        const card = bom.metadata.component.modelCard!;
        assert.equal(card.modelParameters.modelArchitecture, 'cnn-small');
        assert.deepEqual(card.modelParameters.datasets?.map((d) => d.ref), bom.components.map((c) => c['bom-ref']));
        assert.deepEqual(bom.components[0]!.hashes, [{ alg: 'SHA-256', content: sha256(fs.readFileSync(data)) }]);
        assert.equal(bom.metadata.component.pedigree?.ancestors[0]?.hashes?.[0]?.content, sha256(models['m1']!.bytes));
        assert.ok(card.quantitativeAnalysis?.performanceMetrics.some((m) => m.type === 'valAccuracy' && m.value === '0.93' && m.slice === 'validation'));
      } finally {
        await reg.close();
      }
    });

    test('signature policy: unsigned, untrusted and tampered models are refused on push; every load re-verifies', async () => {
      const o = be.fresh({ requireSignature: true, trustedKeys: [`${keys.signer}.pub`] });
      const reg = await open({}, o);
      try {
        await rejectsCode(reg.push(models['m1']!.file, { name: 'secure', signature: null }), 'BULWARK_E_REGISTRY_POLICY', /requires a signature/);
        await rejectsCode(reg.push(models['m4']!.file, { name: 'secure' }), 'BULWARK_E_REGISTRY_POLICY', /not signed by any trusted key/);
        // m1's bytes with m2's signature: a model modified after signing.
        await rejectsCode(reg.push(models['m1']!.file, { name: 'secure', signature: `${models['m2']!.file}.sig` }), 'BULWARK_E_REGISTRY_POLICY', /modified after signing/);
        const tampered = path.join(tmp, `tampered-${be.name}.onnx`);
        const t = Buffer.from(models['m1']!.bytes);
        t[t.length - 10] ^= 1;
        fs.writeFileSync(tampered, t);
        await rejectsCode(reg.push(tampered, { name: 'secure', signature: `${models['m1']!.file}.sig` }), 'BULWARK_E_REGISTRY_POLICY');
        assert.deepEqual(fs.existsSync(path.join(o.root, 'blobs', 'sha256')) ? fs.readdirSync(path.join(o.root, 'blobs', 'sha256')) : [], [], 'a refused push stores no blob');
        assert.deepEqual(await reg.list(), []);

        const ok = await reg.push(models['m1']!.file, { name: 'secure', aliases: ['production'] });
        assert.ok(ok.info.signature?.keyId, 'the verifying key id is recorded');
        await reg.push(models['m2']!.file, { name: 'secure' });
        assert.deepEqual((await reg.load('secure@production')).bytes, models['m1']!.bytes);

        // Swap version 2's stored signature for version 1's: loading 2 must fail the signature check.
        const t1 = reg.db.table('versions');
        await reg.db.write(async (tx) => {
          const s = await tx.all<{ signature: string }>(`SELECT signature FROM ${t1} WHERE name = ? AND version = ?`, ['secure', '1']);
          await tx.run(`UPDATE ${t1} SET signature = ? WHERE name = ? AND version = ?`, [s[0]!.signature, 'secure', '2']);
        });
        await rejectsCode(reg.load('secure@2'), 'BULWARK_E_REGISTRY_POLICY', /modified after signing/);
        await rejectsCode(reg.pull('secure@2', path.join(tmp, 'never.onnx')), 'BULWARK_E_REGISTRY_POLICY');
        assert.equal(fs.existsSync(path.join(tmp, 'never.onnx')), false);
        await rejectsCode(reg.setAlias('secure', 'production', '2'), 'BULWARK_E_REGISTRY_POLICY');
        const v = await reg.verify();
        assert.equal(v.ok, false);
        assert.deepEqual(v.issues.map((i) => [i.kind, i.subject]), [['signature', 'secure@2']]);

        // Modify version 1's blob on disk: every load refuses it, and so does an alias move.
        const blob = path.join(o.root, 'blobs', 'sha256', ok.info.digest);
        fs.chmodSync(blob, 0o644);
        const b = fs.readFileSync(blob);
        b[100] ^= 0xff;
        fs.writeFileSync(blob, b);
        await rejectsCode(reg.load('secure@production'), 'BULWARK_E_REGISTRY_INTEGRITY', /modified on disk/);
        await rejectsCode(reg.pull('secure@1', path.join(tmp, 'never.onnx')), 'BULWARK_E_REGISTRY_INTEGRITY');
        assert.equal(fs.existsSync(path.join(tmp, 'never.onnx')), false, 'nothing is written when the digest differs');
        await rejectsCode(reg.setAlias('secure', 'staging', '1'), 'BULWARK_E_REGISTRY_INTEGRITY');
        const v2 = await reg.verify();
        assert.deepEqual(v2.issues.map((i) => i.kind).sort(), ['blob-corrupt', 'signature']);
      } finally {
        await reg.close();
      }
      // Without the signature policy the registry still refuses a modified blob (digests are always checked).
      const plain = await openRegistry({ ...o, requireSignature: false, trustedKeys: [] });
      try {
        await rejectsCode(plain.load('secure@1'), 'BULWARK_E_REGISTRY_INTEGRITY');
        assert.deepEqual((await plain.load('secure@2')).bytes, models['m2']!.bytes);
      } finally {
        await plain.close();
      }
    });

    test('scan policy: an unsafe pickle is refused under "enforce" and recorded under "record"', async () => {
      const evil = path.join(repoRoot, 'fixtures', 'scan', 'malicious', 'global_reduce.pkl');
      const o = be.fresh();
      const reg = await open({}, o);
      try {
        await rejectsCode(reg.push(evil, { name: 'evil', signature: null }), 'BULWARK_E_REGISTRY_POLICY', /scanner found/);
        assert.deepEqual(await reg.list(), []);
      } finally {
        await reg.close();
      }
      const rec = await openRegistry({ ...o, scan: 'record' });
      try {
        const r = await rec.push(evil, { name: 'evil', signature: null });
        assert.equal(r.info.lineage.scan?.['unsafe'], true);
        assert.ok(r.warnings.some((w) => /scanner found/.test(w)));
        assert.ok((r.info.lineage.scan?.['findings'] as { severity: string }[]).some((f) => f.severity === 'critical'));
      } finally {
        await rec.close();
      }
    });

    test('verify finds metadata changed around the registry (version row edited, alias moved, rows deleted)', async () => {
      const reg = await open();
      try {
        await reg.push(models['m1']!.file, { name: 'x', aliases: ['production'] });
        await reg.push(models['m2']!.file, { name: 'x' });
        await reg.push(models['m3']!.file, { name: 'y' });
        assert.equal((await reg.verify()).ok, true);
        const tv = reg.db.table('versions');
        const ta = reg.db.table('aliases');
        await reg.db.write(async (tx) => {
          // Point x@2 at x@1's bytes (a blob that exists and is intact), move production, and drop y@1 with its blob.
          const d1 = await tx.all<{ digest: string }>(`SELECT digest FROM ${tv} WHERE name = ? AND version = ?`, ['x', '1']);
          await tx.run(`UPDATE ${tv} SET digest = ? WHERE name = ? AND version = ?`, [d1[0]!.digest, 'x', '2']);
          await tx.run(`UPDATE ${ta} SET version = ? WHERE name = ? AND alias = ?`, ['2', 'x', 'production']);
          await tx.run(`DELETE FROM ${tv} WHERE name = ?`, ['y']);
        });
        const v = await reg.verify();
        assert.equal(v.ok, false);
        const got = v.issues.map((i) => `${i.kind} ${i.subject}`).sort();
        assert.deepEqual(got, ['metadata x#production', 'metadata x@2', 'metadata y@1']);
        assert.equal(v.audit.ok, true, 'the audit chain itself is intact: the registry tables were changed around it');
        assert.ok(v.warnings.some((w) => /not referenced/.test(w)), "y@1's blob is now an orphan");
        const only = await reg.verify({ name: 'y' });
        assert.deepEqual(only.issues.map((i) => i.subject), ['y@1']);
      } finally {
        await reg.close();
      }
    });

    test('concurrent pushes in one process get distinct versions and one unbroken audit chain', async () => {
      const reg = await open();
      try {
        const results = await Promise.all(['m1', 'm2', 'm3', 'm4', 'm1', 'm2'].map((m, i) => reg.push(models[m]!.file, { name: 'par', by: `w${i}` })));
        assert.deepEqual(results.map((r) => Number(r.info.version)).sort((a, b) => a - b), [1, 2, 3, 4, 5, 6]);
        const v = await reg.verify();
        assert.equal(v.ok, true, JSON.stringify(v.issues));
        assert.equal(v.audit.lastSeq, 6);
      } finally {
        await reg.close();
      }
    });

    test('CLI: push, list, show, alias, rollback, pull, verify, bom with --json and exit codes', async () => {
      const o = be.fresh();
      const base = ['--root', o.root, ...(o.db ? ['--db', o.db] : []), '--json'];
      const push = await runCli('registry', 'push', models['m1']!.file, 'net@1.0.0', '--trusted-key', `${keys.signer}.pub`, '--require-signature', '--alias', 'production', '--by', 'carol', ...base);
      assert.equal(push.code, 0, push.stderr);
      assert.equal(lastJson(push.stdout)['digest'], sha256(models['m1']!.bytes));
      const unsigned = await runCli('registry', 'push', models['m2']!.file, 'net@1.1.0', '--no-sig', '--trusted-key', `${keys.signer}.pub`, '--require-signature', ...base);
      assert.equal(unsigned.code, 1, 'a policy refusal is a failed gate: exit 1');
      assert.match(unsigned.stderr, /BULWARK_E_REGISTRY_POLICY/);
      assert.equal((await runCli('registry', 'push', models['m2']!.file, 'net@1.1.0', ...base)).code, 0);
      assert.equal((await runCli('registry', 'push', models['m2']!.file, 'net@1.1.0', ...base)).code, 2, 'an existing version is an input error');
      const list = await runCli('registry', 'list', ...base);
      assert.deepEqual(lastJson(list.stdout)['models'], [{ name: 'net', versions: 2, latest: '1.1.0', aliases: { production: '1.0.0' } }]);
      assert.equal((await runCli('registry', 'alias', 'net@1.1.0', 'production', ...base)).code, 0);
      const rb = await runCli('registry', 'rollback', 'net', 'production', ...base);
      assert.equal(rb.code, 0, rb.stderr);
      assert.deepEqual([lastJson(rb.stdout)['from'], lastJson(rb.stdout)['to']], ['1.1.0', '1.0.0']);
      const show = await runCli('registry', 'show', 'net@production', ...base);
      assert.equal(lastJson(show.stdout)['version'], '1.0.0');
      assert.equal(lastJson(show.stdout)['createdBy'], 'carol');
      const out = path.join(tmp, `cli-pull-${be.name}.onnx`);
      const pull = await runCli('registry', 'pull', 'net@production', '--out', out, '--trusted-key', `${keys.signer}.pub`, '--require-signature', ...base);
      assert.equal(pull.code, 0, pull.stderr);
      assert.deepEqual(fs.readFileSync(out), models['m1']!.bytes);
      const ver = await runCli('registry', 'verify', ...base);
      assert.equal(ver.code, 0, ver.stdout);
      const hist = await runCli('registry', 'history', 'net', ...base);
      assert.equal(lastJson(hist.stdout)['moves'].length, 3);
      const bom = await runCli('registry', 'bom', 'net@1.0.0', ...base);
      assert.equal(lastJson(bom.stdout)['metadata']['component']['type'], 'machine-learning-model');
      const audit = await runCli('audit', 'verify', ...base.filter((a) => a !== '--json'), '--json');
      assert.equal(audit.code, 0, audit.stdout);
      assert.equal(lastJson(audit.stdout)['records'], 4);
      assert.equal((await runCli('registry', 'show', 'net@9.9.9', ...base)).code, 2);
      assert.equal((await runCli('registry', 'frobnicate', ...base)).code, 2);
      assert.equal((await runCli('registry', 'push', models['m1']!.file, ...base)).code, 2, 'a missing positional is a usage error');
      // Corrupt a blob: verify exits 1 and names the version.
      const blob = path.join(o.root, 'blobs', 'sha256', sha256(models['m2']!.bytes));
      fs.chmodSync(blob, 0o644);
      fs.appendFileSync(blob, 'x');
      const bad = await runCli('registry', 'verify', ...base);
      assert.equal(bad.code, 1);
      assert.deepEqual(lastJson(bad.stdout)['issues'].map((i: { kind: string; subject: string }) => `${i.kind} ${i.subject}`), ['blob-corrupt net@1.1.0']);
    });
  });
}

test('a missing SQLite registry is reported, not created, by read-only commands', async () => {
  const root = path.join(tmp, 'does-not-exist');
  const r = await runCli('registry', 'list', '--root', root);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /BULWARK_E_REGISTRY_NOT_FOUND/);
  assert.equal(fs.existsSync(root), false);
});

test('a PostgreSQL URL that does not answer is BULWARK_E_DB, and the password never appears in the message', async () => {
  const r = await runCli('registry', 'list', '--root', path.join(tmp, 'pgdown'), '--db', 'postgres://u:s3cretpw@127.0.0.1:1/none');
  assert.equal(r.code, 2);
  assert.match(r.stderr, /BULWARK_E_DB/);
  assert.doesNotMatch(r.stderr, /s3cretpw/);
});

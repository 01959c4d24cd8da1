import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createPublicKey, generateKeyPairSync, randomBytes } from 'node:crypto';
import pg from 'pg';
import { BulwarkError } from '../../src/core/errors.js';
import { generateKeyPair } from '../../src/supplychain/crypto/keys.js';
import { openSqlDb, type SqlDb } from '../../src/supplychain/registry/sql.js';
import {
  AuditLog,
  GENESIS_HASH,
  appendAudit,
  auditSignerFromEd25519,
  auditSignerFromKey,
  auditVerifierFromEd25519,
  auditVerifierFromKey,
  canonicalJson,
  loadAuditSigner,
  loadAuditVerifier,
  parseRecord,
  recordText,
  sha256Hex,
  verifyAuditExport,
  type AuditIssue,
  type AuditRecord,
  type AuditVerifyResult,
} from '../../src/supplychain/audit/index.js';
import { runCli } from '../helpers.js';
import { findPostgres } from './shared.js';

// ---- helpers (each registry/audit test file keeps its own small copy) ----



const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-audit-'));
const pgUrl = await findPostgres();
const schemas: string[] = [];
after(async () => {
  fs.rmSync(tmp, { recursive: true, force: true });
  if (pgUrl && schemas.length) {
    const c = new pg.Client({ connectionString: pgUrl });
    await c.connect();
    for (const s of schemas) await c.query(`DROP SCHEMA IF EXISTS "${s}" CASCADE`);
    await c.end();
  }
});

const edKey = generateKeyPairSync('ed25519').privateKey;
const signer = auditSignerFromEd25519(edKey);
const verifier = auditVerifierFromEd25519(edKey);
const stranger = auditVerifierFromEd25519(generateKeyPairSync('ed25519').privateKey);

/** Issues as `kind@seq[..to]` strings, the form the assertions compare. */
const where = (r: AuditVerifyResult): string[] => r.issues.map((i: AuditIssue) => `${i.kind}@${i.seq}${i.toSeq !== undefined ? '..' + i.toSeq : ''}`);

let n = 0;
const backends = [
  { name: 'sqlite', skip: false as string | false, open: () => openSqlDb({ url: path.join(tmp, `audit-${++n}.db`) }) },
  {
    name: 'postgres',
    skip: pgUrl ? (false as const) : 'PostgreSQL is not reachable at 127.0.0.1:5432 (set BULWARK_TEST_PG; CI=true makes this an error)',
    open: () => {
      const s = `bw_audit_${process.pid}_${++n}_${randomBytes(3).toString('hex')}`;
      schemas.push(s);
      return openSqlDb({ url: `${pgUrl}?schema=${s}` });
    },
  },
];

for (const be of backends) {
  describe(`audit log on ${be.name}`, { skip: be.skip }, () => {
    /** A log of 12 records with checkpoints at 4, 8 and 12. */
    async function fresh(): Promise<{ db: SqlDb; log: AuditLog; t: string }> {
      const db = await be.open();
      const log = await AuditLog.open(db, { signer, checkpointEvery: 4, actor: 'tester' });
      for (let i = 1; i <= 12; i++) await log.append({ action: 'test.event', subject: `item-${i}`, data: { i, note: i % 2 ? 'odd' : 'even' } });
      return { db, log, t: db.table('audit') };
    }
    const rowOf = async (db: SqlDb, seq: number): Promise<{ record: string; hash: string }> =>
      (await db.read((tx) => tx.all<{ record: string; hash: string }>(`SELECT record, hash FROM ${db.table('audit')} WHERE seq = ?`, [seq])))[0]!;

    test('an intact log verifies: chain, head marker, three signed checkpoints', async () => {
      const { db, log } = await fresh();
      try {
        const r = await log.verify([verifier]);
        assert.deepEqual(where(r), []);
        assert.equal(r.ok, true);
        assert.equal(r.lastSeq, 12);
        assert.deepEqual(r.checkpoints, { total: 3, verified: 3, lastVerifiedSeq: 12 });
        const recs = await log.records();
        assert.equal(recs[0]!.prev, GENESIS_HASH);
        for (let i = 1; i < recs.length; i++) assert.equal(recs[i]!.prev, sha256Hex(recordText(recs[i - 1]!)), `record ${i + 1} carries the hash of record ${i}'s canonical JSON`);
        assert.deepEqual([recs[4]!.actor, recs[4]!.action, recs[4]!.subject, recs[4]!.data], ['tester', 'test.event', 'item-5', { i: 5, note: 'odd' }]);
        const noKey = await log.verify();
        assert.equal(noKey.ok, true);
        assert.ok(noKey.warnings.some((w) => /not checked/.test(w)));
      } finally {
        await db.close();
      }
    });

    test('an edited record is located (content changed; and content changed with its stored hash recomputed)', async () => {
      const { db, log, t } = await fresh();
      try {
        const r5 = await rowOf(db, 5);
        const edited = r5.record.replace('"odd"', '"EVIL"');
        await db.write((tx) => tx.run(`UPDATE ${t} SET record = ? WHERE seq = ?`, [edited, 5]));
        let r = await log.verify([verifier]);
        assert.deepEqual(where(r), ['edited@5']);
        await db.write((tx) => tx.run(`UPDATE ${t} SET hash = ? WHERE seq = ?`, [sha256Hex(edited), 5]));
        r = await log.verify([verifier]);
        assert.deepEqual(where(r), ['edited@5'], 'record 6 no longer chains to record 5');
        assert.match(r.issues[0]!.message, /record 5 was rewritten/);
        // The last record: caught by the head marker.
        const r12 = await rowOf(db, 12);
        const e12 = r12.record.replace('"even"', '"EVIL"');
        await db.write((tx) => tx.run(`UPDATE ${t} SET record = ?, hash = ? WHERE seq = ?`, [e12, sha256Hex(e12), 12]));
        r = await log.verify([verifier]);
        assert.deepEqual(where(r), ['edited@5', 'edited@9..12', 'edited@12']);
      } finally {
        await db.close();
      }
    });

    test('a deleted record is located', async () => {
      const { db, log, t } = await fresh();
      try {
        await db.write((tx) => tx.run(`DELETE FROM ${t} WHERE seq = ?`, [7]));
        const r = await log.verify([verifier]);
        assert.deepEqual(where(r), ['deleted@7']);
        assert.match(r.issues[0]!.message, /record 7 is missing/);
      } finally {
        await db.close();
      }
    });

    test('reordered records are located', async () => {
      const { db, log, t } = await fresh();
      try {
        const a = await rowOf(db, 5);
        const b = await rowOf(db, 6);
        await db.write(async (tx) => {
          await tx.run(`UPDATE ${t} SET record = ?, hash = ? WHERE seq = ?`, [b.record, b.hash, 5]);
          await tx.run(`UPDATE ${t} SET record = ?, hash = ? WHERE seq = ?`, [a.record, a.hash, 6]);
        });
        const r = await log.verify([verifier]);
        assert.deepEqual(where(r), ['reordered@5', 'reordered@6']);
        assert.match(r.issues[0]!.message, /position 5 holds record 6/);
      } finally {
        await db.close();
      }
    });

    test('truncation is located, whether or not the head marker was rolled back too', async () => {
      const { db, log, t } = await fresh();
      try {
        await db.write((tx) => tx.run(`DELETE FROM ${t} WHERE seq > ?`, [9]));
        let r = await log.verify([verifier]);
        assert.deepEqual(where(r), ['truncated@10..12']);
        // Roll the head marker back to record 9 as well: the signed checkpoint at 12 still names the missing tail.
        const h9 = await rowOf(db, 9);
        await db.write((tx) => tx.run(`UPDATE ${db.table('meta')} SET value = ? WHERE key = ?`, [canonicalJson({ seq: 9, hash: h9.hash }), 'audit.head']));
        r = await log.verify([verifier]);
        assert.deepEqual(where(r), ['truncated@10..12']);
        assert.match(r.issues[0]!.message, /a signed checkpoint names record 12/);
      } finally {
        await db.close();
      }
    });

    test('a consistent rewrite of the chain is caught by the signed checkpoint after it', async () => {
      const { db, log, t } = await fresh();
      try {
        // Rewrite record 6 and re-chain 6..12 (hashes, prev links, head marker): only the checkpoints can tell.
        const recs = await log.records();
        let prev = recs[4]!.prev;
        await db.write(async (tx) => {
          for (const rec of recs.slice(4)) {
            const changed: AuditRecord = { ...rec, prev: rec.seq === 5 ? rec.prev : prev, data: rec.seq === 6 ? { i: 6, note: 'rewritten' } : rec.data };
            const text = recordText(changed);
            prev = sha256Hex(text);
            await tx.run(`UPDATE ${t} SET record = ?, hash = ? WHERE seq = ?`, [text, prev, rec.seq]);
          }
          await tx.run(`UPDATE ${db.table('meta')} SET value = ? WHERE key = ?`, [canonicalJson({ seq: 12, hash: prev }), 'audit.head']);
        });
        const r = await log.verify([verifier]);
        assert.deepEqual(where(r), ['edited@5..8', 'edited@9..12']);
        assert.match(r.issues[0]!.message, /signed checkpoint/);
      } finally {
        await db.close();
      }
    });

    test('checkpoint signatures: forged, by an untrusted key, or checked with the wrong key', async () => {
      const { db, log } = await fresh();
      const tc = db.table('audit_checkpoints');
      try {
        assert.deepEqual(where(await log.verify([stranger])), ['checkpoint@4', 'checkpoint@8', 'checkpoint@12']);
        const cp = (await db.read((tx) => tx.all<{ payload: string }>(`SELECT payload FROM ${tc} WHERE seq = ?`, [8])))[0]!;
        const forged = canonicalJson({ ...JSON.parse(cp.payload), at: '2020-01-01T00:00:00.000Z' });
        await db.write((tx) => tx.run(`UPDATE ${tc} SET payload = ? WHERE seq = ?`, [forged, 8]));
        const r = await log.verify([verifier]);
        assert.deepEqual(where(r), ['checkpoint@8']);
        assert.match(r.issues[0]!.message, /does not verify/);
      } finally {
        await db.close();
      }
    });

    test('hybrid checkpoints (Bulwark key: Ed25519 + ML-DSA-65), appendAudit, and event validation', async () => {
      const db = await be.open();
      const kp = generateKeyPair();
      try {
        const log = await AuditLog.open(db, { signer: auditSignerFromKey(kp.privateKey), checkpointEvery: 2 });
        for (let i = 0; i < 3; i++) await appendAudit(log, { action: 'gateway.decision', subject: `req-${i}`, data: { allowed: i !== 1, rule: 'rate-limit' } });
        assert.equal((await log.checkpoint())?.seq, 3, 'checkpoint() signs the head on demand');
        const r = await log.verify([auditVerifierFromKey(kp.publicKey)]);
        assert.equal(r.ok, true, JSON.stringify(r.issues));
        assert.deepEqual(r.checkpoints, { total: 2, verified: 2, lastVerifiedSeq: 3 });
        // An Ed25519 verifier with the same Ed25519 half must not accept the hybrid checkpoints (no downgrade).
        assert.equal((await log.verify([verifier])).ok, false);
        for (const bad of [{ action: 'Not Dotted' }, { action: 'x.y', subject: 'a\nb' }, { action: 'x.y', data: { n: Number.NaN } }]) {
          await assert.rejects(log.append(bad as never), (e: unknown) => e instanceof BulwarkError && e.code === 'BULWARK_E_ARG');
        }
        await assert.rejects(log.append({ action: 'x.y', data: 'z'.repeat(70000) }), (e: unknown) => e instanceof BulwarkError && e.code === 'BULWARK_E_LIMIT');
        assert.equal((await log.verify([auditVerifierFromKey(kp.publicKey)])).lastSeq, 3, 'refused events append nothing');
      } finally {
        kp.privateKey.destroy();
        await db.close();
      }
    });

    test('concurrent appends from two connections keep one gapless chain', async () => {
      const db1 = await be.open();
      try {
        const url = be.name === 'sqlite' ? db1.location : `${pgUrl}?schema=${schemas[schemas.length - 1]}`;
        const db2 = await openSqlDb({ url });
        try {
          const l1 = await AuditLog.open(db1, { signer, checkpointEvery: 5 });
          const l2 = await AuditLog.open(db2, { signer, checkpointEvery: 5 });
          await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? l1 : l2).append({ action: 'test.concurrent', data: { i } })));
          const r = await l1.verify([verifier]);
          assert.equal(r.ok, true, JSON.stringify(r.issues));
          assert.equal(r.lastSeq, 20);
          assert.equal(r.checkpoints.verified, 4);
        } finally {
          await db2.close();
        }
      } finally {
        await db1.close();
      }
    });
  });
}

describe('audit export (JSON lines)', () => {
  test('an export verifies on its own; an edited, deleted or reordered line is located', async () => {
    const db = await openSqlDb({ url: path.join(tmp, 'export.db') });
    try {
      const log = await AuditLog.open(db, { signer, checkpointEvery: 3 });
      for (let i = 1; i <= 7; i++) await log.append({ action: 'test.export', data: { i } });
      const lines: string[] = [];
      assert.equal(await log.exportJsonl((l) => void lines.push(l)), 7);
      const text = lines.join('');
      const recLines = lines.filter((l) => l.startsWith('{"action"'));
      assert.equal(recLines.length, 7);
      assert.equal(parseRecord(recLines[1]!.trim())?.prev, sha256Hex(recLines[0]!.trim()), 'sha256 of a line is the next record\'s prev');
      assert.ok(lines[lines.length - 1]!.startsWith('{"head":'));
      const ok = verifyAuditExport(text, [verifier]);
      assert.deepEqual(where(ok), []);
      assert.equal(ok.checkpoints.verified, 2);

      assert.deepEqual(where(verifyAuditExport(text.replace('"i":4', '"i":40'), [verifier])), ['edited@4']);
      assert.deepEqual(where(verifyAuditExport(text.replace(recLines[1]!, ''), [verifier])), ['deleted@2']);
      assert.deepEqual(where(verifyAuditExport(text.replace(recLines[4]! + recLines[5]!, recLines[5]! + recLines[4]!), [verifier])), ['reordered@5']);
      const cut = lines.slice(0, lines.indexOf(recLines[5]!)).join('') + lines[lines.length - 1]!;
      assert.deepEqual(where(verifyAuditExport(cut, [verifier])), ['truncated@6..7']);
    } finally {
      await db.close();
    }
  });
});

describe('bulwark audit (CLI)', () => {
  test('verify exits 0 on an intact log and 1 naming the tampered record; export and append work', async () => {
    const root = path.join(tmp, 'cli-reg');
    const pem = path.join(tmp, 'audit-ed25519.pem');
    fs.writeFileSync(pem, edKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });
    const pubPem = path.join(tmp, 'audit-ed25519.pub.pem');
    fs.writeFileSync(pubPem, createPublicKey(edKey).export({ format: 'pem', type: 'spki' }));
    assert.equal(loadAuditSigner(pem).keyId, loadAuditVerifier(pubPem).keyId);
    const common = ['--root', root, '--audit-key', pem, '--checkpoint-every', '2'];
    for (let i = 0; i < 5; i++) {
      const r = await runCli('audit', 'append', ...common, '--action', 'gateway.decision', '--subject', `req-${i}`, '--data', JSON.stringify({ allowed: true }), '--json');
      assert.equal(r.code, 0, r.stderr);
      assert.equal(JSON.parse(r.stdout).seq, i + 1);
    }
    const ok = await runCli('audit', 'verify', '--root', root, '--key', pubPem, '--json');
    assert.equal(ok.code, 0, ok.stdout);
    assert.equal(JSON.parse(ok.stdout).checkpoints.verified, 2);
    const exp = path.join(tmp, 'audit.jsonl');
    assert.equal((await runCli('audit', 'export', '--root', root, '--out', exp)).code, 0);
    assert.equal((await runCli('audit', 'verify', '--file', exp, '--key', pubPem)).code, 0);

    // Edit record 3 in the database behind the log's back.
    const db = await openSqlDb({ url: path.join(root, 'registry.db') });
    const t = db.table('audit');
    await db.write(async (tx) => {
      const row = (await tx.all<{ record: string }>(`SELECT record FROM ${t} WHERE seq = 3`))[0]!;
      await tx.run(`UPDATE ${t} SET record = ? WHERE seq = 3`, [row.record.replace('"allowed":true', '"allowed":false')]);
    });
    await db.close();
    const bad = await runCli('audit', 'verify', '--root', root, '--key', pubPem);
    assert.equal(bad.code, 1);
    assert.match(bad.stdout, /TAMPERING FOUND/);
    assert.match(bad.stdout, /edited at 3: record 3 was modified/);
    const badJson = await runCli('audit', 'verify', '--root', root, '--key', pubPem, '--json');
    assert.deepEqual(JSON.parse(badJson.stdout).issues.map((i: AuditIssue) => [i.kind, i.seq]), [['edited', 3]]);
    assert.equal((await runCli('audit', 'verify', '--root', path.join(tmp, 'nowhere'))).code, 2);
  });
});

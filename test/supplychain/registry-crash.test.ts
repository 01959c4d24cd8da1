// Crash safety: a child process pushes models (and moves aliases) in a loop and is killed with SIGKILL at a
// seeded random point; after every kill the registry must verify: no version without its blob, no dangling alias,
// the audit chain intact and matching the metadata, and every push the child reported as done still present.
// The same file is the child: run with BULWARK_CRASH_CHILD set, it registers no test and pushes until killed.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { Rng } from '../../src/core/rng.js';
import { makeOnnx } from './shared.js';
import { openRegistry, type RegistryOptions } from '../../src/supplychain/registry/registry.js';
// The child imports only what a push needs (start-up time is most of a round); the parent loads the rest lazily.

interface ChildConfig {
  options: RegistryOptions;
  models: string[];
}


async function childMain(cfg: ChildConfig): Promise<void> {
  const reg = await openRegistry(cfg.options);
  process.stdout.write('ready\n');
  for (let i = 1; i <= 500; i++) {
    const { info } = await reg.push(cfg.models[i % cfg.models.length]!, {
      name: 'crash',
      ...(i % 3 === 0 ? { aliases: ['production'] } : i % 5 === 0 ? { aliases: ['staging', 'canary'] } : {}),
      data: [{ name: 'train', sha256: 'ab'.repeat(32) }],
      trainingConfig: { step: i },
    });
    process.stdout.write(`pushed ${info.version}\n`);
    if (i % 4 === 0 && info.ordinal > 3) {
      await reg.rollback('crash', 'production').catch(() => undefined);
      process.stdout.write('rolled\n');
    }
  }
  await reg.close();
}

if (process.env['BULWARK_CRASH_CHILD']) {
  await childMain(JSON.parse(process.env['BULWARK_CRASH_CHILD']) as ChildConfig);
} else {
  const SEED = Number(process.env['BULWARK_CRASH_SEED'] ?? 20261129);
  const self = fileURLToPath(import.meta.url);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-crash-'));
  const schemas: string[] = [];
  let pgUrl: string | null = null;
  const keyFile = path.join(tmp, 'keys', 'k');
  const auditKey = path.join(tmp, 'keys', 'audit.pem');
  const models: string[] = [];

  /** Starts a child pushing into `options`; resolves when it is ready. */
  function startChild(options: RegistryOptions): Promise<{ kill: () => Promise<void>; pushed: string[]; lines: string[] }> {
    const cfg: ChildConfig = { options, models };
    const child = spawn(process.execPath, [self], { env: { ...process.env, BULWARK_CRASH_CHILD: JSON.stringify(cfg) }, stdio: ['ignore', 'pipe', 'pipe'] });
    const lines: string[] = [];
    const pushed: string[] = [];
    let stderr = '';
    let buf = '';
    const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
    return new Promise((resolve, reject) => {
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.stdout.on('data', (d: Buffer) => {
        buf += d.toString();
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          lines.push(line);
          if (line.startsWith('pushed ')) pushed.push(line.slice(7));
          if (line === 'ready') resolve({ kill: async () => void (child.kill('SIGKILL'), await exited), pushed, lines });
        }
      });
      child.on('exit', (code, sig) => {
        if (!lines.includes('ready')) reject(new Error(`child exited before ready (code ${code}, signal ${sig}): ${stderr}`));
      });
    });
  }

  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  /**
   * Kills pushing children at seeded random points, one after the other, and checks the registry after each.
   * A point is (k, f): wait until the child has finished k pushes (0..2), then kill it a fraction f of a push's
   * duration later, so kills land in a child's first push (lazy imports, cold JIT) and in warm pushes alike, and
   * anywhere inside them (staging, signature check, scan, blob rename, the transaction).
   */
  async function crashRounds(label: string, options: RegistryOptions, kills: number): Promise<void> {
    const rng = new Rng(SEED);
    const probe = await startChild(options);
    const t0 = Date.now();
    const stamps: number[] = [];
    while (probe.pushed.length < 4 && Date.now() - t0 < 20000) {
      if (probe.pushed.length > stamps.length) stamps.push(Date.now() - t0);
      await sleep(1);
    }
    await probe.kill();
    const firstPush = stamps[0] ?? 500;
    const warmPush = stamps.length >= 4 ? (stamps[3]! - stamps[0]!) / 3 : 100;
    const allReported = new Set(probe.pushed);
    let afterFirst = 0;
    for (let k = 0; k < kills; k++) {
      const done = rng.int(3);
      const frac = rng.next();
      const c = await startChild(options);
      const t1 = Date.now();
      while (c.pushed.length < done && Date.now() - t1 < 20000) await sleep(1);
      const delay = frac * 1.2 * (done === 0 ? firstPush : warmPush);
      await sleep(delay);
      await c.kill();
      for (const v of c.pushed) allReported.add(v);
      if (c.pushed.length > 0) afterFirst++;
      const ctx = `${label}: seed ${SEED}, kill ${k} ${delay.toFixed(1)} ms after push ${done} (first push ~${firstPush} ms, warm ~${warmPush.toFixed(0)} ms), child said ${JSON.stringify(c.lines.slice(-3))}`;
      // Structure only after each kill (signatures are re-verified once at the end: they are not what a crash breaks).
      const reg = await openRegistry({ ...options, requireSignature: false, trustedKeys: [] });
      try {
        const v = await reg.verify();
        assert.equal(v.ok, true, `${ctx}: ${JSON.stringify(v.issues)}`);
        const present = new Set((await reg.versions('crash')).map((x) => x.version));
        for (const r of allReported) assert.ok(present.has(r), `${ctx}: version ${r} was reported pushed but is gone`);
        for (const al of ['production', 'staging', 'canary']) {
          try {
            const info = await reg.show(`crash@${al}`);
            assert.ok(present.has(info.version), `${ctx}: ${al} dangles`);
          } catch (e) {
            assert.equal((e as { code?: string }).code, 'BULWARK_E_REGISTRY_NOT_FOUND', `${ctx}: ${String(e)}`);
          }
        }
      } finally {
        await reg.close();
      }
    }
    assert.ok(afterFirst >= kills / 3, `${label}: only ${afterFirst} of ${kills} kills came after a completed push`);
    // After all the kills the registry still takes a push (no stale lock, no wedged transaction).
    const reg = await openRegistry(options);
    try {
      const { info } = await reg.push(models[0]!, { name: 'crash', aliases: ['production'] });
      assert.deepEqual((await reg.load(`crash@${info.version}`)).bytes, fs.readFileSync(models[0]!));
      const v = await reg.verify();
      assert.equal(v.ok, true, JSON.stringify(v.issues));
      assert.ok(v.audit.checkpoints.verified > 0, 'checkpoints were signed during the pushes');
    } finally {
      await reg.close();
    }
  }

  before(async () => {
    const { generateKeyPair, loadPrivateKey, saveKeyPair } = await import('../../src/supplychain/crypto/keys.js');
    const { signPath, writeSignature } = await import('../../src/supplychain/signing/sign.js');
    await saveKeyPair(keyFile, generateKeyPair());
    fs.writeFileSync(auditKey, generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });
    const priv = loadPrivateKey(keyFile);
    for (let i = 0; i < 3; i++) {
      const f = path.join(tmp, `model-${i}.onnx`);
      makeOnnx(f, i, 16 * 1024); // 256 KiB each: the blob write is a real part of a push
      const r = await signPath(f, priv);
      await writeSignature(r.sigPath, r.envelope);
      models.push(f);
    }
    priv.destroy();
    const pg = (await import('pg')).default;
    for (const url of process.env['BULWARK_TEST_PG'] ? [process.env['BULWARK_TEST_PG']] : ['postgres://root@127.0.0.1:5432/test', 'postgres://postgres@127.0.0.1:5432/test']) {
      const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 });
      try {
        await c.connect();
        await c.end();
        pgUrl = url;
        break;
      } catch {
        await c.end().catch(() => undefined);
      }
    }
    if (!pgUrl && process.env['CI'] === 'true') throw new Error('PostgreSQL is required in CI and is not reachable at 127.0.0.1:5432; .ci/run starts it');
  });

  after(async () => {
    fs.rmSync(tmp, { recursive: true, force: true });
    if (pgUrl && schemas.length) {
      const pg = (await import('pg')).default;
      const c = new pg.Client({ connectionString: pgUrl });
      await c.connect();
      for (const s of schemas) await c.query(`DROP SCHEMA IF EXISTS "${s}" CASCADE`);
      await c.end();
    }
  });

  const policy = (root: string): RegistryOptions => ({ root, requireSignature: true, trustedKeys: [`${keyFile}.pub`], auditKey, checkpointEvery: 2, actor: 'crash-test' });

  describe('crash safety: SIGKILL at random points of a push', () => {
    test('SQLite registry: 30 kills, consistent after each', { timeout: 120000 }, async () => {
      await crashRounds('sqlite', policy(path.join(tmp, 'reg-sqlite')), 30);
    });

    test('PostgreSQL registry: 8 kills, consistent after each', { timeout: 120000 }, async (t) => {
      if (!pgUrl) {
        t.skip('PostgreSQL is not reachable (CI=true makes this an error)');
        return;
      }
      const schema = `bw_crash_${process.pid}_${randomBytes(3).toString('hex')}`;
      schemas.push(schema);
      await crashRounds('postgres', { ...policy(path.join(tmp, 'reg-pg')), db: `${pgUrl}?schema=${schema}` }, 8);
    });
  });
}

import * as fs from 'node:fs';
import { BulwarkError } from '../core/errors.js';
import { writeFileAtomicMode } from '../core/atomic.js';
import { loadAuditVerifier } from '../supplychain/audit/keys.js';
import type { JsonObject } from '../supplychain/audit/canonical.js';
import { withRegistry, parseModelRef, type DatasetInput, type PushOptions, type RegistryOptions, type VersionInfo } from '../supplychain/registry/registry.js';
import type { ScanMode } from '../supplychain/registry/policy.js';
import { numberFlag, parseSubcommand, withShared, printJson, type OptionSpec } from './args.js';

const COMMON_HELP = `Registry options (every subcommand):
      --root DIR           the registry folder: blobs, the default SQLite database, policy.json
                           (default: $BULWARK_REGISTRY)
      --db URL             metadata database: a SQLite file, or postgres://USER@HOST:PORT/DB[?schema=NAME]
                           (default: $BULWARK_REGISTRY_DB, else DIR/registry.db; prefer the variable or
                           PGPASSWORD for secrets: command lines are visible to other users)
      --policy FILE        policy file (default: DIR/policy.json when present; see docs/REGISTRY.md)
      --trusted-key PUB    trust model signatures by this key (repeatable; replaces the policy's trustedKeys)
      --require-signature  refuse unsigned or untrusted models on push, re-verify signatures on every load
      --audit-key KEY      sign audit checkpoints with KEY (a Bulwark KEY or an Ed25519 PEM private key)
      --checkpoint-every N records between signed audit checkpoints (default 100)
      --by WHO             who is acting, for lineage and audit (default $USER)
      --json               print one JSON object
`;

const HELP = `Usage: bulwark registry <subcommand> [options]

A model registry: content-addressed model files (SHA-256) with immutable versions, aliases such as production
and staging, rollback as a recorded alias move, lineage per version, a signature and scan policy, and an audit
record for every change. Metadata lives in SQLite (default) or PostgreSQL.

Subcommands:
  push <file> <name>[@<version>]   store a model as a new version (signature from <file>.sig, training record
                                   from <file>.train.json when present)
  pull <name>[@<ref>] [--out FILE] write a version's bytes (digest and, by policy, signature checked first)
  list [<name>]                    models, or the versions of one model
  show <name>[@<ref>]              a version: digest, aliases, lineage, scan summary, signature
  alias <name>@<version> <alias>   point an alias at a version (recorded)
  rollback <name> <alias> [--to V] move an alias back to its previous version (recorded)
  history <name> [<alias>]         the recorded alias moves
  verify [<name>]                  re-hash blobs, re-verify signatures, check aliases, the audit chain and that
                                   metadata matches the audit log; exit 1 on any problem
  bom <name>[@<ref>] [--out FILE]  the CycloneDX 1.6 ML-BOM of a version

<ref> is a version, an alias, or "latest" (the default).

push options:
      --sig SIG              the signature (default <file>.sig when present); --no-sig pushes unsigned
      --parent REF           the version this one derives from (<version>, <alias> or <name>@<ref>)
      --data FILE|NAME=sha256:HEX   training data: a file to hash, or a name with a known hash (repeatable)
      --eval-data FILE|NAME=sha256:HEX   evaluation data (repeatable)
      --training-record FILE a training record (default <file>.train.json when present); --no-training-record
      --training-config FILE JSON object of training settings
      --metrics FILE         JSON object of metric name: number
      --alias NAME           point this alias at the new version in the same transaction (repeatable)
      --scan MODE            off, record, or enforce (refuse unsafe findings; the default)

Exit codes: 0 ok; 1 refused by policy (unsigned, untrusted or tampered signature, unsafe scan), a damaged blob, or
verify found problems; 2 usage or input error.

${COMMON_HELP}`;

/** Flags shared by every registry and audit subcommand. */
export const REGISTRY_FLAGS: OptionSpec = {
  root: { type: 'string' },
  db: { type: 'string' },
  policy: { type: 'string' },
  'trusted-key': { type: 'string', multiple: true },
  'require-signature': { type: 'boolean' },
  'audit-key': { type: 'string' },
  'checkpoint-every': { type: 'string' },
  by: { type: 'string' },
  json: { type: 'boolean' },
};

const SUB_FLAGS: Record<string, OptionSpec> = {
  push: {
    sig: { type: 'string' },
    'no-sig': { type: 'boolean' },
    parent: { type: 'string' },
    data: { type: 'string', multiple: true },
    'eval-data': { type: 'string', multiple: true },
    'training-record': { type: 'string' },
    'no-training-record': { type: 'boolean' },
    'training-config': { type: 'string' },
    metrics: { type: 'string' },
    alias: { type: 'string', multiple: true },
    scan: { type: 'string' },
  },
  pull: { out: { type: 'string', short: 'o' } },
  list: {},
  show: {},
  alias: {},
  rollback: { to: { type: 'string' } },
  history: {},
  verify: { 'audit-trusted-key': { type: 'string', multiple: true } },
  bom: { out: { type: 'string', short: 'o' } },
};

/** Registry options from the common flags (and the BULWARK_REGISTRY / BULWARK_REGISTRY_DB variables). */
export function registryOptionsFromFlags(v: Record<string, unknown>, help: string): RegistryOptions {
  const root = (v['root'] as string | undefined) ?? process.env['BULWARK_REGISTRY'];
  if (!root) throw new BulwarkError('BULWARK_E_USAGE', 'missing --root DIR (or set BULWARK_REGISTRY)', { hint: `usage:\n${help}` });
  const db = (v['db'] as string | undefined) ?? process.env['BULWARK_REGISTRY_DB'];
  const o: RegistryOptions = { root };
  if (db) o.db = db;
  if (typeof v['policy'] === 'string') o.policyFile = v['policy'];
  if (Array.isArray(v['trusted-key'])) o.trustedKeys = v['trusted-key'] as string[];
  if (v['require-signature'] === true) o.requireSignature = true;
  if (typeof v['audit-key'] === 'string') o.auditKey = v['audit-key'];
  if (v['checkpoint-every'] !== undefined) o.checkpointEvery = numberFlag(v, 'checkpoint-every', 100, 1, 1_000_000, true);
  if (typeof v['by'] === 'string') o.actor = v['by'];
  return o;
}

function readJsonObject(file: string, what: string): JsonObject {
  let text: string;
  try {
    if (fs.statSync(file).size > 1024 * 1024) throw new BulwarkError('BULWARK_E_LIMIT', `${what}: ${file} is larger than 1 MiB`);
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if (e instanceof BulwarkError) throw e;
    throw new BulwarkError('BULWARK_E_FILE_NOT_FOUND', `${what}: no such file: ${file}`);
  }
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch {
    throw new BulwarkError('BULWARK_E_DATA_FORMAT', `${what}: ${file} is not valid JSON`);
  }
  if (typeof j !== 'object' || j === null || Array.isArray(j)) throw new BulwarkError('BULWARK_E_DATA_FORMAT', `${what}: ${file} must hold a JSON object`);
  return j as JsonObject;
}

/** `--data` values: `NAME=sha256:HEX` names a dataset with a known hash; anything else is a file to hash. */
export function parseDataFlag(s: string, role: 'training' | 'test'): DatasetInput {
  const m = /^(.+)=sha256:([0-9a-fA-F]{64})$/.exec(s);
  if (m) return { name: m[1]!, sha256: m[2]!.toLowerCase(), role };
  if (/=sha256:/.test(s)) throw new BulwarkError('BULWARK_E_ARG', `--data ${JSON.stringify(s)}: the hash must be 64 hex characters (NAME=sha256:HEX)`);
  return { path: s, role };
}

function positionals(p: string[], min: number, max: number, usage: string): string[] {
  if (p.length < min || p.length > max) throw new BulwarkError('BULWARK_E_USAGE', `expected ${usage}`, { hint: `usage:\n${HELP}` });
  return p;
}

function describe(info: VersionInfo): string {
  const l = info.lineage;
  const lines = [
    `${info.name}@${info.version}  (#${info.ordinal}${info.aliases.length ? `, aliases: ${info.aliases.join(', ')}` : ''})`,
    `  digest:    sha256:${info.digest}`,
    `  size:      ${info.size} bytes, file ${info.filename}`,
    `  pushed:    ${info.createdAt} by ${info.createdBy} (audit record ${info.auditSeq})`,
    `  signature: ${info.signature === null ? 'none' : info.signature.keyId ? `verified, key ${info.signature.keyId}` : 'stored unverified'}`,
  ];
  if (l.parent) lines.push(`  parent:    ${l.parent.name}@${l.parent.version} (sha256:${l.parent.digest.slice(0, 16)}...)`);
  for (const d of l.data) lines.push(`  data:      ${d.role ?? 'training'} ${d.name}${d.sha256 ? ` sha256:${d.sha256.slice(0, 16)}...` : ''}`);
  if (l.training?.metrics && Object.keys(l.training.metrics).length) lines.push(`  metrics:   ${Object.entries(l.training.metrics).map(([k, v]) => `${k}=${v}`).join(', ')}`);
  if (l.scan) lines.push(`  scan:      ${l.scan['unsafe'] ? 'UNSAFE' : 'ok'} (highest finding: ${String(l.scan['maxSeverity'] ?? 'none')})`);
  return lines.join('\n');
}

/** `bulwark registry ...`: returns the exit code (usage and input errors throw, exit 2). */
export async function run(argv: string[]): Promise<number> {
  const parsed = parseSubcommand(argv, 'registry', withShared(SUB_FLAGS, REGISTRY_FLAGS), HELP, true);
  if (typeof parsed === 'number') return parsed;
  const { sub, flags: p } = parsed;
  const v = p.values;
  const json = v['json'] === true;
  const opts = registryOptionsFromFlags(v, HELP);
  const out = (obj: unknown, text: string): void => {
    if (json) printJson(obj);
    else process.stdout.write(text.endsWith('\n') ? text : text + '\n');
  };

  switch (sub) {
    case 'push': {
      const [file, target] = positionals(p.positionals, 2, 2, 'push <file> <name>[@<version>]');
      const ref = parseModelRef(target!, 'push');
      if (v['scan'] !== undefined) {
        if (!['off', 'record', 'enforce'].includes(v['scan'] as string)) throw new BulwarkError('BULWARK_E_ARG', `--scan must be off, record or enforce, got ${JSON.stringify(v['scan'])}`);
        opts.scan = v['scan'] as ScanMode;
      }
      if (v['sig'] !== undefined && v['no-sig']) throw new BulwarkError('BULWARK_E_USAGE', 'give --sig or --no-sig, not both');
      if (v['training-record'] !== undefined && v['no-training-record']) throw new BulwarkError('BULWARK_E_USAGE', 'give --training-record or --no-training-record, not both');
      const po: PushOptions = { name: ref.name };
      if (ref.ref !== undefined) po.version = ref.ref;
      if (typeof v['sig'] === 'string') po.signature = v['sig'];
      if (v['no-sig']) po.signature = null;
      if (typeof v['parent'] === 'string') po.parent = v['parent'];
      const data = [...((v['data'] as string[] | undefined) ?? []).map((d) => parseDataFlag(d, 'training')), ...((v['eval-data'] as string[] | undefined) ?? []).map((d) => parseDataFlag(d, 'test'))];
      if (data.length) po.data = data;
      if (typeof v['training-record'] === 'string') po.trainingRecord = v['training-record'];
      if (v['no-training-record']) po.trainingRecord = null;
      if (typeof v['training-config'] === 'string') po.trainingConfig = readJsonObject(v['training-config'], '--training-config');
      if (typeof v['metrics'] === 'string') po.metrics = readJsonObject(v['metrics'], '--metrics') as Record<string, number>;
      if (Array.isArray(v['alias'])) po.aliases = v['alias'] as string[];
      if (typeof v['by'] === 'string') po.by = v['by'];
      const r = await withRegistry(opts, (reg) => reg.push(file!, po));
      if (!json) for (const w of r.warnings) process.stderr.write(`bulwark: warning: ${w}\n`);
      out({ ...r.info, warnings: r.warnings }, `pushed ${r.info.name}@${r.info.version} sha256:${r.info.digest}${r.info.aliases.length ? ` (aliases: ${r.info.aliases.join(', ')})` : ''}`);
      return 0;
    }
    case 'pull': {
      const [target] = positionals(p.positionals, 1, 1, 'pull <name>[@<ref>]');
      const r = await withRegistry({ ...opts, create: false }, (reg) => reg.pull(target!, typeof v['out'] === 'string' ? v['out'] : undefined));
      out({ ...r.info, path: r.path }, `wrote ${r.path} (${r.info.name}@${r.info.version}, sha256:${r.info.digest}, verified)`);
      return 0;
    }
    case 'list': {
      const [name] = positionals(p.positionals, 0, 1, 'list [<name>]');
      if (name === undefined) {
        const models = await withRegistry({ ...opts, create: false }, (reg) => reg.list());
        const lines = models.map((m) => `${m.name}  ${m.versions} version(s), latest ${m.latest}${Object.keys(m.aliases).length ? `  ${Object.entries(m.aliases).map(([a, ver]) => `${a}->${ver}`).join(' ')}` : ''}`);
        out({ models }, lines.length ? lines.join('\n') : '(empty registry)');
      } else {
        const versions = await withRegistry({ ...opts, create: false }, (reg) => reg.versions(name));
        const lines = versions.map((x) => `${x.name}@${x.version}  sha256:${x.digest.slice(0, 16)}...  ${x.createdAt}  ${x.createdBy}${x.aliases.length ? `  [${x.aliases.join(', ')}]` : ''}`);
        out({ name, versions }, lines.join('\n'));
      }
      return 0;
    }
    case 'show': {
      const [target] = positionals(p.positionals, 1, 1, 'show <name>[@<ref>]');
      const info = await withRegistry({ ...opts, create: false }, (reg) => reg.show(target!));
      out(info, describe(info));
      return 0;
    }
    case 'alias': {
      const [target, alias] = positionals(p.positionals, 2, 2, 'alias <name>@<version> <alias>');
      const ref = parseModelRef(target!, 'alias');
      if (ref.ref === undefined) throw new BulwarkError('BULWARK_E_USAGE', 'alias needs <name>@<version>');
      const m = await withRegistry(opts, (reg) => reg.setAlias(ref.name, alias!, ref.ref!, typeof v['by'] === 'string' ? { by: v['by'] } : {}));
      out(m, m.changed ? `${m.name}#${m.alias}: ${m.from ?? '(new)'} -> ${m.to}` : `${m.name}#${m.alias} already points to ${m.to}`);
      return 0;
    }
    case 'rollback': {
      const [name, alias] = positionals(p.positionals, 2, 2, 'rollback <name> <alias>');
      const m = await withRegistry(opts, (reg) => reg.rollback(name!, alias!, { ...(typeof v['to'] === 'string' ? { to: v['to'] } : {}), ...(typeof v['by'] === 'string' ? { by: v['by'] } : {}) }));
      out(m, m.changed ? `rolled back ${m.name}#${m.alias}: ${m.from} -> ${m.to}` : `${m.name}#${m.alias} already points to ${m.to}`);
      return 0;
    }
    case 'history': {
      const [name, alias] = positionals(p.positionals, 1, 2, 'history <name> [<alias>]');
      const moves = await withRegistry({ ...opts, create: false }, (reg) => reg.aliasHistory(name!, alias));
      out({ moves }, moves.map((m) => `${m.at}  ${m.alias.padEnd(12)} ${m.action.padEnd(8)} ${m.from ?? '(new)'} -> ${m.to}  by ${m.by} (audit ${m.auditSeq})`).join('\n') || '(no alias moves)');
      return 0;
    }
    case 'verify': {
      const [name] = positionals(p.positionals, 0, 1, 'verify [<name>]');
      const verifiers = ((v['audit-trusted-key'] as string[] | undefined) ?? []).map((k) => loadAuditVerifier(k, '--audit-trusted-key'));
      const r = await withRegistry({ ...opts, create: false }, (reg) => reg.verify({ ...(name ? { name } : {}), auditVerifiers: verifiers }));
      if (json) printJson(r);
      else {
        process.stdout.write(`${r.ok ? 'OK' : 'PROBLEMS FOUND'}: ${r.versions} version(s), ${r.aliases} alias(es), audit log ${r.audit.records} record(s), ${r.audit.checkpoints.verified}/${r.audit.checkpoints.total} checkpoint(s) verified\n`);
        for (const i of r.issues) process.stdout.write(`  - [${i.kind}] ${i.message}\n`);
        for (const w of r.warnings) process.stderr.write(`bulwark: warning: ${w}\n`);
      }
      return r.ok ? 0 : 1;
    }
    case 'bom': {
      const [target] = positionals(p.positionals, 1, 1, 'bom <name>[@<ref>]');
      const bom = await withRegistry({ ...opts, create: false }, (reg) => reg.bom(target!));
      const text = JSON.stringify(bom, null, 2) + '\n';
      if (typeof v['out'] === 'string') {
        await writeFileAtomicMode(v['out'], text, 0o644, '--out');
        out({ out: v['out'], serialNumber: bom.serialNumber }, `wrote ${v['out']} (CycloneDX ${bom.specVersion})`);
      } else process.stdout.write(json ? JSON.stringify(bom) + '\n' : text);
      return 0;
    }
  }
  throw new BulwarkError('BULWARK_E_INTERNAL', `unhandled registry subcommand ${sub}`);
}

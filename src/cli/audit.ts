import * as fs from 'node:fs';
import { BulwarkError } from '../core/errors.js';
import { AtomicFile } from '../core/atomic.js';
import { loadAuditVerifier } from '../supplychain/audit/keys.js';
import { verifyAuditExport } from '../supplychain/audit/log.js';
import type { AuditVerifyResult } from '../supplychain/audit/verify.js';
import type { JsonValue } from '../supplychain/audit/canonical.js';
import { withRegistry } from '../supplychain/registry/registry.js';
import { parseSubcommand, withShared, printJson, type OptionSpec } from './args.js';
import { REGISTRY_FLAGS, registryOptionsFromFlags } from './registry.js';

const HELP = `Usage: bulwark audit <subcommand> [options]

The registry's audit log: append-only records, each carrying the SHA-256 of the previous record's canonical
JSON, with checkpoints signed every N records. Every registry change is a record.

Subcommands:
  verify [--key PUB]... [--file EXPORT]  check the chain, the head marker and the checkpoint signatures; name every
                                         edited, deleted, reordered or truncated record by sequence number.
                                         Exit 0 intact, 1 tampering found.
  export [--out FILE]                    write the log as JSON lines (one canonical record per line, checkpoints
                                         and the head marker as their own lines)
  checkpoint --audit-key KEY             sign a checkpoint of the current head now
  append --action A [--subject S] [--data JSON]   append an event (for scripts and integrations)

Options:
      --key PUB      a trusted checkpoint key (Bulwark KEY.pub or Ed25519 PEM public key; repeatable; added to
                     the policy's audit.trustedKeys and the audit signing key's public half)
      --file EXPORT  verify an export file instead of the database
      --out FILE     where export writes (default: stdout)
      --action A --subject S --data JSON   the event of append
      --root DIR, --db URL, --policy FILE, --audit-key KEY, --checkpoint-every N, --by WHO, --json
                     as for \`bulwark registry\`
`;

const SUB_FLAGS: Record<string, OptionSpec> = {
  verify: { key: { type: 'string', multiple: true }, file: { type: 'string' } },
  export: { out: { type: 'string', short: 'o' } },
  checkpoint: {},
  append: { action: { type: 'string' }, subject: { type: 'string' }, data: { type: 'string' } },
};

function report(r: AuditVerifyResult, json: boolean): number {
  if (json) printJson(r);
  else {
    process.stdout.write(`${r.ok ? 'INTACT' : 'TAMPERING FOUND'}: ${r.records} record(s), last ${r.lastSeq}; ${r.checkpoints.verified}/${r.checkpoints.total} checkpoint(s) verified\n`);
    for (const i of r.issues) process.stdout.write(`  - ${i.kind} at ${i.toSeq !== undefined ? `${i.seq}..${i.toSeq}` : i.seq}: ${i.message}\n`);
    for (const w of r.warnings) process.stderr.write(`bulwark: warning: ${w}\n`);
  }
  return r.ok ? 0 : 1;
}

/** `bulwark audit ...`: returns the exit code (0 intact, 1 tampering found; usage errors throw, exit 2). */
export async function run(argv: string[]): Promise<number> {
  const parsed = parseSubcommand(argv, 'audit', withShared(SUB_FLAGS, REGISTRY_FLAGS), HELP);
  if (typeof parsed === 'number') return parsed;
  const { sub, flags: p } = parsed;
  const v = p.values;
  const json = v['json'] === true;

  switch (sub) {
    case 'verify': {
      const verifiers = ((v['key'] as string[] | undefined) ?? []).map((k) => loadAuditVerifier(k, '--key'));
      if (typeof v['file'] === 'string') {
        let text: string;
        try {
          text = fs.readFileSync(v['file'], 'utf8');
        } catch {
          throw new BulwarkError('BULWARK_E_FILE_NOT_FOUND', `--file: cannot read ${v['file']}`);
        }
        return report(verifyAuditExport(text, verifiers), json);
      }
      const opts = registryOptionsFromFlags(v, HELP);
      const r = await withRegistry({ ...opts, create: false }, (reg) => reg.audit.verify([...reg.policy.auditVerifiers, ...verifiers]));
      return report(r, json);
    }
    case 'export': {
      const opts = registryOptionsFromFlags(v, HELP);
      const outPath = v['out'] as string | undefined;
      const n = await withRegistry({ ...opts, create: false }, async (reg) => {
        if (!outPath) return reg.audit.exportJsonl((line) => void process.stdout.write(line));
        const f = await AtomicFile.create(outPath, 0o644, '--out');
        try {
          const count = await reg.audit.exportJsonl((line) => f.write(Buffer.from(line, 'utf8')));
          await f.commit();
          return count;
        } catch (e) {
          await f.abort();
          throw e;
        }
      });
      if (outPath) {
        if (json) printJson({ out: outPath, records: n });
        else process.stdout.write(`wrote ${n} record(s) to ${outPath}\n`);
      }
      return 0;
    }
    case 'checkpoint': {
      const opts = registryOptionsFromFlags(v, HELP);
      const cp = await withRegistry({ ...opts, create: false }, (reg) => reg.audit.checkpoint());
      if (json) printJson({ checkpoint: cp });
      else process.stdout.write(cp ? `signed a checkpoint of record ${cp.seq} (key ${cp.keyId})\n` : 'nothing to sign: the head already has a checkpoint (or the log is empty)\n');
      return 0;
    }
    case 'append': {
      const opts = registryOptionsFromFlags(v, HELP);
      if (typeof v['action'] !== 'string') throw new BulwarkError('BULWARK_E_USAGE', 'append needs --action', { hint: `usage:\n${HELP}` });
      let data: JsonValue | undefined;
      if (typeof v['data'] === 'string') {
        try {
          data = JSON.parse(v['data']) as JsonValue;
        } catch {
          throw new BulwarkError('BULWARK_E_ARG', '--data must be JSON');
        }
      }
      const rec = await withRegistry(opts, (reg) =>
        reg.appendAudit({ action: v['action'] as string, ...(typeof v['subject'] === 'string' ? { subject: v['subject'] } : {}), ...(typeof v['by'] === 'string' ? { actor: v['by'] } : {}), ...(data !== undefined ? { data } : {}) }),
      );
      if (json) printJson(rec);
      else process.stdout.write(`appended record ${rec.seq}\n`);
      return 0;
    }
  }
  throw new BulwarkError('BULWARK_E_INTERNAL', `unhandled audit subcommand ${sub}`);
}

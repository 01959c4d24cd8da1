import { BulwarkError } from '../core/errors.js';
import { loadPrivateKey, privateKeyPermissionWarning } from '../supplychain/crypto/index.js';
import { signPath, writeSignature } from '../supplychain/signing/index.js';
import { parseFlags, printJson, required } from './args.js';

const HELP = `Usage: bulwark sign <model file or folder> --key KEY [--out SIG] [--json]

Signs a model with both halves of the hybrid key (Ed25519 and ML-DSA-65). The signature is an in-toto
Statement v1 (OpenSSF model signing predicate: SHA-256 of every file) in a DSSE envelope.
A folder is signed whole; symbolic links inside it are refused.

Options:
  -k, --key KEY   the private key written by \`bulwark keygen\`
  -o, --out SIG   where to write the signature (default: <model>.sig for a file, <folder>/model.sig for a folder;
                  a signature inside the folder is left out of the signed files)
      --json      print one JSON object
`;

/** A progress line on stderr for long work (TTY only). */
export function progress(label: string, enabled: boolean): { update: (done: number, total: number) => void; end: () => void } {
  let last = 0;
  let shown = false;
  return {
    update(done, total) {
      if (!enabled) return;
      const now = Date.now();
      if (now - last < 100 && done < total) return;
      last = now;
      shown = true;
      const pct = total > 0 ? Math.floor((100 * done) / total) : 100;
      const width = 30;
      const fill = Math.round((width * pct) / 100);
      process.stderr.write(`\r${label} [${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${pct}% ${(done / 1e6).toFixed(1)}/${(total / 1e6).toFixed(1)} MB`);
    },
    end() {
      if (shown) process.stderr.write('\r\x1b[K');
    },
  };
}

/** The single positional argument of a command. */
export function onePositional(positionals: string[], what: string, help: string): string {
  if (positionals.length !== 1) {
    throw new BulwarkError('BULWARK_E_USAGE', positionals.length === 0 ? `missing the ${what} argument` : `expected one ${what}, got ${positionals.length} arguments`, { hint: `usage:\n${help}` });
  }
  return positionals[0]!;
}

export async function run(argv: string[]): Promise<number> {
  const p = parseFlags(argv, { key: { type: 'string', short: 'k' }, out: { type: 'string', short: 'o' }, json: { type: 'boolean' } }, HELP, true);
  if (!p) return 0;
  const model = onePositional(p.positionals, 'model file or folder', HELP);
  const keyFile = required(p.values, 'key', HELP);
  const json = p.values.json === true;
  const key = loadPrivateKey(keyFile, '--key');
  const warn = privateKeyPermissionWarning(keyFile);
  if (warn) process.stderr.write(`bulwark: warning: ${warn}\n`);
  const bar = progress('hashing', !json && process.stderr.isTTY === true);
  try {
    const r = await signPath(model, key, { ...(typeof p.values.out === 'string' ? { sigPath: p.values.out } : {}), onProgress: bar.update });
    bar.end();
    await writeSignature(r.sigPath, r.envelope);
    const info = {
      model,
      signature: r.sigPath,
      kind: r.model.kind,
      files: r.model.files.length,
      bytes: r.model.bytes,
      keyId: r.keyId,
      subject: { name: r.statement.subject[0].name, sha256: r.statement.subject[0].digest.sha256 },
      ignored: r.statement.predicate.serialization.ignore_paths,
    };
    if (json) printJson(info);
    else {
      process.stdout.write(`signed ${model} (${info.kind}, ${info.files} file(s), ${(info.bytes / 1e6).toFixed(1)} MB) with Ed25519 + ML-DSA-65\n`);
      process.stdout.write(`signature: ${info.signature}\nkey id:    ${info.keyId}\ndigest:    sha256:${info.subject.sha256}\n`);
    }
    return 0;
  } finally {
    bar.end();
    key.destroy();
  }
}

import { loadPublicKey } from '../supplychain/crypto/index.js';
import { verifyPath } from '../supplychain/signing/index.js';
import { parseFlags, printJson, required } from './args.js';
import { onePositional, progress } from './sign.js';

const HELP = `Usage: bulwark verify <model file or folder> --key KEY.pub [--sig SIG] [--json]

Verifies a model against its hybrid signature. Valid means BOTH the Ed25519 and the ML-DSA-65 signature verify
with KEY.pub, and every file matches the signed SHA-256 digests: nothing modified, added, removed or renamed.

Exit codes: 0 valid, 1 invalid (the reasons are printed), 2 usage or input error (missing file, malformed signature).

Options:
  -k, --key KEY.pub  the signer's public key
  -s, --sig SIG      the signature (default: <model>.sig for a file, <folder>/model.sig for a folder)
      --json         print one JSON object: {valid, reasons, warnings, files, signatures, keyId, ...}
`;

export async function run(argv: string[]): Promise<number> {
  const p = parseFlags(argv, { key: { type: 'string', short: 'k' }, sig: { type: 'string', short: 's' }, json: { type: 'boolean' } }, HELP, true);
  if (!p) return 0;
  const model = onePositional(p.positionals, 'model file or folder', HELP);
  const pub = loadPublicKey(required(p.values, 'key', HELP), '--key');
  const json = p.values.json === true;
  const bar = progress('hashing', !json && process.stderr.isTTY === true);
  let r;
  try {
    r = await verifyPath(model, pub, typeof p.values.sig === 'string' ? p.values.sig : undefined, { onProgress: bar.update });
  } finally {
    bar.end();
  }
  if (json) printJson(r);
  else {
    const counts = r.files.length ? ` (${r.files.length} file(s), ${(r.bytes / 1e6).toFixed(1)} MB)` : '';
    process.stdout.write(`${r.valid ? 'VALID' : 'INVALID'}: ${model}${counts}\n`);
    process.stdout.write(`  Ed25519: ${r.signatures.ed25519}, ML-DSA-65: ${r.signatures.mlDsa65}; key id ${r.keyId}\n`);
    for (const reason of r.reasons) process.stdout.write(`  - ${reason}\n`);
    const bad = r.files.filter((f) => f.status !== 'ok');
    for (const f of bad.slice(0, 50)) process.stdout.write(`    ${f.status.padEnd(8)} ${f.name}\n`);
    if (bad.length > 50) process.stdout.write(`    ... and ${bad.length - 50} more (use --json for the full list)\n`);
    for (const w of r.warnings) process.stderr.write(`bulwark: warning: ${w}\n`);
  }
  return r.valid ? 0 : 1;
}

import { loadPrivateKey, privateKeyPermissionWarning, decryptFile } from '../supplychain/crypto/index.js';
import { BulwarkError } from '../core/errors.js';
import { parseFlags, printJson, required } from './args.js';
import { onePositional, progress } from './sign.js';

const HELP = `Usage: bulwark decrypt <F.enc> --key KEY [--out F] [--json]

Decrypts a file written by \`bulwark encrypt\`. Every chunk is authenticated; a wrong key, a modified byte,
a truncated file or reordered chunks fail with BULWARK_E_DECRYPT (exit 1), and no output file is left behind.
A file that is not a Bulwark encrypted file fails with BULWARK_E_ENC_FORMAT (exit 2).

Options:
  -k, --key KEY   the private key written by \`bulwark keygen\`
  -o, --out F     the decrypted file (mode 0600; default: the input name without .enc)
      --json      print one JSON object
`;

export async function run(argv: string[]): Promise<number> {
  const p = parseFlags(argv, { key: { type: 'string', short: 'k' }, out: { type: 'string', short: 'o' }, json: { type: 'boolean' } }, HELP, true);
  if (!p) return 0;
  const input = onePositional(p.positionals, 'encrypted file', HELP);
  const keyFile = required(p.values, 'key', HELP);
  let out = typeof p.values.out === 'string' && p.values.out.length > 0 ? p.values.out : undefined;
  if (out === undefined) {
    if (!input.endsWith('.enc') || input.length <= 4) throw new BulwarkError('BULWARK_E_USAGE', 'missing required flag --out (the input name does not end in .enc)', { hint: `usage:\n${HELP}` });
    out = input.slice(0, -4);
  }
  const json = p.values.json === true;
  const key = loadPrivateKey(keyFile, '--key');
  const warn = privateKeyPermissionWarning(keyFile);
  if (warn) process.stderr.write(`bulwark: warning: ${warn}\n`);
  const bar = progress('decrypting', !json && process.stderr.isTTY === true);
  try {
    const r = await decryptFile(input, out, key, { onProgress: bar.update });
    bar.end();
    if (json) printJson(r);
    else process.stdout.write(`decrypted ${input} -> ${out} (${r.plaintextBytes} bytes, ${r.chunks} chunk(s), all authenticated)\n`);
    return 0;
  } finally {
    bar.end();
    key.destroy();
  }
}

import { DEFAULT_CHUNK_SIZE, MAX_CHUNK_SIZE, MIN_CHUNK_SIZE, encryptFile, loadPublicKey } from '../supplychain/crypto/index.js';
import { numberFlag, parseFlags, printJson, required } from './args.js';
import { onePositional, progress } from './sign.js';

const HELP = `Usage: bulwark encrypt <file> --key KEY.pub [--out F.enc] [--chunk-size BYTES] [--json]

Encrypts a file at rest: AES-256-GCM with a fresh data key, in authenticated chunks; the data key is wrapped
for KEY.pub with a hybrid X25519 + ML-KEM-768 key encapsulation. Only the matching private key decrypts.
The output is written atomically (a temporary file renamed into place).

Options:
  -k, --key KEY.pub      the recipient's public key
  -o, --out F.enc        the encrypted file (default: <file>.enc)
      --chunk-size BYTES plaintext bytes per chunk (default ${DEFAULT_CHUNK_SIZE})
      --json             print one JSON object
`;

export async function run(argv: string[]): Promise<number> {
  const p = parseFlags(argv, { key: { type: 'string', short: 'k' }, out: { type: 'string', short: 'o' }, 'chunk-size': { type: 'string' }, json: { type: 'boolean' } }, HELP, true);
  if (!p) return 0;
  const input = onePositional(p.positionals, 'file', HELP);
  const pub = loadPublicKey(required(p.values, 'key', HELP), '--key');
  const out = typeof p.values.out === 'string' && p.values.out.length > 0 ? p.values.out : `${input}.enc`;
  const chunkSize = numberFlag(p.values, 'chunk-size', DEFAULT_CHUNK_SIZE, MIN_CHUNK_SIZE, MAX_CHUNK_SIZE, true);
  const json = p.values.json === true;
  const bar = progress('encrypting', !json && process.stderr.isTTY === true);
  try {
    const r = await encryptFile(input, out, pub, { chunkSize, onProgress: bar.update });
    bar.end();
    if (json) printJson(r);
    else process.stdout.write(`encrypted ${input} -> ${out} (${r.plaintextBytes} bytes, ${r.chunks} chunk(s)) for key ${r.recipientKeyId}\n`);
    return 0;
  } finally {
    bar.end();
  }
}

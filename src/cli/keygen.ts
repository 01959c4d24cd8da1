import { generateKeyPair, saveKeyPair } from '../supplychain/crypto/index.js';
import { parseFlags, printJson, required } from './args.js';

const HELP = `Usage: bulwark keygen --out KEY [--force] [--json]

Makes a hybrid key pair and writes two files:
  KEY      the private key (mode 0600): signs (sign) and decrypts (decrypt). Keep it secret.
  KEY.pub  the public key: verifies (verify) and encrypts (encrypt). Share it.
Signing keys: Ed25519 + ML-DSA-65. Encryption keys: X25519 + ML-KEM-768.

Options:
  -o, --out KEY   where to write the private key; the public key goes to KEY.pub
      --force     replace existing key files (default: refuse)
      --json      print one JSON object
`;

export async function run(argv: string[]): Promise<number> {
  const p = parseFlags(argv, { out: { type: 'string', short: 'o' }, force: { type: 'boolean' }, json: { type: 'boolean' } }, HELP);
  if (!p) return 0;
  const out = required(p.values, 'out', HELP);
  const pair = generateKeyPair();
  try {
    const paths = await saveKeyPair(out, pair, { force: p.values.force === true });
    const info = { privateKey: paths.privateKey, publicKey: paths.publicKey, signingKeyId: pair.publicKey.signing.keyId, encryptionKeyId: pair.publicKey.encryption.keyId };
    if (p.values.json) printJson(info);
    else {
      process.stdout.write(
        [
          `private key: ${info.privateKey} (mode 0600; keep it secret)`,
          `public key:  ${info.publicKey}`,
          `signing key id:    ${info.signingKeyId}`,
          `encryption key id: ${info.encryptionKeyId}`,
        ].join('\n') + '\n',
      );
    }
    return 0;
  } finally {
    pair.privateKey.destroy();
  }
}

// Regenerates docs/ERRORS.md from the error registry (run after `npm run build`).
import { writeFileSync } from 'node:fs';
const { renderErrorTable } = await import('../dist/src/core/errors.js');
writeFileSync(new URL('../docs/ERRORS.md', import.meta.url), `# Error codes\n\nEvery error Bulwark reports carries one of these codes, a message naming the argument at fault, and a hint.\nThe CLI exits with the code's exit status; services answer with its HTTP status.\n\n${renderErrorTable()}\n`);

// Regenerates docs/config.md from the schema.
//   node dist/daemon/config/gen-doc.js            write docs/config.md
//   node dist/daemon/config/gen-doc.js --check    exit 1 when docs/config.md is stale
//   node dist/daemon/config/gen-doc.js --stdout   print instead of writing
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { renderConfigDoc } from './doc.js';

/** docs/config.md of the work tree, from dist/daemon/config/ (compiled) or daemon/config/ (source). */
export function configDocPath(): string {
  const here = fileURLToPath(new URL('.', import.meta.url));
  const root = here.includes('/dist/') ? new URL('../../../', import.meta.url) : new URL('../../', import.meta.url);
  return fileURLToPath(new URL('docs/config.md', root));
}

function main(argv: string[]): number {
  const text = renderConfigDoc();
  if (argv.includes('--stdout')) {
    process.stdout.write(text);
    return 0;
  }
  const file = configDocPath();
  if (argv.includes('--check')) {
    let current = '';
    try {
      current = readFileSync(file, 'utf8');
    } catch {
      // a missing file is stale
    }
    if (current === text) return 0;
    process.stderr.write(`${file} is stale: run node dist/daemon/config/gen-doc.js\n`);
    return 1;
  }
  writeFileSync(file, text);
  process.stdout.write(`wrote ${file}\n`);
  return 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) process.exit(main(process.argv.slice(2)));

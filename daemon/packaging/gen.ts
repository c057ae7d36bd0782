// Writes the man pages and nrdctl's bash completion into a directory for scripts/package.sh:
// `node dist/daemon/packaging/gen.js OUTDIR VERSION`. Each man page is rendered from what the built
// program prints for --help (run here, not copied), the completion from nrdctl's command table.
// Not shipped: the package contains its output, not this program.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { commands } from '../cli/commands.js';
import { renderBashCompletion, renderManPage, type ManPage } from './docs.js';

const daemonDir = fileURLToPath(new URL('..', import.meta.url));

const FILES: ReadonlyArray<readonly [string, string]> = [
  ['/etc/nrd/site.yaml', 'the site file (see /usr/share/doc/nrd/README.md)'],
  ['/run/nrd/nrd.sock', 'the control socket nrdctl talks to'],
  ['/var/lib/nrd', 'node state, and the embedded etcd\'s data when no etcd endpoints are configured'],
  ['/sys/fs/bpf/nrd', 'pinned BPF maps and links'],
];

interface Program {
  name: string;
  /** The compiled entry point, relative to dist/daemon. */
  main: string;
  summary: string;
  seeAlso: string;
  /** Optional programs (written by another part of the tree) are left out when not built. */
  optional?: boolean;
}

const PROGRAMS: readonly Program[] = [
  { name: 'nrd', main: 'main.js', summary: 'node routing daemon: BGP, VXLAN fallback and an eBPF datapath', seeAlso: 'nrdctl(8), nrd-cni(8), systemctl(1), ip-route(8)' },
  { name: 'nrdctl', main: 'cli/nrdctl.js', summary: 'control a running nrd over its control socket', seeAlso: 'nrd(8), nrd-cni(8)' },
  { name: 'nrd-cni', main: 'cni/main.js', summary: 'CNI plugin that makes workload endpoints through nrd', seeAlso: 'nrd(8), nrdctl(8)', optional: true },
];

function main(argv: string[]): number {
  const [out, version] = argv;
  if (!out || !version) {
    process.stderr.write('usage: gen.js OUTDIR VERSION\n');
    return 64;
  }
  mkdirSync(join(out, 'man'), { recursive: true });
  for (const p of PROGRAMS) {
    const entry = join(daemonDir, p.main);
    if (!existsSync(entry)) {
      if (p.optional) continue;
      throw new Error(`${entry} is not built`);
    }
    // --help must succeed with a usage text: the page says what the program says, or there is
    // none. A required program without one fails the packaging; an optional one is reported and
    // gets no page (package.sh then leaves it off PATH, where lintian would want a page).
    let help = '';
    try {
      help = execFileSync(process.execPath, [entry, '--help'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    } catch {
      help = '';
    }
    if (!/^Usage:/m.test(help)) {
      if (!p.optional) throw new Error(`${p.name} --help prints no Usage: block`);
      process.stderr.write(`gen: ${p.name} --help prints no Usage: block; no man page for it\n`);
      continue;
    }
    const page: ManPage = {
      name: p.name, section: 8, summary: p.summary, help, version,
      extra: [{ heading: 'FILES', items: FILES }, { heading: 'SEE ALSO', items: [[p.seeAlso, '']] }],
    };
    writeFileSync(join(out, 'man', `${p.name}.8`), renderManPage(page));
  }
  writeFileSync(join(out, 'nrdctl.bash'), renderBashCompletion(commands));
  return 0;
}

process.exitCode = main(process.argv.slice(2));

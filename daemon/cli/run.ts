// nrdctl argument handling and exit codes, separate from the bin so tests can drive it:
// 0 ok, 1 the daemon answered with an error, 2 usage, 3 nrd not running, 4 permission denied.
import { ApiRequestError, DaemonNotRunningError, SocketAccessError, defaultSocket } from './client.js';
import { commands as defaultCommands, findCommand, type Command } from './commands.js';
import type { OutputFormat } from './format.js';

export const EXIT_OK = 0;
export const EXIT_API_ERROR = 1;
export const EXIT_USAGE = 2;
export const EXIT_NOT_RUNNING = 3;
export const EXIT_NO_ACCESS = 4;

export interface Io {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
}

export function usage(table: readonly Command[] = defaultCommands): string {
  const rows = table.map((c) => [`${c.path.join(' ')}${c.args ? ' ' + c.args : ''}`, c.summary] as const);
  const w = Math.max(...rows.map(([u]) => u.length));
  return [
    'Usage: nrdctl [--socket PATH] [-o table|json] COMMAND',
    '',
    'Commands:',
    ...rows.map(([u, s]) => `  ${u.padEnd(w)}  ${s}`),
    '',
    'Options:',
    '  --socket PATH    control socket (default $NRD_SOCKET or /run/nrd/nrd.sock)',
    '  -o, --output F   table (default, for humans) or json (the raw API answer)',
    '  -h, --help       this text',
    '',
    `Exit codes: ${EXIT_OK} ok, ${EXIT_API_ERROR} error from nrd, ${EXIT_USAGE} usage, ${EXIT_NOT_RUNNING} nrd not running, ${EXIT_NO_ACCESS} permission denied.`,
    '',
  ].join('\n');
}

/**
 * Takes nrdctl's own options (--socket, -o/--output, -h/--help) from anywhere on the line and
 * leaves every other word, options included, in order for the subcommand to parse
 * (`nrdctl bgp routes --peer 192.0.2.1 -o json`).
 */
export function splitGlobalOptions(argv: readonly string[]): { values: { socket?: string; output?: string; help?: boolean }; positionals: string[] } {
  const values: { socket?: string; output?: string; help?: boolean } = {};
  const positionals: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (a === '-h' || a === '--help') {
      values.help = true;
      continue;
    }
    const m = /^(--socket|--output|-o)(?:=(.*))?$/.exec(a) ?? (/^-o(.+)$/.exec(a) ? ['', '-o', a.slice(2)] : null);
    if (m) {
      const v = m[2] ?? argv[++i];
      if (v === undefined) throw new Error(`option ${m[1]} needs a value`);
      if (m[1] === '--socket') values.socket = v;
      else values.output = v;
      continue;
    }
    positionals.push(a);
  }
  return { values, positionals };
}

export async function runNrdctl(
  argv: string[],
  io: Io,
  env: NodeJS.ProcessEnv = process.env,
  table: readonly Command[] = defaultCommands,
): Promise<number> {
  let parsed;
  try {
    parsed = splitGlobalOptions(argv);
  } catch (err) {
    io.stderr(`nrdctl: ${(err as Error).message}\n${usage(table)}`);
    return EXIT_USAGE;
  }
  const { values, positionals } = parsed;
  if (values.help || positionals.length === 0) {
    (values.help ? io.stdout : io.stderr)(usage(table));
    return values.help ? EXIT_OK : EXIT_USAGE;
  }
  const output = values.output ?? 'table';
  if (output !== 'table' && output !== 'json') {
    io.stderr(`nrdctl: unknown output format ${JSON.stringify(output)} (use table or json)\n`);
    return EXIT_USAGE;
  }
  const found = findCommand(table, positionals);
  if (!found) {
    io.stderr(`nrdctl: unknown command "${positionals.join(' ')}"\n${usage(table)}`);
    return EXIT_USAGE;
  }
  const socket = values.socket ?? defaultSocket(env);
  try {
    return await found.command.run({ socket, output: output as OutputFormat, stdout: io.stdout, stderr: io.stderr }, found.args);
  } catch (err) {
    if (err instanceof DaemonNotRunningError) {
      io.stderr(`nrdctl: ${err.message}\n`);
      return EXIT_NOT_RUNNING;
    }
    if (err instanceof SocketAccessError) {
      io.stderr(`nrdctl: ${err.message}\n`);
      return EXIT_NO_ACCESS;
    }
    if (err instanceof ApiRequestError) {
      io.stderr(`nrdctl: nrd answered ${err.status} ${err.code}: ${err.message}\n`);
      return EXIT_API_ERROR;
    }
    io.stderr(`nrdctl: ${err instanceof Error ? err.message : String(err)}\n`);
    return EXIT_API_ERROR;
  }
}

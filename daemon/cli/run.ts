// nrdctl argument handling and exit codes, separate from the bin so tests can drive it:
// 0 ok, 1 the daemon answered with an error, 2 usage, 3 nrd not running, 4 permission denied.
import { parseArgs } from 'node:util';
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

export async function runNrdctl(
  argv: string[],
  io: Io,
  env: NodeJS.ProcessEnv = process.env,
  table: readonly Command[] = defaultCommands,
): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        socket: { type: 'string' },
        output: { type: 'string', short: 'o' },
        help: { type: 'boolean', short: 'h' },
      },
    });
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

// `nrd check-config FILE [--set k=v ...]` and the one-line rendering of a ConfigIssue.
// Exit status 78 is EX_CONFIG of sysexits(3): systemd's ExecStartPre refuses to start on it.
import { loadConfigFile } from './load.js';
import { EX_CONFIG, type ConfigIssue } from './types.js';

const MAX_VALUE_CHARS = 120;

function renderValue(v: unknown): string {
  if (v === undefined) return 'none';
  let s: string | undefined;
  try {
    const seen = new WeakSet<object>();
    // YAML aliases can build cycles: print them instead of failing.
    s = JSON.stringify(v, (_k, x: unknown) => {
      if (typeof x === 'bigint') return x.toString();
      if (x !== null && typeof x === 'object') {
        if (seen.has(x)) return '[Circular]';
        seen.add(x);
      }
      return x;
    });
  } catch {
    s = undefined;
  }
  if (s === undefined) s = typeof v === 'symbol' ? v.toString() : String(v);
  return s.length > MAX_VALUE_CHARS ? `${s.slice(0, MAX_VALUE_CHARS)}…` : s;
}

/** One line: `<key>: <message> (value: <json of value>)`; a missing value prints as `none`. */
export function formatIssue(issue: ConfigIssue): string {
  const message = String(issue.message).replace(/\s*\n\s*/g, ' ');
  return `${issue.key}: ${message} (value: ${renderValue(issue.value)})`;
}

export interface CommandOutput {
  /** Called once per line, without the newline. */
  stdout: (s: string) => void;
  stderr: (s: string) => void;
}

const processOutput: CommandOutput = {
  stdout: (s) => process.stdout.write(`${s}\n`),
  stderr: (s) => process.stderr.write(`${s}\n`),
};

/**
 * Validates FILE with NRD_* from process.env and `sets` ("key=value") applied: prints
 * "<file>: OK" and returns 0, or prints one issue per line on stderr and returns EX_CONFIG.
 */
export function checkConfigCommand(file: string, sets: string[], out: CommandOutput = processOutput): number {
  const r = loadConfigFile(file, { sets });
  if (r.ok) {
    out.stdout(`${file}: OK`);
    return 0;
  }
  for (const issue of r.issues) out.stderr(formatIssue(issue));
  return EX_CONFIG;
}

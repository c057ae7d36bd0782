// Helpers of the nrd-cni integration tests: the plugin binary run as a runtime runs it (child
// process, CNI_* environment, configuration on stdin), optionally SIGKILLed mid-command.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from '../daemon/harness.js';

export const NRD_CNI = join(ROOT, 'dist', 'daemon', 'cni', 'main.js');

export interface PluginRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  json: unknown;
}

/** Runs nrd-cni once; `killAfterMs` sends SIGKILL after that long (a runtime or node crash). */
export function runPlugin(env: Record<string, string>, stdin: string, opts: { killAfterMs?: number } = {}): Promise<PluginRun> {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, [NRD_CNI], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    c.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    c.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const t = opts.killAfterMs === undefined ? undefined : setTimeout(() => c.kill('SIGKILL'), opts.killAfterMs);
    c.once('error', reject);
    c.once('close', (code, signal) => {
      if (t) clearTimeout(t);
      let parsed: unknown;
      try {
        parsed = stdout.trim() ? JSON.parse(stdout) : undefined;
      } catch {
        parsed = undefined;
      }
      resolve({ code, signal, stdout, stderr, json: parsed });
    });
    c.stdin.end(stdin);
  });
}

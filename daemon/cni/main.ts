#!/usr/bin/env node
// nrd-cni: the CNI plugin binary (CNI specification 1.0.0; GC and STATUS of 1.1.0). A runtime runs
// it once per command with CNI_* in the environment and the network configuration on stdin; it
// answers on stdout (result or error object) and through its exit code.
import { DaemonNotRunningError, rawRequest } from '../cli/client.js';
import { NrdDown, runPlugin, type NrdPort } from './plugin.js';

/** ADD waits for the veth and the etcd transaction; a runtime's own timeout is longer. */
const REQUEST_TIMEOUT_MS = 30_000;

const nrd: NrdPort = {
  async request(socket, method, path, body) {
    try {
      return await rawRequest(socket, path, { method, ...(body === undefined ? {} : { body }), timeoutMs: REQUEST_TIMEOUT_MS });
    } catch (e) {
      if (e instanceof DaemonNotRunningError) throw new NrdDown(socket, e.code);
      throw e;
    }
  },
};

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

const USAGE = `Usage:
  nrd-cni                      run as a CNI plugin: CNI_COMMAND (ADD, DEL, CHECK, VERSION, GC, STATUS)
                               and the other CNI_* variables in the environment, the network
                               configuration on stdin; the result or error object on stdout
  nrd-cni --help | --version

A container runtime (podman, containerd, CRI-O) runs it, not a person. It asks the nrd daemon on
this node (the configuration's "socket", default /run/nrd/nrd.sock) to create, check or delete the
workload's endpoint. Example configuration: /usr/share/doc/nrd/examples/10-nrd.conflist.

Exit status: 0, or non-zero with a CNI error object (code 11 when nrd is not running).
`;

// A person asking: answer without touching stdin or the environment (no CNI_COMMAND needed).
const arg = process.argv[2];
if (arg === '--help' || arg === '-h') {
  process.stdout.write(USAGE);
  process.exit(0);
}
if (arg === '--version' || arg === '-V') {
  const { readFileSync } = await import('node:fs');
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version?: string };
  process.stdout.write(`nrd-cni ${pkg.version ?? 'unknown'} (CNI 1.0.0, 1.1.0)\n`);
  process.exit(0);
}

// VERSION may come without stdin data; every other command has its configuration there.
const stdin = process.stdin.isTTY ? '' : await readStdin();
const out = await runPlugin({ env: process.env, stdin, nrd, warn: (l) => process.stderr.write(`${l}\n`) });
process.stdout.write(out.stdout);
process.exitCode = out.exitCode;

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

// VERSION may come without stdin data; every other command has its configuration there.
const stdin = process.stdin.isTTY ? '' : await readStdin();
const out = await runPlugin({ env: process.env, stdin, nrd, warn: (l) => process.stderr.write(`${l}\n`) });
process.stdout.write(out.stdout);
process.exitCode = out.exitCode;

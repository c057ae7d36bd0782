#!/usr/bin/env node
// nrdctl: the operator's CLI for a running nrd, over the control API on its unix socket.
import { runNrdctl } from './run.js';

const code = await runNrdctl(process.argv.slice(2), {
  stdout: (s) => process.stdout.write(s),
  stderr: (s) => process.stderr.write(s),
});
process.exitCode = code;

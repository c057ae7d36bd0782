// Preloaded (node --import) into every test file's process by run-tests.mjs: a file whose tests
// have all finished but whose process stays alive (a timer, socket or child process left behind)
// fails after NRD_TEST_IDLE_MS (default 20 s) and names what keeps it alive, instead of holding
// the run until the runner's limit.
//
// This replaces --test-force-exit, which ended each file's process as soon as its tests were done
// and, on a pipe, lost the part of its report not yet written (whole stretches of a file's results
// were missing and the test count changed from run to run).
//
// The timer is unref'd: in a file that exits normally it never fires and costs nothing.
import { after } from 'node:test';
import { writeSync } from 'node:fs';

const file = process.argv[1] ?? '';
const idleMs = Number(process.env.NRD_TEST_IDLE_MS ?? 20_000);

function describeHandle(h) {
  const name = h?.constructor?.name ?? typeof h;
  try {
    if (name === 'ChildProcess') return `ChildProcess pid ${h.pid}: ${(h.spawnargs ?? []).join(' ').slice(0, 200)}`;
    if (name === 'Server') return `Server ${JSON.stringify(h.address())}`;
    if (name === 'Socket') {
      if (h.remoteAddress) return `Socket to ${h.remoteAddress}:${h.remotePort}`;
      if (h._handle?.fd === 1 || h._handle?.fd === 2) return undefined; // stdout, stderr
      return `Socket fd ${h._handle?.fd ?? '?'}`;
    }
  } catch {
    // a half-closed handle: its name is all there is
  }
  return name;
}

if (file.endsWith('.test.js') && idleMs > 0) {
  after(() => {
    const t = setTimeout(() => {
      const resources = process.getActiveResourcesInfo().filter((r) => r !== 'PipeWrap' && r !== 'TTYWrap');
      const handles = process._getActiveHandles().map(describeHandle).filter((x) => x !== undefined);
      const msg = `\nnrdt: ${file}: its tests finished ${idleMs / 1000} s ago but the process is still running ` +
        `(a leaked handle). Active resources: ${resources.join(', ') || 'none'}` +
        `${handles.length ? `; handles: ${handles.join('; ')}` : ''}\n`;
      writeSync(2, msg);
      // Everything the tests reported was written long ago; let stdout drain, then fail the file.
      process.exitCode = 1;
      process.stdout.write('', () => process.exit(1));
    }, idleMs);
    t.unref();
  });
}

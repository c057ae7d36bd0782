// ensurePinDir under `ip netns exec`, where /sys/fs/bpf is a plain sysfs directory (the case that
// once spun Node's recursive mkdir at 100% CPU forever): with mount(2) allowed nrd mounts a bpffs
// on /sys/fs/bpf and creates the pin directories; with the mount refused it answers at once with
// the typed error. Each run is a child with a timeout, so a spin fails the test. The mount lives
// in the child's private mount namespace (ip netns exec unshares it) and ends with the child.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Cleanup, addNetns } from './env.js';

const child = fileURLToPath(new URL('./pin-dir-child.js', import.meta.url));
const cleanup = new Cleanup();
after(() => cleanup.run());

interface ChildOut {
  ok: boolean;
  before: boolean;
  after?: boolean;
  result?: { pinPath: string; mounted?: string; created: string[] };
  code?: string;
  kind?: string;
  message?: string;
}

function runChild(ns: string, cmd: { pinPath: string; mount: 'real' | 'refuse' }): ChildOut {
  const r = spawnSync('ip', ['netns', 'exec', ns, process.execPath, child, JSON.stringify(cmd)], { encoding: 'utf8', timeout: 10_000 });
  assert.equal(r.signal, null, `ensurePinDir(${cmd.pinPath}) did not return within 10 s (killed by ${r.signal})`);
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as ChildOut;
}

describe('ensurePinDir on /sys/fs/bpf inside ip netns exec', () => {
  const ns = addNetns(cleanup, 'pindir');

  it('mounts a bpffs on /sys/fs/bpf and creates the pin directories one level at a time', () => {
    const o = runChild(ns, { pinPath: '/sys/fs/bpf/nrd', mount: 'real' });
    assert.equal(o.before, false, '/sys/fs/bpf is expected to be plain sysfs under ip netns exec');
    assert.equal(o.ok, true, o.message);
    assert.equal(o.result?.mounted, '/sys/fs/bpf');
    assert.deepEqual(o.result?.created, ['/sys/fs/bpf/nrd', '/sys/fs/bpf/nrd/maps', '/sys/fs/bpf/nrd/links', '/sys/fs/bpf/nrd/progs']);
    assert.equal(o.after, true);
  });

  it('answers promptly with pin_path_not_bpffs and the fix when the mount is refused', () => {
    const o = runChild(ns, { pinPath: '/sys/fs/bpf/nrd', mount: 'refuse' });
    assert.equal(o.ok, false);
    assert.equal(o.kind, 'unavailable');
    assert.equal(o.code, 'pin_path_not_bpffs');
    assert.match(o.message ?? '', /datapath\.pinPath \/sys\/fs\/bpf\/nrd is not on a bpf filesystem/);
    assert.match(o.message ?? '', /fix: mount -t bpf bpffs \/sys\/fs\/bpf/);
  });
});

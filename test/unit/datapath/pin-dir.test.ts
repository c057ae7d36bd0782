// Unit tests of ensurePinDir (daemon/datapath/pin-dir.ts) on paths that are not on bpffs: it must
// answer at once with NrdError pin_path_not_bpffs naming the path and the fix, create nothing
// there, and try a mount only on its bpffs root. Each case runs in a child process with a timeout,
// so a regression to a recursive mkdir that spins fails the test instead of hanging it. No
// privileges: the injected mount never mounts anything. (The real /sys/fs/bpf case, under
// `ip netns exec`, is in test/integration/datapath/pin-dir.test.ts.)
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const pinDirModule = fileURLToPath(new URL('../../../daemon/datapath/pin-dir.js', import.meta.url));

interface Outcome {
  ok: boolean;
  name?: string;
  kind?: string;
  code?: string;
  message?: string;
  mountCalls: string[];
}

/** Runs ensurePinDir(pinPath, { bpffsRoot, mountBpffs: refuse }) in a child, 10 s at most. */
function ensureInChild(pinPath: string, bpffsRoot?: string): Outcome {
  const script = `
    import(${JSON.stringify(pinDirModule)}).then(({ ensurePinDir }) => {
      const mountCalls = [];
      const opts = { mountBpffs: (t) => { mountCalls.push(t); throw new Error('mount: EPERM (test)'); } };
      if (${JSON.stringify(bpffsRoot ?? null)} !== null) opts.bpffsRoot = ${JSON.stringify(bpffsRoot ?? null)};
      let out;
      try { ensurePinDir(${JSON.stringify(pinPath)}, opts); out = { ok: true, mountCalls }; }
      catch (e) { out = { ok: false, name: e.name, kind: e.kind, code: e.code, message: e.message, mountCalls }; }
      process.stdout.write(JSON.stringify(out));
    });`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 10_000 });
  assert.equal(r.signal, null, `ensurePinDir(${pinPath}) did not return within 10 s (killed by ${r.signal})`);
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as Outcome;
}

const tmp = mkdtempSync(join(tmpdir(), 'nrdt-pindir-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

describe('ensurePinDir off bpffs', () => {
  it('a sysfs path outside the bpffs root: typed error with the fix, no mount tried', () => {
    const o = ensureInChild('/sys/fs/nrd-unit-test/pins');
    assert.equal(o.ok, false);
    assert.equal(o.name, 'NrdError');
    assert.equal(o.kind, 'unavailable');
    assert.equal(o.code, 'pin_path_not_bpffs');
    assert.match(o.message ?? '', /datapath\.pinPath \/sys\/fs\/nrd-unit-test\/pins is not on a bpf filesystem/);
    assert.match(o.message ?? '', /sysfs/);
    assert.match(o.message ?? '', /mount -t bpf bpffs/);
    assert.deepEqual(o.mountCalls, []);
  });

  it('below the bpffs root that is not bpffs: mounts there once; a refused mount is named in the error', () => {
    const root = join(tmp, 'bpf-root');
    rmSync(root, { recursive: true, force: true });
    // The root must exist to be mounted on: created here, as sysfs has /sys/fs/bpf.
    spawnSync('mkdir', [root]);
    const o = ensureInChild(join(root, 'nrd'), root);
    assert.equal(o.ok, false);
    assert.equal(o.code, 'pin_path_not_bpffs');
    assert.deepEqual(o.mountCalls, [root]);
    assert.ok(o.message?.includes(`mounting a bpffs on ${root} failed: mount: EPERM (test)`), o.message);
    assert.ok(o.message?.includes(`fix: mount -t bpf bpffs ${root}`), o.message);
    assert.equal(existsSync(join(root, 'nrd')), false, 'nothing is created off bpffs');
  });

  it('a missing bpffs root: says so, mounts nothing', () => {
    const root = join(tmp, 'absent-root');
    const o = ensureInChild(join(root, 'nrd'), root);
    assert.equal(o.code, 'pin_path_not_bpffs');
    assert.deepEqual(o.mountCalls, []);
    assert.ok(o.message?.includes(`${root} does not exist`), o.message);
  });

  it('a pin path on another filesystem (tmp): nothing created, the fix names the path', () => {
    const pin = join(tmp, 'a', 'b', 'nrd');
    const o = ensureInChild(pin);
    assert.equal(o.code, 'pin_path_not_bpffs');
    assert.ok(o.message?.includes(`mount -t bpf bpffs ${pin}`), o.message);
    assert.equal(existsSync(join(tmp, 'a')), false);
  });

  it('a relative pin path is invalid', () => {
    const o = ensureInChild('sys/fs/bpf/nrd');
    assert.equal(o.kind, 'invalid');
    assert.equal(o.code, 'pin_path_relative');
  });
});

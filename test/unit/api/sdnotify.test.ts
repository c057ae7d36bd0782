// sd_notify(3) wire format and the libc datagram binding, against a socket the test binds
// (abstract and filesystem names), plus the $WATCHDOG_USEC rules.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as libc from '../../../daemon/lib/libc.js';
import { encodeNotify, notifierFromEnv, watchdogIntervalMs } from '../../../daemon/lib/sdnotify.js';

function receiver(path: string): { fd: number; recv(): string | undefined; close(): void } {
  const fd = libc.socket(libc.AF_UNIX, libc.SOCK_DGRAM | libc.SOCK_CLOEXEC);
  libc.bind(fd, libc.sockaddrUn(path));
  const buf = Buffer.alloc(4096);
  return {
    fd,
    recv() {
      try {
        return buf.subarray(0, libc.recv(fd, buf, libc.MSG_DONTWAIT)).toString();
      } catch (err) {
        if (err instanceof libc.LibcError && err.code === 'EAGAIN') return undefined;
        throw err;
      }
    },
    close: () => libc.close(fd),
  };
}

test('fields are newline-separated KEY=VALUE and a value cannot inject a field', () => {
  assert.equal(encodeNotify({ READY: 1, STATUS: 'a\nWATCHDOG=1' }).toString(), 'READY=1\nSTATUS=a WATCHDOG=1');
});

test('sockaddr_un: abstract names start with NUL and carry no terminator', () => {
  const a = libc.sockaddrUn('@nrd');
  assert.equal(a.len, 2 + 1 + 3);
  assert.deepEqual([...a.addr.subarray(0, 6)], [1, 0, 0, 0x6e, 0x72, 0x64]);
  const p = libc.sockaddrUn('/run/x');
  assert.equal(p.len, 2 + 6 + 1);
  assert.throws(() => libc.sockaddrUn('/' + 'x'.repeat(120)), RangeError);
});

for (const kind of ['abstract', 'path'] as const) {
  test(`notifier delivers datagrams to a ${kind} socket`, (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'nrd-sdn-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const path = kind === 'abstract' ? `@nrd-test-${process.pid}-${Date.now()}` : join(dir, 'notify');
    const rx = receiver(path);
    t.after(() => rx.close());
    const n = notifierFromEnv({ NOTIFY_SOCKET: path });
    t.after(() => n.close());
    assert.equal(n.enabled, true);
    assert.equal(n.notify({ READY: 1, STATUS: 'ok' }), true);
    assert.equal(n.notify({ WATCHDOG: 1 }), true);
    assert.equal(rx.recv(), 'READY=1\nSTATUS=ok');
    assert.equal(rx.recv(), 'WATCHDOG=1');
    assert.equal(rx.recv(), undefined);
  });
}

test('a vanished socket makes notify return false and report, never throw', (t) => {
  const errors: unknown[] = [];
  const n = notifierFromEnv({ NOTIFY_SOCKET: `@nrd-test-nobody-${process.pid}` }, (e) => errors.push(e));
  t.after(() => n.close());
  assert.equal(n.notify({ READY: 1 }), false);
  assert.equal((errors[0] as libc.LibcError).code, 'ECONNREFUSED');
});

test('regression: a reader that stops reading never blocks the daemon (queue of 10 datagrams)', (t) => {
  // A blocking sendto(2) froze nrd's event loop once the test's notify socket held 10 unread
  // WATCHDOG=1 datagrams: nothing else ran until the reader drained.
  const path = `@nrd-test-full-${process.pid}-${Date.now()}`;
  const rx = receiver(path);
  t.after(() => rx.close());
  const errors: unknown[] = [];
  const n = notifierFromEnv({ NOTIFY_SOCKET: path }, (e) => errors.push(e));
  t.after(() => n.close());
  const results: boolean[] = [];
  for (let i = 0; i < 100; i++) results.push(n.notify({ WATCHDOG: 1 }));
  assert.ok(results.includes(false), 'some sends were dropped');
  assert.equal(errors.length, 1, 'one report for the whole run of EAGAIN');
  assert.equal((errors[0] as libc.LibcError).code, 'EAGAIN');
  assert.equal(rx.recv(), 'WATCHDOG=1');
  while (rx.recv() !== undefined);
  assert.equal(n.notify({ READY: 1 }), true, 'sends work again once the queue drains');
});

test('without NOTIFY_SOCKET the notifier is disabled', () => {
  const n = notifierFromEnv({});
  assert.equal(n.enabled, false);
  assert.equal(n.notify({ READY: 1 }), false);
});

test('watchdog interval is half of WATCHDOG_USEC and honours WATCHDOG_PID', () => {
  assert.equal(watchdogIntervalMs({ WATCHDOG_USEC: '30000000' }, 10), 15000);
  assert.equal(watchdogIntervalMs({ WATCHDOG_USEC: '30000000', WATCHDOG_PID: '10' }, 10), 15000);
  assert.equal(watchdogIntervalMs({ WATCHDOG_USEC: '30000000', WATCHDOG_PID: '11' }, 10), undefined);
  assert.equal(watchdogIntervalMs({}, 10), undefined);
  assert.equal(watchdogIntervalMs({ WATCHDOG_USEC: 'x' }, 10), undefined);
});

test('monotonic clock agrees with the one Node uses', () => {
  const a = process.hrtime.bigint() / 1000n;
  const m = libc.monotonicUsec();
  const b = process.hrtime.bigint() / 1000n;
  assert.ok(m >= a && m <= b, `${a} <= ${m} <= ${b}`);
});

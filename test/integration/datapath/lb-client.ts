// Client side of the service load-balancing namespace test, run in the client endpoint's
// namespace: one JSON command per stdin line, one JSON line back. `open` keeps a connection to the
// service (the name its backend sent), `echo` uses it again, `probe` makes N short connections and
// counts the backends that answered, `refused` times a connection that should be reset at once.
import { connect, type Socket } from 'node:net';
import { createInterface } from 'node:readline';

type Command =
  | { op: 'open'; host: string; port: number }
  | { op: 'echo'; text: string }
  | { op: 'probe'; host: string; port: number; n: number }
  | { op: 'refused'; host: string; port: number };

const out = (v: unknown): void => void process.stdout.write(JSON.stringify(v) + '\n');

/** Connects and resolves with the first line the backend sends (its name). */
function firstLine(host: string, port: number): Promise<{ sock: Socket; name: string }> {
  return new Promise((resolve, reject) => {
    const sock = connect({ host, port });
    let buf = '';
    sock.setTimeout(3000, () => sock.destroy(new Error('timeout')));
    sock.on('error', reject);
    const onData = (b: Buffer): void => {
      buf += b.toString();
      const i = buf.indexOf('\n');
      if (i < 0) return;
      sock.off('data', onData);
      sock.setTimeout(0);
      resolve({ sock, name: buf.slice(0, i) });
    };
    sock.on('data', onData);
  });
}

let kept: Socket | undefined;
for await (const line of createInterface({ input: process.stdin })) {
  const c = JSON.parse(line) as Command;
  try {
    if (c.op === 'open') {
      const r = await firstLine(c.host, c.port);
      kept = r.sock;
      out({ name: r.name });
    } else if (c.op === 'echo') {
      const s = kept!;
      const got = await new Promise<string>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error('echo timeout')), 3000);
        s.once('data', (b) => { clearTimeout(t); resolve(b.toString().trim()); });
        s.once('error', reject);
        s.write(`${c.text}\n`);
      });
      out({ echo: got });
    } else if (c.op === 'probe') {
      const counts: Record<string, number> = {};
      for (let i = 0; i < c.n; i++) {
        const r = await firstLine(c.host, c.port);
        counts[r.name] = (counts[r.name] ?? 0) + 1;
        r.sock.end();
      }
      out({ counts });
    } else {
      const t0 = performance.now();
      const err = await new Promise<string>((resolve) => {
        const s = connect({ host: c.host, port: c.port });
        s.setTimeout(5000, () => { s.destroy(); resolve('timeout'); });
        s.on('connect', () => { s.destroy(); resolve('connected'); });
        s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
      });
      out({ error: err, ms: performance.now() - t0 });
    }
  } catch (e) {
    out({ error: (e as Error).message });
  }
}

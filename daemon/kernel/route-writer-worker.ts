// The route writer's thread: owns one NETLINK_ROUTE socket and sends the datagrams the main thread
// encoded (channel.ts encodeBatch). The kernel applies a datagram's routes inside sendmsg, in the
// sender's context — tens of ms for thousands of routes — so that time is spent here, not on the
// thread that runs BGP. Reports per datagram, once its ACK arrived, the messages that failed.
// The thread keeps off the BFD thread's CPU (lib/cpu-split.ts): a kernel that does not preempt
// itself would make BFD wait for any sendmsg in progress there, a trie resize included.
// Kernel interface: netlink(7) — NLM_F_ACK, NLMSG_ERROR (ACK semantics as in channel.ts).
import { parentPort } from 'node:worker_threads';
import { RawNetlinkSocket } from 'netlink';
import { NLMSG_ERROR, splitMessages } from './codec.js';
import { pinThread } from '../lib/cpu-split.js';

/** A datagram to send: its bytes (transferred) and the sequence numbers of its first and last message. */
export interface WriterRequest {
  id: number;
  bytes: ArrayBuffer;
  length: number;
  from: number;
  to: number;
}

/** A datagram settled: the messages that failed (sequence number, errno), or all of it with sendErrno. */
export interface WriterReply {
  id: number;
  errors: Array<[number, number]>;
  sendError?: { errno?: number; code?: string; message: string };
}

const before = (a: number, b: number): boolean => ((a - b) | 0) < 0;

const port = parentPort;
if (port) {
  try {
    pinThread('route-writer');
  } catch {
    // The kernel refused (a cpuset changed under us): the thread stays on every CPU; writes are
    // still small datagrams (channel.ts WRITE_DATAGRAM_MAX), only a trie resize may then delay BFD.
  }
  const sock = new RawNetlinkSocket(0, { recvBufferSize: 4 * 1024 * 1024, sendBufferSize: 1024 * 1024 });
  const open: Array<{ id: number; from: number; to: number; errors: Array<[number, number]> }> = [];
  const reply = (r: WriterReply): void => port.postMessage(r);
  port.on('message', (m: WriterRequest) => {
    const d = { id: m.id, from: m.from, to: m.to, errors: [] as Array<[number, number]> };
    open.push(d);
    sock.send(Buffer.from(m.bytes, 0, m.length), {}, (err?: unknown) => {
      if (!err) return;
      const i = open.indexOf(d);
      if (i >= 0) open.splice(i, 1);
      const e = err as { errno?: unknown; code?: unknown; message?: unknown };
      reply({ id: d.id, errors: [], sendError: { ...(typeof e.errno === 'number' ? { errno: e.errno } : {}), ...(typeof e.code === 'string' ? { code: e.code } : {}), message: String(e.message ?? err) } });
    });
  });
  sock.on('message', (buf: Buffer) => {
    for (const msg of splitMessages(buf)) {
      if (msg.type !== NLMSG_ERROR || msg.seq === 0) continue;
      const errno = msg.payload.length >= 4 ? -msg.payload.readInt32LE(0) : 5;
      if (errno !== 0) {
        const d = open.find((x) => !before(msg.seq, x.from) && !before(x.to, msg.seq));
        d?.errors.push([msg.seq, errno]);
      }
      // An ACK (or the error of the message that asked for it) settles every datagram up to it.
      while (open.length && !before(msg.seq, open[0]!.to)) {
        const d = open.shift()!;
        reply({ id: d.id, errors: d.errors });
      }
    }
  });
  sock.on('error', (err: unknown) => {
    // ENOBUFS: replies may be lost; fail what is open so the reconciler retries it.
    for (const d of open.splice(0)) reply({ id: d.id, errors: [], sendError: { code: 'ENOBUFS', message: String((err as Error)?.message ?? err) } });
  });
}

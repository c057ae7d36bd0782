// sd_notify(3) protocol to systemd: newline-separated KEY=VALUE datagrams on the AF_UNIX socket
// named by $NOTIFY_SOCKET (filesystem path or '@' abstract name), plus the $WATCHDOG_USEC contract.
import * as libc from './libc.js';

export interface Notifier {
  /** True when $NOTIFY_SOCKET was set: messages are really sent. */
  readonly enabled: boolean;
  /** Sends one datagram with the given fields; returns false when disabled or the send failed
   * (systemd gone is not a reason to stop routing). */
  notify(fields: Record<string, string | number | bigint>): boolean;
  close(): void;
}

/** Encodes fields as sd_notify expects; newlines inside a value (e.g. STATUS) would start a new
 * field, so they are flattened. */
export function encodeNotify(fields: Record<string, string | number | bigint>): Buffer {
  const lines = Object.entries(fields).map(([k, v]) => `${k}=${String(v).replace(/\n/g, ' ')}`);
  return Buffer.from(lines.join('\n'));
}

/** A notifier that sends nothing (not under systemd, or tests). */
export function nullNotifier(): Notifier {
  return { enabled: false, notify: () => false, close: () => undefined };
}

/**
 * A notifier bound to one socket path. The fd is opened once and kept. It is non-blocking: a unix
 * datagram queue holds only net.unix.max_dgram_qlen (10) messages, and a blocking sendto(2) to a
 * reader that stopped reading would freeze the whole event loop. A message that does not fit is
 * dropped (the next WATCHDOG=1 or STATUS= follows soon); onError hears of each new kind of
 * failure once, not of every dropped datagram.
 */
export function socketNotifier(path: string, onError?: (err: unknown) => void): Notifier {
  const sa = libc.sockaddrUn(path);
  let fd: number | undefined = libc.socket(libc.AF_UNIX, libc.SOCK_DGRAM | libc.SOCK_CLOEXEC | libc.SOCK_NONBLOCK);
  let failing: string | undefined;
  return {
    enabled: true,
    notify(fields) {
      if (fd === undefined) return false;
      try {
        libc.sendto(fd, encodeNotify(fields), libc.MSG_NOSIGNAL | libc.MSG_DONTWAIT, sa);
        failing = undefined;
        return true;
      } catch (err) {
        const code = err instanceof libc.LibcError ? err.code : String(err);
        if (code !== failing) onError?.(err);
        failing = code;
        return false;
      }
    },
    close() {
      if (fd === undefined) return;
      const f = fd;
      fd = undefined;
      libc.close(f);
    },
  };
}

/** The notifier systemd asked for through the environment, or a null one. */
export function notifierFromEnv(env: NodeJS.ProcessEnv = process.env, onError?: (err: unknown) => void): Notifier {
  const path = env.NOTIFY_SOCKET;
  if (!path) return nullNotifier();
  return socketNotifier(path, onError);
}

/** Interval in ms at which to send WATCHDOG=1 (half of $WATCHDOG_USEC, as sd_watchdog_enabled(3)
 * recommends), or undefined when the watchdog is off or meant for another process. */
export function watchdogIntervalMs(env: NodeJS.ProcessEnv = process.env, pid: number = process.pid): number | undefined {
  const usec = Number(env.WATCHDOG_USEC);
  if (!env.WATCHDOG_USEC || !Number.isFinite(usec) || usec <= 0) return undefined;
  if (env.WATCHDOG_PID && Number(env.WATCHDOG_PID) !== pid) return undefined;
  return Math.max(1, Math.floor(usec / 2000));
}

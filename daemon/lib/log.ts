// Structured JSON logging (pino to stdout; journald keeps it). One root logger, one child per
// subsystem or peer: log.child({ subsystem: 'bgp', peer: '192.0.2.1' }).
import { pino, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };
export type LogLevel = LevelWithSilent;

let root: Logger = pino({
  level: process.env.NRD_LOG_LEVEL ?? 'info',
  base: { pid: process.pid },
  timestamp: pino.stdTimeFunctions.isoTime,
  formatters: { level: (label) => ({ level: label }) },
});

/** The process-wide root logger. */
export function rootLogger(): Logger {
  return root;
}

/** Replace the root logger (tests, or the daemon redirecting output). */
export function setRootLogger(l: Logger): void {
  root = l;
}

/** A logger for one subsystem; children inherit the root's level at creation time. */
export function subsystemLogger(subsystem: string, bindings: Record<string, unknown> = {}): Logger {
  return root.child({ subsystem, ...bindings });
}

/** A logger that discards everything (unit tests). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

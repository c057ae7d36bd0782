// Line-oriented reading of a child's output: each complete line once, and nrd's JSON log lines
// parsed (pino writes one JSON object per line; anything else is kept as text).
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';

/** Calls `onLine` for every line `stream` produces (without the newline). */
export function onLines(stream: Readable, onLine: (line: string) => void): void {
  createInterface({ input: stream, crlfDelay: Infinity }).on('line', onLine);
}

/** Appends each JSON line of `stream` to `logs` and every other non-empty line to `other`. */
export function collectJsonLines<T>(stream: Readable, logs: T[], other: string[]): void {
  onLines(stream, (line) => {
    if (!line.trim()) return;
    try {
      logs.push(JSON.parse(line) as T);
    } catch {
      other.push(line);
    }
  });
}

// V8 heap growth for a daemon with a large long-lived heap. nrd keeps a full BGP table and its
// routes (a million prefixes: ~200 MB live), and by default V8 lets the old space grow to about
// twice what was live at the last full collection before it collects again, so the process
// stands at ~2× its live heap after a big ingest (fib-e2e at 1M routes: ~400 B/route RSS growth).
// A growth factor of 1.3 keeps it near the live size (~250 B/route) for a few more incremental
// full collections, which did not slow the ingest measurably (same-run times within the noise).

import v8 from 'node:v8';

/** Old-space growth between full collections, percent (V8's --heap-growing-percent). */
export const HEAP_GROWING_PERCENT = 30;

/**
 * Set V8's heap growth factor, unless the node command line already sets it (an operator's
 * choice wins). Call once, at daemon start, before the large tables are built.
 */
export function limitHeapGrowth(execArgv: readonly string[] = process.execArgv): boolean {
  if (execArgv.some((a) => a.startsWith('--heap-growing-percent') || a.startsWith('--heap_growing_percent'))) return false;
  v8.setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
  return true;
}

// The daemon's V8 heap growth setting (daemon/lib/heap.ts): set at start unless the node command
// line sets it already (the operator's choice wins).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HEAP_GROWING_PERCENT, limitHeapGrowth } from '../../../daemon/lib/heap.js';

test('limitHeapGrowth sets the growth factor unless the command line sets it', () => {
  assert.equal(limitHeapGrowth(['--heap-growing-percent=50']), false);
  assert.equal(limitHeapGrowth(['--heap_growing_percent', '50']), false);
  assert.equal(limitHeapGrowth(['--inspect']), true);
  assert.ok(HEAP_GROWING_PERCENT > 0 && HEAP_GROWING_PERCENT < 100);
});

// nrdctl's own options are taken from anywhere; a subcommand's flags reach it untouched.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { splitGlobalOptions } from '../../../daemon/cli/run.js';

test('global options anywhere, subcommand flags passed through in order', () => {
  assert.deepEqual(splitGlobalOptions(['bgp', 'routes', '--peer', '192.0.2.1', '-o', 'json', '--socket=/tmp/s']), {
    values: { output: 'json', socket: '/tmp/s' },
    positionals: ['bgp', 'routes', '--peer', '192.0.2.1'],
  });
  assert.deepEqual(splitGlobalOptions(['-ojson', 'status']), { values: { output: 'json' }, positionals: ['status'] });
  assert.deepEqual(splitGlobalOptions(['service', 'set', '--', '-o', 'x']).positionals, ['service', 'set', '-o', 'x']);
  assert.equal(splitGlobalOptions(['-h']).values.help, true);
  assert.throws(() => splitGlobalOptions(['status', '--socket']), /--socket needs a value/);
});

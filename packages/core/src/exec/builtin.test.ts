import { describe, expect, it } from 'vitest';
import { BuiltinExecutor, initHelper } from './builtin.ts';
import { executorSuite } from './testing/suite.ts';

// Both launchers pass the same isolation suite: vlab-init (as built by scripts/build-native.sh,
// which the test command's setup runs) and the util-linux shell chain it replaces.
describe('launcher choice', () => {
  it('uses vlab-init when it is built, the shell chain on request', async () => {
    expect(initHelper(), 'vlab-init is not built: run bash scripts/build-native.sh').toBeDefined();
    expect((await BuiltinExecutor.create()).launcher).toBe('native');
    expect((await BuiltinExecutor.create({ launcher: 'shell' })).launcher).toBe('shell');
  });
});
executorSuite('builtin', (opts) => BuiltinExecutor.create({ ...opts, launcher: 'native' }));
executorSuite('builtin-shell', (opts) => BuiltinExecutor.create({ ...opts, launcher: 'shell' }));

import { BuiltinExecutor } from './builtin.ts';
import { executorSuite } from './testing/suite.ts';

executorSuite('builtin', (opts) => BuiltinExecutor.create(opts));

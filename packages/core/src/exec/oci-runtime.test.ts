import { OciRuntimeExecutor } from './oci-runtime.ts';
import { executorSuite } from './testing/suite.ts';

executorSuite('runc', (opts) => OciRuntimeExecutor.create('runc', undefined, opts));

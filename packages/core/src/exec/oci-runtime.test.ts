import { OciRuntimeExecutor } from './oci-runtime.ts';
import { executorSuite } from './testing/suite.ts';
import { seccompSuite } from './testing/seccomp-suite.ts';

executorSuite('runc', (opts) => OciRuntimeExecutor.create('runc', undefined, opts));
seccompSuite('runc', (opts) => OciRuntimeExecutor.create('runc', undefined, opts));

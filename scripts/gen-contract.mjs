// Writes the worker libraries' copies of the in-job contract (src/shared/protocol/contract.ts),
// from the build in dist/. test/contract.test.ts fails when the copies and the source drift.
import fs from 'node:fs';
import path from 'node:path';
import { renderNodeContract, renderPythonContract } from '../dist/shared/protocol/contract.js';

const root = path.resolve(import.meta.dirname, '..');
fs.writeFileSync(path.join(root, 'src', 'worker', 'python', 'raysub', '_contract.py'), renderPythonContract());
fs.writeFileSync(path.join(root, 'src', 'worker', 'node', 'contract.ts'), renderNodeContract());

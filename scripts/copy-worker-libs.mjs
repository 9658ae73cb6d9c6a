// Build step: the Python in-job library is not compiled; copy it next to the compiled Node one.
import fs from 'node:fs';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..');
const dest = path.join(root, 'dist', 'worker', 'python');
fs.rmSync(dest, { recursive: true, force: true });
fs.cpSync(path.join(root, 'src', 'worker', 'python'), dest, { recursive: true, filter: (s) => !s.includes('__pycache__') });

/**
 * Runtime envs built from hostile specs: a pip requirement that names a file or a directory
 * outside the job's working dir is refused before the agent reads or builds it.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pipSpecOf } from '../src/agent/envs/pip.js';

function makeWorkDir(dir: string, outside: string): void {
  fs.writeFileSync(path.join(outside, 'secret.txt'), 'hunter2\n');
  fs.mkdirSync(path.join(outside, 'pkg'));
  fs.writeFileSync(path.join(dir, 'requirements.txt'), 'tinypkg\n-r more.txt\n./local\n');
  fs.writeFileSync(path.join(dir, 'more.txt'), 'otherpkg==1.0\n');
  fs.mkdirSync(path.join(dir, 'local'));
  fs.writeFileSync(path.join(dir, 'evil.txt'), `-r ${path.join(outside, 'secret.txt')}\n`);
  fs.writeFileSync(path.join(dir, 'evil-rel.txt'), '-r ../../../../../../etc/passwd\n');
  fs.symlinkSync(path.join(outside, 'secret.txt'), path.join(dir, 'link.txt'));
  fs.symlinkSync(outside, path.join(dir, 'linkdir'));
}

describe('pip requirements stay in the working dir', () => {
  let dir = '';
  let outside = '';
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'raysub-wd-'));
    outside = fs.mkdtempSync(path.join(os.tmpdir(), 'raysub-outside-'));
    makeWorkDir(dir, outside);
  });
  afterAll(() => {
    for (const d of [dir, outside]) fs.rmSync(d, { recursive: true, force: true });
  });
  const refused: [string, () => Parameters<typeof pipSpecOf>[0]][] = [
    ['an absolute requirements file', () => `${path.join(outside, 'secret.txt')}`],
    ['a relative path out', () => '../../../../../../etc/passwd'],
    ['an include out, in a file', () => 'evil.txt'],
    ['a relative include out, in a file', () => 'evil-rel.txt'],
    ['a link out', () => 'link.txt'],
    ['a file through a linked directory', () => 'linkdir/secret.txt'],
    ['an include in the list', () => [`-r ${path.join(outside, 'secret.txt')}`]],
    ['a host directory as a package', () => [path.join(outside, 'pkg')]],
    ['an editable host directory', () => [`-e ${path.join(outside, 'pkg')}`]],
    ['a file: URL', () => [`file://${path.join(outside, 'pkg')}`]],
    ['a home directory', () => ['~/pkg']],
    ['a linked directory as a package', () => ['./linkdir/pkg']],
    ['an include in the options', () => ({ packages: ['tinypkg'], pip_install_options: ['-r', path.join(outside, 'secret.txt')] })],
  ];
  for (const [name, pip] of refused) {
    it(`refuses ${name}`, () => {
      expect(() => pipSpecOf(pip(), dir)).toThrow(/outside the working dir|not a pip_install_options entry/);
    });
  }

  it('takes files, includes and packages of the working dir, and names from an index', () => {
    const spec = pipSpecOf('requirements.txt', dir);
    expect(spec.expanded).toEqual(['# requirements.txt', 'tinypkg', '-r more.txt', '# more.txt', 'otherpkg==1.0', './local']);
    expect(pipSpecOf(['numpy==1.26', './local', '-e ./local'], dir).local).toBe(true);
    expect(pipSpecOf(['https://example.invalid/x.whl'], dir).install).toEqual(['https://example.invalid/x.whl']);
  });
});

// The README's example, run as it is: its first ```js block, written into
// the package (so `import '@herald/server'` resolves to this package's
// built dist/ by name, as it will for an application) and run by node
// against the live memory node.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { expect, inject, it } from 'vitest';

const here = path.dirname(fileURLToPath(import.meta.url));
const pkg = path.resolve(here, '..');

it('the README example runs against a live node', async () => {
  const readme = fs.readFileSync(path.join(pkg, 'README.md'), 'utf8');
  const block = /```js\n([\s\S]*?)```/.exec(readme)?.[1];
  expect(block, 'README.md has no ```js block').toBeTruthy();
  expect(fs.existsSync(path.join(pkg, 'dist/index.js')), 'dist/ is not built: npm run build (npm test does)').toBe(true);
  const file = path.join(pkg, '.readme-example.mjs');
  fs.writeFileSync(file, block!);
  const { stdout } = await promisify(execFile)(process.execPath, [file], {
    cwd: pkg,
    env: { ...process.env, HERALD_URL: inject('memory').url, HERALD_API_KEY: inject('keys').admin },
    timeout: 20_000,
  });
  const lines = stdout.trim().split('\n');
  expect(lines).toHaveLength(3);
  expect(lines[0]).toMatch(/^stored [0-9a-f-]{36}$/);
  expect(lines[1]).toBe('Order #1234 is on its way. - unread: 1');
  expect(lines[2]).toBe('400 invalid_field');
});

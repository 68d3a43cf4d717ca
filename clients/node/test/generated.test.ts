// src/generated/openapi.ts is what `npm run gen` makes of docs/openapi.json
// (openapi-typescript, pinned in devDependencies): committed, never edited
// by hand, and this test fails when it differs from a fresh generation —
// the document changed and `npm run gen` was not run, or the file was edited.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';

const pkg = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

it('the committed types are a fresh generation from docs/openapi.json', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-openapi-'));
  try {
    const fresh = path.join(dir, 'openapi.ts');
    const gen = JSON.parse(fs.readFileSync(path.join(pkg, 'package.json'), 'utf8')).scripts.gen as string;
    // The same command as `npm run gen`, written elsewhere.
    const args = gen.split(' ').slice(1);
    args[args.indexOf('-o') + 1] = fresh;
    await promisify(execFile)(path.join(pkg, 'node_modules/.bin/openapi-typescript'), args, { cwd: pkg });
    const committed = fs.readFileSync(path.join(pkg, 'src/generated/openapi.ts'), 'utf8');
    const same = committed === fs.readFileSync(fresh, 'utf8');
    expect(same, 'src/generated/openapi.ts differs from docs/openapi.json: run `npm run gen` in clients/node').toBe(true);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

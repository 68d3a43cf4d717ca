// Builds dist/herald.js (ESM, minified, no dependency bundled), its types
// (tsc --emitDeclarationOnly), and dist/msgpack.js (@msgpack/msgpack as one
// ES module, for pages that load the SDK without a bundler, like the demo).
// `--size` prints the minified and gzipped sizes.
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync, mkdirSync, writeFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';

rmSync('dist', { recursive: true, force: true });
mkdirSync('dist');

await build({
  entryPoints: ['src/index.ts'],
  outfile: 'dist/herald.js',
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2020',
  minify: true,
  sourcemap: true,
  legalComments: 'none',
  external: ['@msgpack/msgpack'],
});

await build({
  stdin: { contents: "export { encode, decode } from '@msgpack/msgpack';", resolveDir: '.' },
  outfile: 'dist/msgpack.js',
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2020',
  minify: true,
  legalComments: 'none',
});

execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '--emitDeclarationOnly', '-p', '.'], { stdio: 'inherit' });

const sizes = {};
for (const f of ['herald.js', 'msgpack.js']) {
  const buf = readFileSync(`dist/${f}`);
  sizes[f] = { min: buf.length, gzip: gzipSync(buf, { level: 9 }).length };
}
writeFileSync('dist/size.json', JSON.stringify(sizes, null, 2) + '\n');
if (process.argv.includes('--size')) {
  for (const [f, s] of Object.entries(sizes)) console.log(`${f}: ${s.min} bytes minified, ${s.gzip} bytes gzipped`);
}

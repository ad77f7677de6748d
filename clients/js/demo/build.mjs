// Builds the demo page into pkg/demo/dist (committed: `go run ./cmd/node`
// must work without npm). Run from clients/js: `npm run build:demo`.
import { build } from 'esbuild';
import { copyFile, mkdir, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, '../../../pkg/demo/dist');
const common = { bundle: true, minify: true, sourcemap: false, target: 'es2022', legalComments: 'none', logLevel: 'warning' };

await rm(out, { recursive: true, force: true });
await mkdir(out, { recursive: true });
await build({ ...common, entryPoints: [join(here, 'main.ts')], format: 'esm', outfile: join(out, 'app.js') });
// The SharedWorker for ?shared=1: a classic script, so every browser with SharedWorker runs it.
await build({ ...common, entryPoints: [join(here, '../packages/client/src/worker.ts')], format: 'iife', outfile: join(out, 'worker.js') });
await copyFile(join(here, 'index.html'), join(out, 'index.html'));
for (const f of ['index.html', 'app.js', 'worker.js']) {
	console.log(`${f.padEnd(11)} ${(await stat(join(out, f))).size} B`);
}

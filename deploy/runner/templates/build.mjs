#!/usr/bin/env node
// Image build step: install the dependency trees of the starter templates in templates.json.
//
//   node build.mjs <templates.json> <all|none|name,name...> <out dir>
//
// Each selected template's package.json and package-lock.json are copied to
// <out dir>/<key> (key = prebuiltKey('npm', lockfile bytes), lib/prebuilt.mjs), `npm ci` runs
// there (packages from the npm registry only), then the marker file is written: a tree whose
// install failed has no marker and is never used. Exits 1 on an unknown name or a failed install.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { MARKER, prebuiltKey } from '../lib/prebuilt.mjs';

function selected(config, which) {
  const all = config.templates ?? [];
  if (which === 'none' || which === '') return [];
  if (which === 'all') return all;
  return which.split(',').map((name) => {
    const t = all.find((x) => x.name === name.trim());
    if (!t) throw new Error(`unknown template ${JSON.stringify(name)} (templates.json has ${all.map((x) => x.name).join(', ')})`);
    return t;
  });
}

function build(base, t, outDir, cache) {
  const lock = fs.readFileSync(path.join(base, t.dir, 'package-lock.json'));
  const key = prebuiltKey('npm', lock);
  const dir = path.join(outDir, key);
  fs.mkdirSync(dir, { recursive: true });
  fs.copyFileSync(path.join(base, t.dir, 'package.json'), path.join(dir, 'package.json'));
  fs.writeFileSync(path.join(dir, 'package-lock.json'), lock);
  const started = Date.now();
  const r = spawnSync('npm', ['ci', '--no-audit', '--no-fund', '--cache', cache], { cwd: dir, stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`npm ci for template ${t.name} exited ${r.status ?? r.signal}`);
  fs.mkdirSync(path.join(dir, 'node_modules'), { recursive: true }); // a template without dependencies
  const marker = { key, template: t.name, installSeconds: Math.round((Date.now() - started) / 100) / 10 };
  fs.writeFileSync(path.join(dir, MARKER), `${JSON.stringify(marker)}\n`);
  console.log(`prebuilt: ${t.name} -> ${dir} (${marker.installSeconds}s)`);
}

const [configPath, which = 'all', outDir = '/opt/prebuilt'] = process.argv.slice(2);
const config = JSON.parse(fs.readFileSync(configPath, 'utf8'));
const cache = fs.mkdtempSync(path.join(os.tmpdir(), 'prebuilt-npm-cache-'));
try {
  for (const t of selected(config, which)) build(path.dirname(configPath), t, outDir, cache);
} catch (e) {
  console.error(`prebuilt: ${e.message}`);
  process.exitCode = 1;
} finally {
  fs.rmSync(cache, { recursive: true, force: true });
}

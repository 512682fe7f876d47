// Prebuilt dependency trees (lib/prebuilt.mjs, templates/build.mjs): the key, the lookup, and the
// real runner checking a project out into a matching tree (npm ci skipped) or installing as usual
// when its lockfile differs by one byte. No network: the dependency is a local `file:` package.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { MARKER, findPrebuilt, prebuiltKey } from '../lib/prebuilt.mjs';
import { Fixture, SERVER_JS_WITH_DEP, START_MS, pkg } from './fixture.mjs';

const BUILD = fileURLToPath(new URL('../templates/build.mjs', import.meta.url));
const LOCK = '{\n  "name": "app",\n  "lockfileVersion": 3,\n  "requires": true,\n  "packages": {}\n}\n';

function tmp(t, tag) {
  const dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), `runner-prebuilt-${tag}-`)));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A prebuilt tree for `lock`, as build.mjs leaves it, with node_modules/dep exporting `says`. */
function prebuiltTree(prebuiltDir, lock, says, markerKey = null) {
  const key = prebuiltKey('npm', Buffer.from(lock));
  const dir = path.join(prebuiltDir, key);
  fs.mkdirSync(path.join(dir, 'node_modules', 'dep'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'package-lock.json'), lock);
  fs.writeFileSync(path.join(dir, 'node_modules', 'dep', 'package.json'), JSON.stringify({ name: 'dep', version: '1.0.0', main: 'index.js' }));
  fs.writeFileSync(path.join(dir, 'node_modules', 'dep', 'index.js'), `module.exports = ${JSON.stringify(says)};\n`);
  fs.writeFileSync(path.join(dir, MARKER), JSON.stringify({ key: markerKey ?? key, template: 'test-template' }));
  return dir;
}

const npmPlan = (root) => ({ pm: 'npm', lockfile: 'package-lock.json', installDir: root });

test('the key is the package manager plus the exact lockfile bytes', () => {
  const k = prebuiltKey('npm', Buffer.from(LOCK));
  assert.match(k, /^[0-9a-f]{64}$/);
  assert.equal(prebuiltKey('npm', Buffer.from(LOCK)), k);
  assert.notEqual(prebuiltKey('npm', Buffer.from(`${LOCK}\n`)), k);
  assert.notEqual(prebuiltKey('pnpm', Buffer.from(LOCK)), k);
});

test('findPrebuilt: an exact match only, with its marker, for npm at the repository root', (t) => {
  const base = tmp(t, 'find');
  const prebuilt = path.join(base, 'prebuilt');
  const root = path.join(base, 'tree');
  fs.mkdirSync(root);
  fs.writeFileSync(path.join(root, 'package-lock.json'), LOCK);
  const dir = prebuiltTree(prebuilt, LOCK, 'x');
  assert.deepEqual(findPrebuilt(prebuilt, root, npmPlan(root)), { dir, key: path.basename(dir), template: 'test-template' });
  // Disabled, another package manager, another install folder (workspaces / ROOT_DIRECTORY).
  assert.equal(findPrebuilt(null, root, npmPlan(root)), null);
  assert.equal(findPrebuilt(prebuilt, root, { ...npmPlan(root), pm: 'pnpm', lockfile: 'pnpm-lock.yaml' }), null);
  assert.equal(findPrebuilt(prebuilt, root, { ...npmPlan(root), lockfile: 'npm-shrinkwrap.json' }), null);
  assert.equal(findPrebuilt(prebuilt, root, { ...npmPlan(root), installDir: path.join(root, 'apps/web') }), null);
  // One byte more in the lockfile: no match.
  fs.writeFileSync(path.join(root, 'package-lock.json'), `${LOCK} `);
  assert.equal(findPrebuilt(prebuilt, root, npmPlan(root)), null);
  fs.writeFileSync(path.join(root, 'package-lock.json'), LOCK);
  // A tree without its marker (its install failed) or with another key never matches.
  fs.rmSync(path.join(dir, MARKER));
  assert.equal(findPrebuilt(prebuilt, root, npmPlan(root)), null);
  prebuiltTree(prebuilt, LOCK, 'x', 'f'.repeat(64));
  assert.equal(findPrebuilt(prebuilt, root, npmPlan(root)), null);
});

test('build.mjs installs the selected templates and marks them; unknown names fail', (t) => {
  const base = tmp(t, 'build');
  fs.mkdirSync(path.join(base, 'templates', 'empty'), { recursive: true });
  fs.writeFileSync(path.join(base, 'templates', 'empty', 'package.json'), pkg());
  fs.writeFileSync(path.join(base, 'templates', 'empty', 'package-lock.json'), LOCK);
  const config = path.join(base, 'templates.json');
  fs.writeFileSync(config, JSON.stringify({ templates: [{ name: 'empty', dir: 'templates/empty' }] }));
  const env = { ...process.env, npm_config_offline: 'true', npm_config_update_notifier: 'false' };
  const none = spawnSync(process.execPath, [BUILD, config, 'none', path.join(base, 'out-none')], { env, encoding: 'utf8' });
  assert.equal(none.status, 0, none.stderr);
  assert.ok(!fs.existsSync(path.join(base, 'out-none')));
  const bad = spawnSync(process.execPath, [BUILD, config, 'nope', path.join(base, 'out')], { env, encoding: 'utf8' });
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /unknown template "nope" \(templates.json has empty\)/);
  const ok = spawnSync(process.execPath, [BUILD, config, 'empty', path.join(base, 'out')], { env, encoding: 'utf8' });
  assert.equal(ok.status, 0, ok.stderr);
  const root = path.join(base, 'project');
  fs.mkdirSync(root);
  fs.writeFileSync(path.join(root, 'package-lock.json'), LOCK);
  const found = findPrebuilt(path.join(base, 'out'), root, npmPlan(root));
  assert.equal(found?.template, 'empty');
  assert.ok(fs.statSync(path.join(found.dir, 'node_modules')).isDirectory());
});

/** A project depending on a local package, with its package-lock.json (made offline). */
function projectWithLock(fx) {
  fx.write('vendor/dep/package.json', JSON.stringify({ name: 'dep', version: '1.0.0', main: 'index.js' }));
  fx.write('vendor/dep/index.js', "module.exports = 'installed-from-repo';\n");
  fx.write('package.json', pkg({ dependencies: { dep: 'file:./vendor/dep' } }));
  fx.write('server.js', SERVER_JS_WITH_DEP);
  const r = spawnSync('npm', ['install', '--package-lock-only', '--offline', '--no-audit', '--no-fund'], { cwd: fx.work, env: fx.baseEnv(), encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return fs.readFileSync(path.join(fx.work, 'package-lock.json'), 'utf8');
}

test('a matching lockfile is checked out into the prebuilt tree: npm ci skipped', { timeout: 180_000 }, async (t) => {
  const fx = new Fixture(t, 'prebuilt-match');
  const lock = projectWithLock(fx);
  const head = fx.commitAndPush('with lockfile');
  const prebuilt = fx.path('prebuilt');
  const dir = prebuiltTree(prebuilt, lock, 'from-prebuilt');
  const r = await fx.runner({ PREBUILT_DIR: prebuilt });
  await r.waitForBody('from-prebuilt', START_MS);
  assert.ok(r.out.includes(`[runner] package-lock.json matches the prebuilt tree of template test-template: checked out into ${dir}, npm ci skipped\n`), r.logs());
  assert.equal(r.count('installing dependencies'), 0, r.logs());
  const repo = path.join(fx.workdir, 'repo');
  assert.equal(fs.realpathSync(repo), dir);
  assert.equal(fx.git(dir, ['rev-parse', 'HEAD']), head);
  assert.equal(fx.git(dir, ['status', '--porcelain', '--untracked-files=no']), '', 'tracked files are the commit');
  assert.ok(fs.existsSync(path.join(dir, 'server.js')));
  assert.ok(!fs.existsSync(path.join(fx.workdir, 'trees', '1')), 'the clone moved into the prebuilt tree');

  // A later dependency change installs in a new tree as usual and leaves the prebuilt one.
  fx.write('package.json', pkg({ version: '1.0.1', dependencies: { dep: 'file:./vendor/dep' } }));
  fs.rmSync(path.join(fx.work, 'package-lock.json'));
  const next = fx.commitAndPush('dependencies changed');
  const s = await r.sync();
  assert.equal(s.code, 0, s.stdout);
  await r.waitForBody('installed-from-repo', START_MS);
  assert.equal(fs.readlinkSync(repo), path.join('trees', '2'));
  assert.equal(fx.git(repo, ['rev-parse', 'HEAD']), next);
});

test('a lockfile that differs by one byte installs as usual', { timeout: 180_000 }, async (t) => {
  const fx = new Fixture(t, 'prebuilt-mismatch');
  const lock = projectWithLock(fx);
  fx.commitAndPush('with lockfile');
  const prebuilt = fx.path('prebuilt');
  const dir = prebuiltTree(prebuilt, `${lock}\n`, 'from-prebuilt');
  const r = await fx.runner({ PREBUILT_DIR: prebuilt });
  await r.waitForBody('installed-from-repo', START_MS);
  assert.ok(r.out.includes('[runner] installing dependencies: npm ci --no-audit --no-fund\n'), r.logs());
  assert.ok(!r.out.includes('npm ci skipped'), r.logs());
  assert.equal(fs.readlinkSync(path.join(fx.workdir, 'repo')), path.join('trees', '1'));
  assert.ok(!fs.existsSync(path.join(dir, '.git')), 'the prebuilt tree is untouched');
});

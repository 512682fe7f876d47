// End-to-end (local git fixture, no network): the front server on PORT with its status page and
// reserved paths, the `status` command, supervision of the dev server (killed, stopped, crash
// loop), install failures that name their cause, a server bound to localhost only, and
// ROOT_DIRECTORY in an npm-workspaces monorepo. Each app is reached through the machine's
// non-loopback address, as Fly's proxy reaches the runner.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import { test } from 'node:test';

import { nonLoopbackAddress } from '../lib/probe.mjs';
import { Fixture, SLOW_PREINSTALL, START_MS, pkg, sleep, until } from './fixture.mjs';

const OUTSIDE = nonLoopbackAddress() ?? '127.0.0.1';

/** pids of `node server.js <marker>` (the dev server itself, not npm or its shell). */
function pidsOf(marker) {
  const r = spawnSync('pgrep', ['-f', `^node server\\.js ${marker}`], { encoding: 'utf8' });
  return r.stdout.split('\n').filter(Boolean).map(Number);
}

test('status page while installing, reserved paths, status command, then the app through a non-loopback address', { timeout: 120_000 }, async (t) => {
  const fx = new Fixture(t, 'status');
  fx.write('package.json', pkg({ scripts: { dev: 'node server.js', preinstall: SLOW_PREINSTALL(4000) } }));
  const sha = fx.commitAndPush('slow install');
  const r = await fx.runner({ DEV_PORT: null });
  const page = await until('status page', async () => {
    const g = await r.get('/', 'roseram-1.fly.dev', OUTSIDE);
    return g?.status === 503 && g.body.includes('Installing dependencies') ? g : null;
  }, 30_000, r.logs);
  assert.equal(page.headers['retry-after'], '2');
  assert.equal((await r.get('/__preview/health', 'x', OUTSIDE)).body, 'ok\n');
  const ready = await r.get('/__preview/ready');
  assert.equal(ready.status, 503);
  assert.match(ready.body, /^installing: installing dependencies \(npm install/);
  const during = await r.sync([], 'status');
  assert.equal(during.code, 1, during.stdout);
  assert.equal(JSON.parse(during.stdout).phase, 'installing');

  await until('the app', async () => (await r.get('/', 'roseram-1.fly.dev', OUTSIDE))?.body === 'v1', START_MS, r.logs);
  assert.equal((await r.get('/__preview/ready')).status, 200);
  assert.equal((await r.get('/env/PORT')).body, String(r.devPort), 'the dev server runs on DEV_PORT, by default PORT + 1');
  const st = await r.sync([], 'status');
  assert.equal(st.code, 0, st.stdout);
  const json = JSON.parse(st.stdout);
  assert.deepEqual(Object.keys(json).sort(), ['lines', 'message', 'phase', 'restarts', 'revision', 'since']);
  assert.equal(json.phase, 'serving');
  assert.equal(json.revision, sha.slice(0, 12));
  assert.equal(json.restarts, 0);
  assert.deepEqual(await r.state(), json);
});

test('a dev server killed (SIGKILL) or stopped (SIGSTOP) is restarted; the status says so', { timeout: 180_000 }, async (t) => {
  const fx = new Fixture(t, 'supervise');
  const marker = `supervised-${process.pid}-${Date.now()}`;
  fx.write('package.json', pkg({ scripts: { dev: `node server.js ${marker}` } }));
  fx.commitAndPush('marked');
  const r = await fx.runner();
  await r.waitForBody('v1', START_MS);

  const [first] = pidsOf(marker);
  assert.ok(first, 'dev server pid');
  let t0 = Date.now();
  process.kill(first, 'SIGKILL');
  await until('serving again after a restart', async () => {
    const s = await r.state();
    return s?.restarts === 1 && s.phase === 'serving' && (await r.get('/'))?.body === 'v1';
  }, 60_000, r.logs);
  const killed = Date.now() - t0;
  assert.match(r.out, /dev server exited with code 137; restarting in 1s/);

  const [second] = pidsOf(marker);
  assert.ok(second && second !== first);
  t0 = Date.now();
  process.kill(second, 'SIGSTOP');
  await r.waitForLog('stopped answering HTTP', 60_000);
  await until('serving again', async () => (await r.get('/'))?.body === 'v1' && (await r.state())?.restarts === 2, 60_000, r.logs);
  const stopped = Date.now() - t0;
  assert.ok(!pidsOf(marker).includes(second), 'the stopped process is gone');
  t.diagnostic(`SIGKILL -> serving again in ${(killed / 1000).toFixed(1)}s; SIGSTOP -> serving again in ${(stopped / 1000).toFixed(1)}s`);
});

test('a crash loop after serving lingers with its status, then exits 7', { timeout: 180_000 }, async (t) => {
  const fx = new Fixture(t, 'crashloop');
  // Serves, then dies 1.5 s later, every time.
  fx.write('server.js', `require('http').createServer((q, s) => s.end('up')).listen(Number(process.env.PORT), process.env.HOST);
setTimeout(() => { console.error('TypeError: boom at app.js:1'); process.exit(1); }, 1500);\n`);
  fx.commitAndPush('crashes');
  const r = await fx.runner({ FAILURE_LINGER: '3s' });
  await r.waitForBody('up', START_MS);
  // Between crashes (backoff 1, 2, 4, 8 s) the status page says it is restarting.
  const between = await until('restarting', async () => {
    const s = await r.state();
    return s?.phase === 'restarting' && s.restarts >= 2 ? await r.get('/') : null;
  }, 60_000, r.logs);
  assert.equal(between.status, 503);
  assert.match(between.body, /Restarting the dev server/);
  await until('crash loop', async () => (await r.state())?.phase === 'crashloop', 120_000, r.logs);
  const t0 = Date.now();
  const ready = await r.get('/__preview/ready');
  assert.equal(ready.status, 503);
  assert.match(ready.body, /^crashloop: dev server failed 5 times within 2m \(last: exited with code 1\); giving up\n/);
  assert.match(ready.body, /TypeError: boom/);
  assert.equal((await r.get('/')).status, 503);
  const exit = await r.waitExit(30_000);
  assert.deepEqual(exit, { code: 7, signal: null });
  const lines = r.stderrLines().filter((l) => l.startsWith('runner:'));
  assert.deepEqual(lines, ['runner: dev server failed 5 times within 2m (last: exited with code 1); giving up']);
  t.diagnostic(`crash loop -> exit 7 after ${((Date.now() - t0) / 1000).toFixed(1)}s of linger (FAILURE_LINGER=3s)`);
});

function registry404(t) {
  const srv = http.createServer((req, res) => {
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end('{"error":"Not found"}');
  });
  t.after(() => srv.close());
  return new Promise((resolve) => srv.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${srv.address().port}/`)));
}

test('install failures name the cause: a private package, a missing environment variable; secrets redacted', { timeout: 120_000 }, async (t) => {
  const fx = new Fixture(t, 'cause');
  const registry = await registry404(t);
  fx.write('package.json', pkg({ dependencies: { '@acme/private-ui': '^1.0.0' } }));
  fx.commitAndPush('private dep');
  const NPM_TOKEN = 'npm_0123456789abcdefghijklmnopqrstuvwxyz';
  const r = await fx.runner({ npm_config_registry: registry, NPM_TOKEN, FAILURE_LINGER: '2s' });
  await until('install_failed', async () => (await r.state())?.phase === 'install_failed', 60_000, r.logs);
  const st = await r.state();
  assert.match(st.message, /^install failed: @acme\/private-ui could not be downloaded with NPM_TOKEN \(404\): renew NPM_TOKEN/);
  assert.deepEqual(await r.waitExit(30_000), { code: 4, signal: null });
  assert.match(r.stderrLines().at(-1), /^runner: install failed: @acme\/private-ui could not be downloaded/);

  fx.write('package.json', pkg({
    scripts: {
      dev: 'node server.js',
      postinstall: `node -e "console.log('Authorization: Bearer s3cr3t-header'); console.log('token ' + process.env.NPM_TOKEN); console.error('Error: Missing environment variable DATABASE_URL'); process.exit(1)"`,
    },
  }));
  fx.commitAndPush('needs env');
  const r2 = await fx.runner({ NPM_TOKEN, FAILURE_LINGER: '2s' });
  await until('install_failed', async () => (await r2.state())?.phase === 'install_failed', 60_000, r2.logs);
  const body = (await r2.get('/__preview/ready')).body;
  assert.match(body, /^install_failed: install failed: the install needs the environment variable DATABASE_URL/);
  assert.ok(body.includes('Authorization: [REDACTED]') && body.includes('token [REDACTED]'), body);
  assert.ok(!body.includes('s3cr3t-header') && !body.includes(NPM_TOKEN), body);
  assert.deepEqual(await r2.waitExit(30_000), { code: 4, signal: null });
  assert.ok(!r2.out.includes(NPM_TOKEN) && !r2.err.includes(NPM_TOKEN), 'NPM_TOKEN redacted from the log');

  // A lockfile that does not have a dependency package.json names: npm ci refuses before fetching.
  fx.write('vendor/dep/package.json', JSON.stringify({ name: 'dep', version: '1.0.0' }));
  fx.write('package.json', pkg({ dependencies: { dep: 'file:./vendor/dep' } }));
  fx.write('package-lock.json', JSON.stringify({ name: 'app', version: '1.0.0', lockfileVersion: 3, requires: true, packages: { '': { name: 'app', version: '1.0.0' } } }));
  fx.commitAndPush('stale lockfile');
  const r3 = await fx.runner({ npm_config_registry: registry });
  assert.deepEqual(await r3.waitExit(60_000), { code: 4, signal: null });
  assert.match(
    r3.stderrLines().at(-1),
    /^runner: install failed: package-lock\.json is out of date with package\.json: run `npm install` and commit package-lock\.json \(npm ci exited with code 1\)$/,
  );
});

test('a plain server bound to localhost only is served, with one line naming the port and the fix', { timeout: 120_000 }, async (t) => {
  const fx = new Fixture(t, 'loopback');
  fx.write('server.js', `require('http').createServer((q, s) => s.end('local only')).listen(Number(process.env.PORT), 'localhost');\n`);
  fx.commitAndPush('localhost');
  const r = await fx.runner();
  await until('served through the non-loopback address', async () => (await r.get('/', 'roseram-1.fly.dev', OUTSIDE))?.body === 'local only', START_MS, r.logs);
  if (OUTSIDE !== '127.0.0.1') {
    await r.waitForLog(`:${r.devPort} only (loopback)`, 30_000);
    assert.match(r.out, /to fix, listen on 0\.0\.0\.0/);
  }
});

test('ROOT_DIRECTORY in an npm-workspaces monorepo: installs at the root, runs apps/web', { timeout: 120_000 }, async (t) => {
  const fx = new Fixture(t, 'monorepo');
  fs.rmSync(`${fx.work}/server.js`);
  fs.rmSync(`${fx.work}/content.txt`);
  fx.write('package.json', JSON.stringify({ name: 'mono', private: true, workspaces: ['apps/*', 'packages/*'] }));
  fx.write('packages/greeting/package.json', JSON.stringify({ name: 'greeting', version: '1.0.0', main: 'index.js' }));
  fx.write('packages/greeting/index.js', "module.exports = 'hello from a workspace package';\n");
  fx.write('apps/web/package.json', JSON.stringify({ name: 'web', version: '1.0.0', dependencies: { greeting: '*' }, scripts: { dev: 'node server.js' } }));
  fx.write('apps/web/server.js', `require('http').createServer((q, s) => s.end(require('greeting') + ' in ' + process.cwd().split('/').slice(-2).join('/'))).listen(Number(process.env.PORT), process.env.HOST);\n`);
  fx.commitAndPush('monorepo');
  const r = await fx.runner({ ROOT_DIRECTORY: 'apps/web' });
  await until('the app', async () => (await r.get('/', 'roseram-1.fly.dev', OUTSIDE))?.body === 'hello from a workspace package in apps/web', START_MS, r.logs);
  assert.match(r.out, /\[runner\] installing dependencies: npm install/);
  assert.match(r.out, /starting dev server on port \d+ in apps\/web: npm run dev/);

  const bad = await fx.runner({ ROOT_DIRECTORY: 'apps/missing' });
  assert.deepEqual(await bad.waitExit(30_000), { code: 4, signal: null });
  assert.deepEqual(bad.stderrLines(), ['runner: no folder apps/missing (ROOT_DIRECTORY) in the repository']);
  await sleep(10);
});

test('an app that listens on the runner\'s own PORT is told to use process.env.PORT (exit 5)', { timeout: 120_000 }, async (t) => {
  const fx = new Fixture(t, 'portclash');
  // DEV_PORT is PORT + 1: this app binds PORT, where the runner listens.
  fx.write('server.js', `require('http').createServer((q, s) => s.end('x')).listen(Number(process.env.PORT) - 1, '0.0.0.0');\n`);
  fx.commitAndPush('hardcoded port');
  const r = await fx.runner({ DEV_PORT: null });
  assert.deepEqual(await r.waitExit(90_000), { code: 5, signal: null });
  const last = r.stderrLines().at(-1);
  assert.match(last, new RegExp(`^runner: dev server keeps exiting at start \\(5 times in a row, last exited with code 1 \\(port ${r.port} is the runner's: the app must listen on process\\.env\\.PORT, which is ${r.devPort}\\)\\); giving up$`));
});

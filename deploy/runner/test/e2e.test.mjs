// End-to-end: the real runner against a local git fixture, like tests/it/runner.rs. There is no
// network: the runner only accepts https://github.com/<owner>/<repo>, and a test-only global git
// config (GIT_CONFIG_GLOBAL) rewrites that prefix to file://<tmp>/remotes/ with
// url.<base>.insteadOf, so the production code has no test escape hatch. The app has no registry
// dependencies (only a local `file:` one), so `npm install` works offline.
//
// Needs `git` and `npm` on PATH. RUNNER_E2E_VITE=1 adds a test that installs Vite from the npm
// registry and checks which Host headers its dev server answers.


import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

import { Fixture, SERVER_JS_WITH_DEP, SLOW_PREINSTALL, START_MS, pkg, short, sleep, until } from './fixture.mjs';

test('serves, follows pushes, logs the served commit, strips ANSI, stops on SIGTERM', { timeout: 180_000 }, async (t) => {
  const fx = new Fixture(t, 'serve');
  const r = await fx.runner({ SYNC_INTERVAL: '1s' });
  await r.waitForBody('v1', START_MS);
  assert.ok(r.out.includes(`[git] serving ${short(fx.v1)}\n`), r.logs());
  assert.equal(fs.readlinkSync(path.join(fx.workdir, 'repo')), path.join('trees', '1'));
  assert.equal((await r.get('/env/NEXT_TELEMETRY_DISABLED')).body, '1');
  await r.waitForLog('[dev]   ready on ');
  assert.ok(!r.out.includes('\u001b') && !r.err.includes('\u001b'), 'ANSI escapes must be stripped');

  fx.write('content.txt', 'v2');
  const pushed = Date.now();
  const v2 = fx.commitAndPush('v2');
  await r.waitForBody('v2', 30_000);
  assert.ok(Date.now() - pushed < 2 * 1000 + 1500, 'a push is served within 2 x SYNC_INTERVAL');
  await r.waitForLog(`[git] serving ${short(v2)}\n`);
  assert.equal(r.count('installing dependencies'), 1, r.logs());

  process.kill(r.child.pid, 'SIGTERM');
  assert.deepEqual(await r.waitExit(15_000), { code: 0, signal: null });
  assert.equal(await r.get('/'), null, 'the dev server stops with the runner');
  assert.equal(fs.existsSync(path.join(fx.workdir, '.runner.sock')), false);
});

test('sync subcommand fetches now and answers with the served revision', { timeout: 180_000 }, async (t) => {
  const fx = new Fixture(t, 'sync');
  const r = await fx.runner(); // SYNC_INTERVAL=60m: only `sync` fetches
  const sock = path.join(fx.workdir, '.runner.sock');
  await until('control socket', () => fs.existsSync(sock), START_MS, r.logs);
  // A sync made while the runner is still cloning / installing waits until it serves.
  const early = await r.sync(['--timeout', '90s']);
  assert.equal(early.code, 0, early.stdout + r.logs());
  assert.deepEqual(early.reply, { ok: true, revision: fx.v1 });
  assert.equal((await r.get('/')).body, 'v1');

  fx.write('content.txt', 'v2');
  const v2 = fx.commitAndPush('v2');
  const replies = await Promise.all([r.sync(), r.sync(), r.sync()]);
  for (const s of replies) {
    assert.equal(s.code, 0, s.stdout);
    assert.deepEqual(s.reply, { ok: true, revision: v2 });
    assert.equal(s.dev.phase, 'serving', s.stdout);
    assert.equal(s.dev.revision, short(v2), s.stdout);
    assert.equal(s.stdout.split('\n').length, 2, 'exactly one line');
  }
  assert.equal((await r.get('/')).body, 'v2', 'served as soon as sync answers');
  assert.equal(r.count(`[git] serving ${short(v2)}`), 1, r.logs());

  // Force-push of rewritten history.
  fx.git(fx.work, ['checkout', '-q', '--orphan', 'rewritten']);
  fx.write('content.txt', 'rewritten');
  const rewritten = fx.commitAndPush('rewrite');
  assert.deepEqual((await r.sync()).reply, { ok: true, revision: rewritten });
  assert.equal((await r.get('/')).body, 'rewritten');

  // The branch is gone: fetch fails, the old commit keeps serving.
  fx.git(fx.path('remotes/o/r'), ['update-ref', '-d', 'refs/heads/main']);
  const failed = await r.sync();
  assert.equal(failed.code, 1);
  assert.equal(failed.reply.ok, false);
  assert.equal(failed.reply.error, 'fetch_failed');
  assert.equal(failed.reply.revision, rewritten);
  assert.equal((await r.get('/')).body, 'rewritten');
});

test('a dependency change installs beside the running dev server, then switches', { timeout: 240_000 }, async (t) => {
  const fx = new Fixture(t, 'deps');
  const r = await fx.runner();
  await r.waitForBody('v1', START_MS);

  fx.write('vendor/dep/package.json', JSON.stringify({ name: 'dep', version: '1.0.0', main: 'index.js' }));
  fx.write('vendor/dep/index.js', "module.exports = 'served-by-dep';\n");
  fx.write('package.json', pkg({ version: '1.0.1', dependencies: { dep: 'file:./vendor/dep' }, scripts: { dev: 'node server.js', preinstall: SLOW_PREINSTALL(3000) } }));
  fx.write('server.js', SERVER_JS_WITH_DEP);
  const next = fx.commitAndPush('add dep');

  const s = await r.sync();
  assert.equal(s.code, 0, s.stdout);
  assert.deepEqual(s.reply, { ok: true, revision: fx.v1, installing: next });
  // The old dev server answers all through the install.
  let answered = 0;
  while (!r.out.includes('switching the dev server')) {
    const got = await r.get('/');
    assert.equal(got?.body, 'v1', `old server must keep serving during the install\n${r.logs()}`);
    answered += 1;
    await sleep(100);
  }
  assert.ok(answered >= 10, `install was too quick to observe (${answered})`);
  await r.waitForBody('served-by-dep', START_MS);
  assert.ok(r.running);
  assert.ok(r.out.includes('dependency files changed'), r.logs());
  assert.equal(r.count('installing dependencies'), 2, r.logs());
  assert.equal(r.count('starting dev server'), 2, r.logs());
  assert.ok(r.out.includes(`[git] serving ${short(next)}\n`), r.logs());
  const repo = path.join(fx.workdir, 'repo');
  assert.equal(fs.readlinkSync(repo), path.join('trees', '2'));
  assert.ok(fs.existsSync(path.join(repo, 'node_modules/dep')));
  assert.ok(!fs.existsSync(path.join(repo, 'package-lock.json')));
  assert.ok(fs.statSync(path.join(repo, '.git')).isDirectory(), 'each tree has its own .git directory');
  await until('old tree removed', () => !fs.existsSync(path.join(fx.workdir, 'trees', '1')), 10_000, r.logs);
  assert.deepEqual((await r.sync()).reply, { ok: true, revision: next });
  assert.equal(fx.git(repo, ['rev-parse', 'HEAD']), next);
});

test('failed and timed-out reinstalls keep the old dev server serving', { timeout: 240_000 }, async (t) => {
  const fx = new Fixture(t, 'fail');
  const r = await fx.runner({ INSTALL_TIMEOUT: '2s' });
  await r.waitForBody('v1', START_MS);

  // A stuck install: killed after INSTALL_TIMEOUT, counted as a failed install.
  fx.write('package.json', pkg({ scripts: { dev: 'node server.js', preinstall: SLOW_PREINSTALL(60_000) } }));
  fx.write('content.txt', 'slow');
  const slow = fx.commitAndPush('slow install');
  assert.deepEqual((await r.sync()).reply, { ok: true, revision: fx.v1, installing: slow });
  await r.waitForLog(`install failed for ${short(slow)}: install timed out after 2s (INSTALL_TIMEOUT); still serving ${short(fx.v1)}\n`);
  assert.equal((await r.get('/')).body, 'v1');
  const again = await r.sync();
  assert.equal(again.code, 1);
  assert.deepEqual(again.reply, {
    ok: false,
    error: 'install_failed',
    message: 'install timed out after 2s (INSTALL_TIMEOUT)',
    revision: fx.v1,
  });
  assert.equal(r.count('installing dependencies'), 2, 'the same commit is not retried');

  // A failing install.
  fx.write('package.json', pkg({ scripts: { dev: 'node server.js', preinstall: 'exit 3' } }));
  const broken = fx.commitAndPush('broken install');
  assert.equal((await r.sync()).reply.installing, broken);
  await r.waitForLog(`install failed for ${short(broken)}: npm install exited with code 3; still serving ${short(fx.v1)}\n`);
  assert.equal((await r.get('/')).body, 'v1');
  assert.ok(r.running);
  // No dev script: refused before installing.
  fx.write('package.json', pkg({ scripts: { build: 'true' } }));
  const noscript = fx.commitAndPush('no script');
  await r.sync();
  await r.waitForLog(`install failed for ${short(noscript)}: package.json has neither a "dev" nor a "start" script; still serving ${short(fx.v1)}`);
  assert.equal(r.count('installing dependencies'), 3, r.logs());

  // Fixed: served.
  fx.write('package.json', pkg({ version: '1.0.2' }));
  fx.write('content.txt', 'v3');
  const fixed = fx.commitAndPush('fixed');
  assert.equal((await r.sync()).reply.installing, fixed);
  await r.waitForBody('v3', START_MS);
  assert.deepEqual((await r.sync()).reply, { ok: true, revision: fixed });
});

test('a stuck first install exits 6 with one line', { timeout: 120_000 }, async (t) => {
  const fx = new Fixture(t, 'timeout');
  fx.write('package.json', pkg({ scripts: { dev: 'node server.js', preinstall: SLOW_PREINSTALL(60_000) } }));
  fx.commitAndPush('slow');
  const r = await fx.runner({ INSTALL_TIMEOUT: '1s' });
  const started = Date.now();
  assert.deepEqual(await r.waitExit(60_000), { code: 6, signal: null });
  assert.ok(Date.now() - started < 30_000);
  const runnerLines = r.stderrLines().filter((l) => l.startsWith('runner:'));
  assert.deepEqual(runnerLines, ['runner: install timed out after 1s (INSTALL_TIMEOUT)'], r.logs());
  assert.equal(r.stderrLines().at(-1), runnerLines[0]);
});

test('no dev/start script exits 4 before installing', { timeout: 120_000 }, async (t) => {
  const fx = new Fixture(t, 'noscript');
  fx.write('package.json', JSON.stringify({ name: 'app', version: '1.0.0', scripts: { build: 'true' } }));
  fx.commitAndPush('no dev');
  const r = await fx.runner();
  assert.deepEqual(await r.waitExit(60_000), { code: 4, signal: null });
  assert.deepEqual(r.stderrLines(), ['runner: package.json has neither a "dev" nor a "start" script'], r.logs());
  assert.equal(r.count('installing dependencies'), 0, r.logs());
});

test('clone failures exit 3 with one line', { timeout: 120_000 }, async (t) => {
  const fx = new Fixture(t, 'clone');
  const cases = [
    [{ REPO_BRANCH: 'nope' }, (l) => l === "runner: clone failed: branch 'nope' not found in https://github.com/o/r"],
    [{ REPO_URL: 'https://github.com/o/does-not-exist' }, (l) => l.startsWith('runner: clone failed: repository https://github.com/o/does-not-exist not reachable: ')],
  ];
  for (const [extra, check] of cases) {
    const r = await fx.runner(extra);
    assert.deepEqual(await r.waitExit(30_000), { code: 3, signal: null });
    const lines = r.stderrLines();
    assert.equal(lines.length, 1, r.logs());
    assert.ok(check(lines[0]), r.logs());
    assert.equal(fs.existsSync(path.join(fx.workdir, '.runner.sock')), false, 'socket removed on exit');
  }
});

test('a dev server that keeps dying at start exits 5', { timeout: 120_000 }, async (t) => {
  const fx = new Fixture(t, 'crash');
  fx.write('package.json', JSON.stringify({ name: 'app', version: '1.0.0', private: true, scripts: { dev: 'exit 7' } }));
  fx.commitAndPush('crash');
  const r = await fx.runner();
  assert.deepEqual(await r.waitExit(60_000), { code: 5, signal: null });
  assert.ok(r.stderrLines().at(-1).startsWith('runner: dev server keeps exiting at start (5 times in a row'), r.logs());
  assert.equal(r.count('starting dev server'), 5, r.logs());
});

test('GIT_TOKEN never reaches logs, .git or the dev server', { timeout: 180_000 }, async (t) => {
  const TOKEN = 'ghp_SECRETrunnerTestToken0123456789abcdef';
  const forms = [TOKEN, Buffer.from(`x-access-token:${TOKEN}`).toString('base64'), Buffer.from(TOKEN).toString('base64')];
  const fx = new Fixture(t, 'token');
  const r = await fx.runner({ GIT_TOKEN: TOKEN });
  await r.waitForBody('v1', START_MS);
  assert.equal((await r.get('/env/GIT_TOKEN')).body, 'undefined');
  // A dependency change copies .git into a second tree: still nothing there.
  fx.write('package.json', pkg({ version: '1.0.1' }));
  fx.write('content.txt', 'v2');
  fx.commitAndPush('v2');
  assert.equal((await r.sync()).code, 0);
  await r.waitForBody('v2', START_MS);
  const files = [];
  const walk = (d) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) files.push(p);
    }
  };
  walk(path.join(fx.workdir, 'repo', '.git'));
  assert.ok(files.some((f) => f.endsWith(`${path.sep}.git${path.sep}config`)));
  const haystacks = [['runner output', r.out + r.err], ...files.map((f) => [f, fs.readFileSync(f, 'latin1')])];
  for (const [name, text] of haystacks) {
    for (const f of forms) assert.ok(!text.includes(f), `token form leaked into ${name}`);
  }
});

test('invalid input exits 2 before anything is created', { timeout: 60_000 }, async (t) => {
  const fx = new Fixture(t, 'invalid');
  for (const [k, v] of [
    ['REPO_BRANCH', 'main\u202e'],
    ['REPO_BRANCH', 'main;touch${IFS}PWNED'],
    ['REPO_URL', 'https://github.com/o/r?x=1'],
    ['INSTALL_TIMEOUT', '5h'],
  ]) {
    const r = await fx.runner({ [k]: v });
    assert.deepEqual(await r.waitExit(20_000), { code: 2, signal: null });
    const lines = r.stderrLines();
    assert.equal(lines.length, 1, r.logs());
    assert.ok(lines[0].startsWith(`runner: invalid ${k}: `), lines[0]);
    assert.equal(fs.existsSync(fx.workdir), false);
  }
});

test('Vite dev server behind the front proxy answers every Host (RUNNER_E2E_VITE=1, uses the npm registry)', {
  timeout: 600_000,
  skip: process.env.RUNNER_E2E_VITE !== '1' && 'set RUNNER_E2E_VITE=1',
}, async (t) => {
  const fx = new Fixture(t, 'vite');
  fx.write('package.json', JSON.stringify({ name: 'app', private: true, scripts: { dev: 'vite' }, devDependencies: { vite: '^6.0.9' } }));
  fx.write('index.html', '<!doctype html><title>vite</title><p>hello from vite</p>\n');
  fx.commitAndPush('vite app');
  const r = await fx.runner({ FLY_APP_NAME: 'preview-abc', npm_config_prefer_offline: 'false' });
  await until('vite answering', async () => (await r.get('/', 'localhost'))?.status === 200, 300_000, r.logs);
  const status = async (host) => (await r.get('/', host))?.status;
  assert.equal(await status('localhost'), 200);
  assert.equal(await status(`localhost:${r.port}`), 200);
  assert.equal(await status(`127.0.0.1:${r.port}`), 200);
  assert.equal(await status('[::1]'), 200);
  assert.equal(await status('preview-abc.fly.dev'), 200);
  // The front proxy presents every request to Vite as same-origin (Host: localhost:DEV_PORT).
  assert.equal(await status('other-app.fly.dev'), 200);
  assert.equal(await status('example.com'), 200);
  assert.ok(!r.out.includes('\u001b'), 'ANSI stripped from Vite output');
});

// Control socket protocol, the `sync` subcommand's exit codes, coalescing of sync requests and
// suspend/resume detection (no git, no network).

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';

import { parseSyncArgs, request, startControlServer, stopControlServer, syncCommand } from '../lib/control.mjs';
import { createLogger } from '../lib/log.mjs';
import { Syncer, makeJumpDetector } from '../lib/sync.mjs';

const ENTRYPOINT = fileURLToPath(new URL('../entrypoint.mjs', import.meta.url));
const SHA = 'a'.repeat(40);

function tmpdir(t) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctl-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function quietCtx(extra = {}) {
  const lines = [];
  const sink = { write: (s) => lines.push(s) };
  const ctx = { stdout: sink, stderr: sink, redact: (s) => s, shuttingDown: false, lines, ...extra };
  ctx.log = createLogger(ctx);
  return ctx;
}

function captureStdout() {
  const chunks = [];
  return { write: (s) => chunks.push(s), text: () => chunks.join('') };
}

test('sync arguments', () => {
  assert.deepEqual(parseSyncArgs([]), { timeoutMs: 10_000 });
  assert.deepEqual(parseSyncArgs(['--timeout', '2s']), { timeoutMs: 2000 });
  assert.deepEqual(parseSyncArgs(['--timeout=500ms']), { timeoutMs: 500 });
  for (const bad of [['--timeout'], ['--timeout', 'soon'], ['--wait'], ['now']]) {
    assert.throws(() => parseSyncArgs(bad), { name: 'Error' }, bad.join(' '));
  }
});

test('sync: no runner listening → exit 3 with one JSON line', async (t) => {
  const dir = tmpdir(t);
  const stdout = captureStdout();
  const code = await syncCommand({ args: [], env: { WORKDIR: dir }, stdout });
  assert.equal(code, 3);
  const reply = JSON.parse(stdout.text());
  assert.equal(reply.ok, false);
  assert.equal(reply.error, 'not_running');
  assert.ok(reply.message.includes(path.join(dir, '.runner.sock')));
  assert.equal(stdout.text().split('\n').length, 2);

  // The real CLI, same answer; usage errors exit 2.
  const cli = spawnSync(process.execPath, [ENTRYPOINT, 'sync', '--timeout', '1s'], { env: { WORKDIR: dir }, encoding: 'utf8' });
  assert.equal(cli.status, 3, cli.stderr);
  assert.equal(JSON.parse(cli.stdout).error, 'not_running');
  const usage = spawnSync(process.execPath, [ENTRYPOINT, 'sync', '--bogus'], { env: { WORKDIR: dir }, encoding: 'utf8' });
  assert.equal(usage.status, 2);
  assert.equal(JSON.parse(usage.stdout).error, 'usage');
  const unknown = spawnSync(process.execPath, [ENTRYPOINT, 'frobnicate'], { env: {}, encoding: 'utf8' });
  assert.equal(unknown.status, 2);
  assert.match(unknown.stderr, /^runner: unknown command "frobnicate"/);
});

test('control server: sync replies, bad requests, timeouts, socket cleanup', async (t) => {
  const dir = tmpdir(t);
  const sock = path.join(dir, 'c.sock');
  fs.writeFileSync(sock, 'stale'); // a leftover file is replaced
  let calls = 0;
  let hang = false;
  const ctx = quietCtx();
  const server = await startControlServer(ctx, sock, async (req) => {
    calls += 1;
    if (hang) return new Promise(() => {});
    if (req.op === 'status') return { ok: true, revision: SHA };
    return calls % 2 === 1 ? { ok: true, revision: SHA } : { ok: false, error: 'fetch_failed', message: 'boom', revision: SHA };
  });
  assert.ok(server);
  t.after(() => stopControlServer(server, sock));
  assert.equal(fs.statSync(sock).mode & 0o777, 0o600);

  let stdout = captureStdout();
  assert.equal(await syncCommand({ args: [], env: { RUNNER_CONTROL_SOCKET: sock }, stdout }), 0);
  assert.deepEqual(JSON.parse(stdout.text()), { ok: true, revision: SHA });
  stdout = captureStdout();
  assert.equal(await syncCommand({ args: [], env: { RUNNER_CONTROL_SOCKET: sock }, stdout }), 1);
  assert.deepEqual(JSON.parse(stdout.text()), { ok: false, error: 'fetch_failed', message: 'boom', revision: SHA });
  assert.deepEqual((await request(sock, { op: 'status' }, 1000)).reply, { ok: true, revision: SHA });
  assert.equal((await request(sock, { op: 'reboot' }, 1000)).reply.error, 'bad_request');

  const raw = await new Promise((resolve) => {
    const c = net.createConnection(sock, () => c.write('not json\n'));
    let b = '';
    c.on('data', (d) => {
      b += d;
    });
    c.on('close', () => resolve(b));
  });
  assert.equal(JSON.parse(raw).error, 'bad_request');

  hang = true;
  stdout = captureStdout();
  const started = Date.now();
  assert.equal(await syncCommand({ args: ['--timeout', '300ms'], env: { RUNNER_CONTROL_SOCKET: sock }, stdout }), 1);
  assert.deepEqual(JSON.parse(stdout.text()), { ok: false, error: 'timeout', message: 'no answer within 300ms' });
  assert.ok(Date.now() - started < 3000);

  stopControlServer(server, sock);
  assert.equal(fs.existsSync(sock), false);
});

test('concurrent sync requests coalesce into one fetch', async () => {
  let fetches = 0;
  const ctx = quietCtx({
    cfg: { branch: 'main', workdir: '/nonexistent', port: 3000, syncIntervalMs: 60_000 },
    procs: {
      capture: async (argv) => {
        if (argv[1] === 'fetch') {
          fetches += 1;
          await new Promise((r) => setTimeout(r, 100));
          return { code: 0, stdout: '', stderr: '' };
        }
        if (argv[1] === 'rev-parse') return { code: 0, stdout: `${SHA}\n`, stderr: '' };
        throw new Error(`unexpected git ${argv.join(' ')}`);
      },
    },
  });
  const dev = { running: true, resetFailures() {} };
  const syncer = new Syncer(ctx, { dir: '/nonexistent/trees/1', sha: SHA, dev });

  const first = await Promise.all([1, 2, 3, 4, 5].map(() => syncer.requestSync()));
  assert.equal(fetches, 1);
  for (const r of first) assert.deepEqual(r, { ok: true, revision: SHA });

  // Requests made while a fetch runs share the single fetch queued behind it (a fetch that
  // started before a request might miss the commit the request is about).
  fetches = 0;
  const running = syncer.requestSync();
  await new Promise((r) => setTimeout(r, 20));
  const during = [1, 2, 3].map(() => syncer.requestSync());
  await Promise.all([running, ...during]);
  assert.equal(fetches, 2);
});

test('a wall-clock jump (suspend / resume) is detected, normal ticks are not', () => {
  let now = 1_000_000;
  const check = makeJumpDetector(5_000, () => now);
  now += 1_000;
  assert.equal(check(), 0);
  now += 4_900;
  assert.equal(check(), 0);
  now += 42_000;
  assert.equal(check(), 42_000);
  now += 1_000;
  assert.equal(check(), 0);
});

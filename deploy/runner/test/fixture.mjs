// The end-to-end fixture shared by e2e.test.mjs and supervision.test.mjs: a local git remote
// reached through a test-only global git config (url.<file://...>.insteadOf =
// https://github.com/), a small node app, and the real runner as a child process.

import assert from 'node:assert/strict';
import { execFile, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ENTRYPOINT = fileURLToPath(new URL('../entrypoint.mjs', import.meta.url));
export const START_MS = 90_000;
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export const SERVER_JS = `const http = require('http');
const fs = require('fs');
const path = require('path');
// Test-only watchdog: exit when the test's temp dir is gone, so nothing outlives a test.
setInterval(() => { if (!fs.existsSync(process.env.TEST_SENTINEL)) process.exit(0); }, 500);
http.createServer((req, res) => {
  if (req.url.startsWith('/env/')) { res.end(String(process.env[req.url.slice(5)])); return; }
  res.end(fs.readFileSync(path.join(__dirname, 'content.txt'), 'utf8').trim());
}).listen(Number(process.env.PORT), process.env.HOST, () => {
  console.log('\\u001b[32m  ready\\u001b[39m on \\u001b[1m' + process.env.PORT + '\\u001b[22m');
});
`;

export const SERVER_JS_WITH_DEP = `const http = require('http');
const fs = require('fs');
const dep = require('dep');
setInterval(() => { if (!fs.existsSync(process.env.TEST_SENTINEL)) process.exit(0); }, 500);
http.createServer((req, res) => res.end(dep)).listen(Number(process.env.PORT), process.env.HOST);
`;

export const pkg = (extra = {}) =>
  JSON.stringify({ name: 'app', version: '1.0.0', private: true, scripts: { dev: 'node server.js' }, ...extra }, null, 2);
export const SLOW_PREINSTALL = (ms) => `node -e "setTimeout(() => {}, ${ms})"`;

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** GET http://<address>:port/path with a Host header: { status, body, headers } or null. */
export function get(port, urlPath = '/', host = 'localhost', address = '127.0.0.1') {
  return new Promise((resolve) => {
    const req = http.get({ host: address, port, path: urlPath, headers: { Host: host }, agent: false, timeout: 2000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => {
        body += d;
      });
      res.on('end', () => resolve({ status: res.statusCode, body, headers: res.headers }));
      res.on('error', () => resolve(null));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(null));
  });
}

export async function until(what, fn, timeoutMs, logs = () => '') {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}\n${logs()}`);
    await sleep(25);
  }
}

export class Fixture {
  constructor(t, tag) {
    this.root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), `runner-e2e-${tag}-`)));
    this.runners = [];
    t.after(async () => {
      for (const r of this.runners) await r.stop();
      fs.rmSync(this.root, { recursive: true, force: true });
    });
    for (const d of ['home', 'remotes/o', 'npm-cache', 'work']) fs.mkdirSync(this.path(d), { recursive: true });
    fs.writeFileSync(this.path('sentinel'), '');
    fs.writeFileSync(
      this.path('gitconfig'),
      `[url "file://${this.path('remotes')}/"]\n\tinsteadOf = https://github.com/\n` +
        '[user]\n\tname = Runner Test\n\temail = runner@test.invalid\n[init]\n\tdefaultBranch = main\n',
    );
    this.git(this.root, ['init', '-q', '--bare', '-b', 'main', 'remotes/o/r']);
    this.git(this.work, ['init', '-q', '-b', 'main']);
    this.git(this.work, ['remote', 'add', 'origin', 'https://github.com/o/r']);
    this.write('package.json', pkg());
    this.write('server.js', SERVER_JS);
    this.write('content.txt', 'v1');
    this.v1 = this.commitAndPush('v1');
  }

  path(rel) {
    return path.join(this.root, rel);
  }

  get work() {
    return this.path('work');
  }

  get workdir() {
    return this.path('workdir');
  }

  baseEnv() {
    return {
      PATH: process.env.PATH,
      HOME: this.path('home'),
      GIT_CONFIG_GLOBAL: this.path('gitconfig'),
      GIT_CONFIG_NOSYSTEM: '1',
      npm_config_cache: this.path('npm-cache'),
      npm_config_prefer_offline: 'true',
      npm_config_update_notifier: 'false',
      TEST_SENTINEL: this.path('sentinel'),
      ...(process.env.LANG ? { LANG: process.env.LANG } : {}),
    };
  }

  git(cwd, args) {
    const r = spawnSync('git', args, { cwd, env: this.baseEnv(), encoding: 'utf8' });
    assert.equal(r.status, 0, `git ${args.join(' ')}: ${r.stderr}`);
    return r.stdout.trim();
  }

  write(rel, content) {
    const file = path.join(this.work, rel);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, content);
  }

  /** Commit everything and push to main; returns the full sha. */
  commitAndPush(msg) {
    this.git(this.work, ['add', '-A']);
    this.git(this.work, ['commit', '-q', '-m', msg]);
    this.git(this.work, ['push', '-q', '--force', 'origin', 'HEAD:main']);
    return this.git(this.work, ['rev-parse', 'HEAD']);
  }

  async runner(extra = {}) {
    const port = await freePort();
    // The dev server's port from the OS too: PORT + 1 (the runner's default) may be another
    // test file's PORT (node --test runs the files in parallel), and the dev server then
    // crash-loops on EADDRINUSE.
    let devPort = await freePort();
    while (devPort === port) devPort = await freePort();
    const env = {
      ...this.baseEnv(),
      WORKDIR: this.workdir,
      REPO_URL: 'https://github.com/o/r',
      REPO_BRANCH: 'main',
      PORT: String(port),
      DEV_PORT: String(devPort),
      SYNC_INTERVAL: '60m',
      FAILURE_LINGER: '0s',
      ...extra,
    };
    if (env.DEV_PORT === null) delete env.DEV_PORT; // the runner's default, PORT + 1
    const r = new Runner(this, env, port);
    this.runners.push(r);
    return r;
  }
}

export class Runner {
  constructor(fx, env, port) {
    this.fx = fx;
    this.env = env;
    this.port = port;
    this.devPort = env.DEV_PORT ? Number(env.DEV_PORT) : port + 1;
    this.out = '';
    this.err = '';
    this.child = spawn(process.execPath, [ENTRYPOINT], { cwd: fx.root, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stdout.setEncoding('utf8').on('data', (d) => {
      this.out += d;
    });
    this.child.stderr.setEncoding('utf8').on('data', (d) => {
      this.err += d;
    });
    this.exited = new Promise((resolve) => this.child.once('exit', (code, signal) => resolve({ code, signal })));
  }

  logs = () => `--- stdout ---\n${this.out}--- stderr ---\n${this.err}`;

  get running() {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  stderrLines() {
    return this.err.split('\n').filter((l) => l.trim() !== '');
  }

  count(s) {
    return this.out.split(s).length - 1;
  }

  get(urlPath, host, address) {
    return get(this.port, urlPath, host, address);
  }

  /** The preview's state: the JSON of GET /__preview/status (null when nothing answers). */
  async state() {
    return JSON.parse((await this.get('/__preview/status'))?.body ?? 'null');
  }

  async waitForBody(want, timeoutMs = 30_000) {
    return until(
      `body ${JSON.stringify(want)}`,
      async () => {
        if (!this.running) assert.fail(`runner exited while waiting for ${want}\n${this.logs()}`);
        const r = await this.get('/');
        return r?.body === want;
      },
      timeoutMs,
      this.logs,
    );
  }

  waitForLog(text, timeoutMs = 30_000) {
    return until(`log ${JSON.stringify(text)}`, () => this.out.includes(text), timeoutMs, this.logs);
  }

  async waitExit(timeoutMs = 30_000) {
    const r = await Promise.race([this.exited, sleep(timeoutMs).then(() => null)]);
    if (r === null) assert.fail(`runner still running after ${timeoutMs}ms\n${this.logs()}`);
    await sleep(50);
    return r;
  }

  /**
   * `node entrypoint.mjs sync ...` (or `command`) in the runner's environment:
   * { code, reply, dev, stdout } where reply is the JSON without its `dev` object.
   */
  sync(args = [], command = 'sync') {
    return new Promise((resolve) => {
      execFile(process.execPath, [ENTRYPOINT, command, ...args], { env: this.env, encoding: 'utf8' }, (err, stdout) => {
        const code = err ? err.code : 0;
        let reply = null;
        let dev;
        try {
          ({ dev, ...reply } = JSON.parse(stdout));
        } catch {
          // asserted by the caller
        }
        resolve({ code, reply, dev, stdout });
      });
    });
  }

  async stop() {
    if (!this.running) return;
    try {
      process.kill(this.child.pid, 'SIGTERM');
    } catch {
      return;
    }
    const r = await Promise.race([this.exited, sleep(10_000).then(() => null)]);
    if (r === null) {
      try {
        process.kill(-this.child.pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
  }
}


export const short = (sha) => sha.slice(0, 12);

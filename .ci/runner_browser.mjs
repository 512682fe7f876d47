#!/usr/bin/env node
// Hot reload in a real browser, for .ci/runner_frameworks.py: Debian's Chromium (headless,
// driven over the DevTools protocol with Node 22's global WebSocket) opens the preview URL
// through the TLS stand-in for Fly's proxy, marks `window`, then a change is pushed and synced
// (the commands come from the config), and the open tab is polled until it shows the new text.
// The mark must survive: the tab updated in place, it did not reload.
//
//   node .ci/runner_browser.mjs '<json config>'
//   config: { chromium, url, resolverRules, userDataDir, expect, edit: { file, from, to },
//             push: [argv...], sync: [argv...], timeoutMs }
// Prints one JSON line: { ok, firstPaintMs, updateMs, syncMs, markSurvived, error? }.

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function launch(cfg) {
  fs.mkdirSync(cfg.userDataDir, { recursive: true });
  const args = [
    '--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--disable-default-apps', '--disable-extensions', '--ignore-certificate-errors',
    `--host-resolver-rules=${cfg.resolverRules}`, `--user-data-dir=${cfg.userDataDir}`,
    '--remote-debugging-port=0', 'about:blank',
  ];
  const proc = spawn(cfg.chromium, args, { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  let stderr = '';
  proc.stderr.on('data', (d) => {
    stderr += d;
  });
  const portFile = path.join(cfg.userDataDir, 'DevToolsActivePort');
  for (let i = 0; i < 300 && !fs.existsSync(portFile); i += 1) await sleep(100);
  if (!fs.existsSync(portFile)) throw new Error(`chromium did not start: ${stderr.slice(-500)}`);
  const port = Number(fs.readFileSync(portFile, 'utf8').split('\n')[0]);
  return { proc, port };
}

class Cdp {
  constructor(url) {
    this.ws = new WebSocket(url);
    this.id = 0;
    this.pending = new Map();
    this.ws.onmessage = (ev) => {
      const msg = JSON.parse(ev.data);
      const p = this.pending.get(msg.id);
      if (p) {
        this.pending.delete(msg.id);
        if (msg.error) p.reject(new Error(msg.error.message));
        else p.resolve(msg.result);
      }
    };
  }

  open() {
    return new Promise((resolve, reject) => {
      this.ws.onopen = resolve;
      this.ws.onerror = () => reject(new Error('DevTools WebSocket failed'));
    });
  }

  send(method, params = {}) {
    const id = ++this.id;
    this.ws.send(JSON.stringify({ id, method, params }));
    return new Promise((resolve, reject) => this.pending.set(id, { resolve, reject }));
  }

  async eval(expression) {
    const r = await this.send('Runtime.evaluate', { expression, returnByValue: true });
    return r.result?.value;
  }
}

async function until(fn, timeoutMs, stepMs = 20) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const v = await fn().catch(() => null);
    if (v) return v;
    await sleep(stepMs);
  }
  return null;
}

function runArgv(argv) {
  const r = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${argv.slice(0, 3).join(' ')} exited ${r.status}: ${r.stderr?.slice(-300)}`);
  return r.stdout;
}

async function main() {
  const cfg = JSON.parse(process.argv[2]);
  const { proc, port } = await launch(cfg);
  process.on('SIGTERM', () => {
    try {
      process.kill(-proc.pid, 'SIGKILL');
    } finally {
      process.exit(143);
    }
  });
  const out = { ok: false };
  try {
    const pages = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json();
    const page = pages.find((p) => p.type === 'page');
    const cdp = new Cdp(page.webSocketDebuggerUrl);
    await cdp.open();
    await cdp.send('Page.enable');
    await cdp.send('Runtime.enable');
    const t0 = Date.now();
    await cdp.send('Page.navigate', { url: cfg.url });
    const text = 'document.body ? document.body.innerText : ""';
    const painted = await until(async () => (await cdp.eval(text)).includes(cfg.expect), cfg.timeoutMs, 100);
    if (!painted) throw new Error(`the page never showed ${JSON.stringify(cfg.expect)}: ${String(await cdp.eval(text)).slice(0, 300)}`);
    out.firstPaintMs = Date.now() - t0;
    await sleep(1500); // let the HMR client connect
    await cdp.eval('window.__previewMark = "kept"; true');
    const file = cfg.edit.file;
    const src = fs.readFileSync(file, 'utf8');
    if (!src.includes(cfg.edit.from)) throw new Error(`${file} does not contain ${cfg.edit.from}`);
    fs.writeFileSync(file, src.replace(cfg.edit.from, cfg.edit.to));
    runArgv(cfg.push);
    const t1 = Date.now();
    const sync = spawn(cfg.sync[0], cfg.sync.slice(1), { stdio: ['ignore', 'pipe', 'inherit'] });
    let syncOut = '';
    sync.stdout.on('data', (d) => {
      syncOut += d;
    });
    const synced = new Promise((r) => sync.on('exit', (code) => r({ code, ms: Date.now() - t1 })));
    const updated = await until(async () => (await cdp.eval(text)).includes(cfg.expectAfter), cfg.updateTimeoutMs ?? 60_000);
    out.updateMs = updated ? Date.now() - t1 : null;
    const s = await synced;
    out.syncMs = s.ms;
    out.syncReply = syncOut.trim();
    out.markSurvived = (await cdp.eval('window.__previewMark')) === 'kept';
    out.ok = Boolean(updated) && out.markSurvived && s.code === 0;
    if (!updated) out.error = `the tab never showed ${JSON.stringify(cfg.expectAfter)}`;
    else if (!out.markSurvived) out.error = 'the tab reloaded (the window mark is gone)';
  } catch (e) {
    out.error = String(e.message ?? e);
  } finally {
    try {
      process.kill(-proc.pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  process.stdout.write(`${JSON.stringify(out)}\n`);
  process.exitCode = out.ok ? 0 : 1;
}

main();

// Control channel inside the machine: the runner listens on a Unix socket
// (RUNNER_CONTROL_SOCKET, default $WORKDIR/.runner.sock); `node entrypoint.mjs sync` connects,
// sends one JSON line and prints the one JSON line it gets back.
//
// Protocol (newline-delimited JSON, one request and one reply per connection):
//   → {"op":"sync"}    fetch now, apply the result, reply when done
//   → {"op":"status"}  reply with what is served (once the preview served)
//   → {"op":"state"}   reply at once with the preview's state (as GET /__preview/status)
//   ← {"ok":true,"revision":"<full sha served>"[,"installing":"<full sha>"],"dev":{<state>}}
//   ← {"ok":false,"error":"<tag>","message":"<one line>"[,"revision":"<full sha served>"][,"dev":{<state>}]}
//   ← {"phase","since","message","lines","restarts","revision"}               (op state)

import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

import { InputError, controlSocketPath, formatDuration, parseDuration } from './config.mjs';
import { SYNC_FAILED, SYNC_OK, SYNC_UNREACHABLE, SYNC_USAGE } from './exitcodes.mjs';

const MAX_REQUEST_BYTES = 4096;
const IDLE_MS = 10 * 60_000;

/**
 * Listen on `socketPath`; `handle(request)` resolves to the reply object. Resolves to the
 * net.Server, or null (logged) when the socket cannot be created; the runner works without it.
 */
export function startControlServer(ctx, socketPath, handle) {
  return new Promise((resolve) => {
    try {
      fs.mkdirSync(path.dirname(socketPath), { recursive: true });
      fs.rmSync(socketPath, { force: true }); // stale socket of an earlier run
    } catch (e) {
      ctx.log.runner(`control socket unavailable (${e.code ?? e.message}); "sync" will not work`);
      resolve(null);
      return;
    }
    const server = net.createServer((conn) => {
      conn.setEncoding('utf8');
      conn.setTimeout(IDLE_MS, () => conn.destroy());
      conn.on('error', () => {});
      let buf = '';
      let answered = false;
      const reply = (obj) => {
        if (answered) return;
        answered = true;
        if (!conn.destroyed) conn.end(`${JSON.stringify(obj)}\n`);
      };
      conn.on('data', (d) => {
        if (answered) return;
        buf += d;
        const nl = buf.indexOf('\n');
        if (nl === -1) {
          if (buf.length > MAX_REQUEST_BYTES) reply({ ok: false, error: 'bad_request', message: 'request too long' });
          return;
        }
        let req;
        try {
          req = JSON.parse(buf.slice(0, nl));
        } catch {
          reply({ ok: false, error: 'bad_request', message: 'request is not JSON' });
          return;
        }
        if (req === null || typeof req !== 'object' || !['sync', 'status', 'state'].includes(req.op)) {
          reply({ ok: false, error: 'bad_request', message: 'op must be "sync", "status" or "state"' });
          return;
        }
        Promise.resolve()
          .then(() => handle(req))
          .then(reply, (e) => reply({ ok: false, error: 'internal', message: String(e?.message ?? e) }));
      });
    });
    server.once('error', (e) => {
      ctx.log.runner(`control socket unavailable on ${socketPath} (${e.code ?? e.message}); "sync" will not work`);
      resolve(null);
    });
    server.listen(socketPath, () => {
      try {
        fs.chmodSync(socketPath, 0o600);
      } catch {
        // best effort
      }
      server.removeAllListeners('error');
      server.on('error', (e) => ctx.log.runner(`control socket error: ${e.code ?? e.message}`));
      resolve(server);
    });
  });
}

/** Close the control server and remove its socket file. */
export function stopControlServer(server, socketPath) {
  if (server) server.close();
  try {
    fs.rmSync(socketPath, { force: true });
  } catch {
    // best effort
  }
}

/** Parse `sync` arguments: [--timeout <duration>]. Returns { timeoutMs } or throws InputError. */
export function parseSyncArgs(args) {
  let timeout;
  for (let i = 0; i < args.length; i += 1) {
    const a = args[i];
    if (a === '--timeout') {
      if (i + 1 >= args.length) throw new InputError('--timeout', 'needs a value like 10s', 'usage');
      timeout = args[++i];
    } else if (a.startsWith('--timeout=')) {
      timeout = a.slice('--timeout='.length);
    } else {
      throw new InputError('argument', `unknown argument ${JSON.stringify(a.slice(0, 40))}; usage: sync [--timeout 10s]`, 'usage');
    }
  }
  return { timeoutMs: parseDuration(timeout, '--timeout', '10s') };
}

/**
 * Send one request to the runner: resolves to { exitCode, reply } where reply is the object to
 * print. Exit codes: 0 ok, 1 the sync failed or no answer in time, 3 no runner listening.
 */
export function request(socketPath, req, timeoutMs, isOk = (reply) => reply.ok === true) {
  return new Promise((resolve) => {
    let done = false;
    let connected = false;
    let buf = '';
    const finish = (exitCode, reply) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      conn.destroy();
      resolve({ exitCode, reply });
    };
    const conn = net.createConnection(socketPath);
    const timer = setTimeout(
      () => finish(SYNC_FAILED, { ok: false, error: 'timeout', message: `no answer within ${formatDuration(timeoutMs)}` }),
      timeoutMs,
    );
    conn.setEncoding('utf8');
    conn.on('connect', () => {
      connected = true;
      conn.write(`${JSON.stringify(req)}\n`);
    });
    conn.on('data', (d) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl === -1) return;
      let reply;
      try {
        reply = JSON.parse(buf.slice(0, nl));
      } catch {
        finish(SYNC_FAILED, { ok: false, error: 'bad_reply', message: 'the runner answered something that is not JSON' });
        return;
      }
      if (reply === null || typeof reply !== 'object') {
        finish(SYNC_FAILED, { ok: false, error: 'bad_reply', message: 'the runner answered something that is not an object' });
        return;
      }
      finish(isOk(reply) ? SYNC_OK : SYNC_FAILED, reply);
    });
    conn.on('error', (e) => {
      if (!connected) {
        finish(SYNC_UNREACHABLE, {
          ok: false,
          error: 'not_running',
          message: `no runner listening on ${socketPath} (${e.code ?? e.message})`,
        });
      } else {
        finish(SYNC_FAILED, { ok: false, error: 'connection_lost', message: `connection to the runner failed (${e.code ?? e.message})` });
      }
    });
    conn.on('close', () => {
      if (connected) {
        finish(SYNC_FAILED, { ok: false, error: 'connection_lost', message: 'the runner closed the connection without answering' });
      }
    });
  });
}

/**
 * The control socket and `--timeout` of a `sync` / `status` command, or null after printing
 * the usage error (bad arguments or environment).
 */
function commandTarget(args, env, print) {
  try {
    const { timeoutMs } = parseSyncArgs(args);
    return { socketPath: controlSocketPath(env), timeoutMs };
  } catch (e) {
    if (!(e instanceof InputError)) throw e;
    print({ ok: false, error: 'usage', message: e.message });
    return null;
  }
}

/** `node entrypoint.mjs sync [--timeout 10s]`: prints one JSON line on stdout, returns the exit code. */
export async function syncCommand({ args, env, stdout }) {
  const print = (obj) => stdout.write(`${JSON.stringify(obj)}\n`);
  const target = commandTarget(args, env, print);
  if (target === null) return SYNC_USAGE;
  const { exitCode, reply } = await request(target.socketPath, { op: 'sync' }, target.timeoutMs);
  print(reply);
  return exitCode;
}

/**
 * `node entrypoint.mjs status`: prints the preview's state (the JSON of GET /__preview/status)
 * on stdout; exit 0 when the phase is `serving`, 1 otherwise, 3 when no runner listens.
 */
export async function statusCommand({ args, env, stdout }) {
  const print = (obj) => stdout.write(`${JSON.stringify(obj)}\n`);
  const target = commandTarget(args, env, print);
  if (target === null) return SYNC_USAGE;
  const serving = (r) => r.phase === 'serving';
  const { exitCode, reply } = await request(target.socketPath, { op: 'state' }, target.timeoutMs, serving);
  print(reply);
  return exitCode;
}

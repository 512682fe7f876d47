// The runner's front server on 0.0.0.0:$PORT (what Fly's proxy connects to): the reserved
// `/__preview/*` paths, a self-refreshing status page while the dev server is not serving, and
// otherwise a reverse proxy (HTTP and WebSocket upgrades) to the dev server on DEV_PORT.
//
// Requests are presented to the dev server as same-origin: `Host` becomes `localhost:DEV_PORT`
// and an `Origin` / `Referer` of the preview's own host is rewritten to match, so every dev
// server's host check and HMR origin check (Vite's allowedHosts, Next's allowedDevOrigins,
// webpack-dev-server, Angular) accepts the preview origin without touching the user's files.
// `Location` headers pointing at the dev server's address are rewritten back.

import http from 'node:http';
import net from 'node:net';

export const RESERVED_PREFIX = '/__preview/';
const REFRESH_S = 2;

const escapeHtml = (s) =>
  String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);

const TITLES = {
  cloning: 'Cloning the repository',
  installing: 'Installing dependencies',
  starting: 'Starting the dev server',
  serving: 'Serving',
  restarting: 'Restarting the dev server',
  crashloop: 'The dev server keeps crashing',
  clone_failed: 'The repository could not be cloned',
  install_failed: 'The install failed',
  no_script: 'Nothing to run',
  invalid: 'The preview is misconfigured',
};

/** The status page: what is happening, the last lines, refreshing itself every 2 s. */
export function statusPage(snapshot) {
  const lines = snapshot.lines.length > 0 ? `<pre>${escapeHtml(snapshot.lines.join('\n'))}</pre>` : '';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="${REFRESH_S}">
<meta name="viewport" content="width=device-width,initial-scale=1"><title>Preview: ${escapeHtml(snapshot.phase)}</title>
<style>body{font:15px/1.5 system-ui,sans-serif;margin:2rem auto;max-width:52rem;padding:0 1rem;color:#222}
h1{font-size:1.2rem}pre{background:#111;color:#eee;padding:1rem;overflow:auto;font-size:12px;border-radius:6px}
small{color:#666}</style></head>
<body><h1>${escapeHtml(TITLES[snapshot.phase] ?? snapshot.phase)}</h1>
<p id="message">${escapeHtml(snapshot.message)}</p>${lines}
<small>phase <code>${escapeHtml(snapshot.phase)}</code> since ${escapeHtml(snapshot.since)}${
    snapshot.revision ? `, commit <code>${escapeHtml(snapshot.revision)}</code>` : ''
  }${snapshot.restarts > 0 ? `, ${snapshot.restarts} restart(s)` : ''}. This page refreshes itself and becomes your app as soon as its dev server answers.</small>
</body></html>
`;
}

function sendStatusPage(res, state, code = 503) {
  const body = statusPage(state.snapshot());
  res.writeHead(code, {
    'content-type': 'text/html; charset=utf-8',
    'cache-control': 'no-store',
    'retry-after': String(REFRESH_S),
    'content-length': Buffer.byteLength(body),
  });
  res.end(body);
}

/** Answer a reserved path; false when the path is not one. */
function reserved(req, res, state) {
  const p = req.url.split('?')[0];
  const send = (code, type, body) => {
    res.writeHead(code, { 'content-type': type, 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body) });
    res.end(req.method === 'HEAD' ? undefined : body);
  };
  if (p === `${RESERVED_PREFIX}health`) send(200, 'text/plain; charset=utf-8', 'ok\n');
  else if (p === `${RESERVED_PREFIX}ready`) send(state.serving ? 200 : 503, 'text/plain; charset=utf-8', `${state.readyBody()}\n`);
  else if (p === `${RESERVED_PREFIX}status`) send(200, 'application/json', `${JSON.stringify(state.snapshot())}\n`);
  else return false;
  return true;
}

/** Hop-by-hop headers: about one connection, never forwarded (each side frames its own). */
const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade'];

function withoutHopByHop(headers, keep = []) {
  const h = { ...headers };
  const named = String(h.connection ?? '')
    .split(',')
    .map((x) => x.trim().toLowerCase())
    .filter(Boolean);
  for (const k of [...HOP_BY_HOP, ...named]) if (!keep.includes(k)) delete h[k];
  return h;
}

/**
 * Request headers as the dev server should see them: same-origin on localhost:DEV_PORT.
 * `upgrade` keeps the Connection / Upgrade pair of a WebSocket handshake.
 */
export function presentSameOrigin(headers, devPort, upgrade = false) {
  const h = upgrade ? { ...headers } : withoutHopByHop(headers, ['transfer-encoding']);
  const publicHost = typeof h.host === 'string' ? h.host.toLowerCase() : null;
  const local = `localhost:${devPort}`;
  h.host = local;
  for (const k of ['origin', 'referer']) {
    if (typeof h[k] !== 'string' || publicHost === null) continue;
    try {
      const u = new URL(h[k]);
      if (u.host.toLowerCase() === publicHost) h[k] = k === 'origin' ? `http://${local}` : `http://${local}${u.pathname}${u.search}`;
    } catch {
      // not a URL: left as it is
    }
  }
  if (typeof h['x-forwarded-host'] === 'string' && h['x-forwarded-host'].toLowerCase() === publicHost) delete h['x-forwarded-host'];
  return h;
}

/** A `Location` pointing at the dev server's own address, made public again. */
export function publicLocation(location, devPort, publicHost, proto) {
  if (typeof location !== 'string' || !publicHost) return location;
  const m = /^https?:\/\/(?:localhost|127\.0\.0\.1|0\.0\.0\.0|\[::1?\])(?::(\d+))(?=[/?#]|$)/i.exec(location);
  if (!m || Number(m[1]) !== devPort) return location;
  return `${proto}://${publicHost}${location.slice(m[0].length)}`;
}

function forward(ctx, req, res) {
  const devPort = ctx.cfg.devPort;
  const publicHost = req.headers.host;
  const proto = String(req.headers['x-forwarded-proto'] ?? 'http').split(',')[0].trim() || 'http';
  const upstream = http.request(
    { host: ctx.devHost ?? '127.0.0.1', port: devPort, method: req.method, path: req.url, headers: presentSameOrigin(req.headers, devPort), agent: ctx.devAgent },
    (up) => {
      ctx.lastUpstreamAt = Date.now();
      const headers = withoutHopByHop(up.headers);
      if (headers.location) headers.location = publicLocation(headers.location, devPort, publicHost, proto);
      res.writeHead(up.statusCode ?? 502, up.statusMessage, headers);
      up.pipe(res);
    },
  );
  upstream.on('error', (e) => {
    if (!res.headersSent) {
      ctx.state.line('dev', `[runner] the dev server did not answer ${req.method} ${req.url.slice(0, 80)}: ${e.code ?? e.message}`);
      sendStatusPage(res, ctx.state, 502);
    } else res.destroy();
  });
  req.pipe(upstream);
  res.on('close', () => {
    if (!res.writableFinished) upstream.destroy();
  });
}

function forwardUpgrade(ctx, req, socket, head) {
  socket.on('error', () => {});
  ctx.upgraded.add(socket);
  socket.on('close', () => ctx.upgraded.delete(socket));
  if (!ctx.state.serving) {
    socket.end('HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
    return;
  }
  const devPort = ctx.cfg.devPort;
  const up = net.connect({ host: ctx.devHost ?? '127.0.0.1', port: devPort });
  up.on('error', () => socket.destroy());
  socket.on('close', () => up.destroy());
  up.on('close', () => socket.destroy());
  up.on('connect', () => {
    const headers = presentSameOrigin(req.headers, devPort, true);
    const lines = [`${req.method} ${req.url} HTTP/1.1`];
    for (const [k, v] of Object.entries(headers)) for (const one of [v].flat()) lines.push(`${k}: ${one}`);
    up.write(`${lines.join('\r\n')}\r\n\r\n`);
    if (head && head.length > 0) up.write(head);
    up.pipe(socket);
    socket.pipe(up);
  });
}

/**
 * Listen on 0.0.0.0:cfg.port. Resolves to the server, or rejects with the listen error
 * (EADDRINUSE ...).
 */
export function startFrontProxy(ctx) {
  ctx.devAgent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  ctx.upgraded = new Set();
  const server = http.createServer((req, res) => {
    req.on('error', () => {});
    res.on('error', () => {});
    if (reserved(req, res, ctx.state)) return;
    if (!ctx.state.serving) sendStatusPage(res, ctx.state);
    else forward(ctx, req, res);
  });
  server.on('upgrade', (req, socket, head) => forwardUpgrade(ctx, req, socket, head));
  server.on('clientError', (_e, socket) => socket.destroy());
  server.keepAliveTimeout = 65_000; // longer than the proxy in front of it keeps idle connections
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(ctx.cfg.port, '0.0.0.0', () => {
      server.removeListener('error', reject);
      resolve(server);
    });
  });
}

/** Stop accepting and drop open connections. */
export function stopFrontProxy(ctx) {
  if (!ctx.front) return;
  ctx.front.close();
  ctx.front.closeAllConnections?.();
  ctx.devAgent?.destroy();
  for (const s of ctx.upgraded ?? []) s.destroy();
}

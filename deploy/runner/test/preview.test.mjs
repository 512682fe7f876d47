// The preview's state, the front proxy (reserved paths, status page, same-origin forwarding,
// WebSocket upgrades), install failure causes, redaction and the new inputs.

import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { test } from 'node:test';

import { installFailureCause } from '../lib/causes.mjs';
import { InputError, parseDevPort, readConfig, validateRootDirectory } from '../lib/config.mjs';
import { makeRedactor } from '../lib/log.mjs';
import { candidates, nonLoopbackAddress } from '../lib/probe.mjs';
import { presentSameOrigin, publicLocation, startFrontProxy, statusPage, stopFrontProxy } from '../lib/proxy.mjs';
import { MAX_READY_BYTES, PreviewState } from '../lib/state.mjs';

test('state: phases, relevant lines, bounded ready body, snapshot', () => {
  const st = new PreviewState(makeRedactor('tok'), () => new Date('2026-01-02T03:04:05Z'));
  assert.equal(st.phase, 'cloning');
  st.line('git', 'fatal: https://x:tok@github.com/o/r not found');
  assert.deepEqual(st.lines(), ['fatal: https://[REDACTED]@github.com/o/r not found']);
  st.set('installing', 'installing dependencies');
  for (let i = 0; i < 30; i += 1) st.line('install', `line ${i} ${'x'.repeat(300)}`);
  assert.equal(st.lines().length, 20);
  assert.ok(st.lines().every((l) => l.length <= 200));
  assert.ok(st.lines()[0].startsWith('line 10 '));
  const body = st.readyBody();
  assert.ok(Buffer.byteLength(body) <= MAX_READY_BYTES, `${Buffer.byteLength(body)}`);
  assert.ok(body.startsWith('installing: installing dependencies\n'));
  assert.ok(body.endsWith('x…'), 'the last lines are the ones kept');
  st.line('dev', 'dev line');
  st.set('serving', 'the dev server answers');
  st.revision = '0123456789abcdef';
  assert.deepEqual(st.snapshot(), {
    phase: 'serving',
    since: '2026-01-02T03:04:05.000Z',
    message: 'the dev server answers',
    lines: ['dev line'],
    restarts: 0,
    revision: '0123456789ab',
  });
  assert.equal(st.terminal, false);
  st.set('crashloop', 'gave up');
  assert.equal(st.terminal, true);
  assert.throws(() => st.set('nope', 'x'));
});

test('status page escapes what it shows and refreshes itself', () => {
  const html = statusPage({ phase: 'install_failed', since: 'now', message: 'a <b> & "c"', lines: ['<script>x</script>'], restarts: 2, revision: 'abc' });
  assert.match(html, /<meta http-equiv="refresh" content="2">/);
  assert.ok(html.includes('a &lt;b&gt; &amp; &quot;c&quot;'));
  assert.ok(html.includes('&lt;script&gt;x&lt;/script&gt;'));
  assert.ok(!html.includes('<script>'));
  assert.ok(html.includes('The install failed'));
});

test('requests are presented as same-origin to the dev server; Location made public again', () => {
  const h = presentSameOrigin(
    { host: 'roseram-1.fly.dev', origin: 'https://roseram-1.fly.dev', referer: 'https://roseram-1.fly.dev/a?b=1', 'x-forwarded-host': 'roseram-1.fly.dev', 'x-forwarded-proto': 'https' },
    3001,
  );
  assert.equal(h.host, 'localhost:3001');
  assert.equal(h.origin, 'http://localhost:3001');
  assert.equal(h.referer, 'http://localhost:3001/a?b=1');
  assert.equal(h['x-forwarded-host'], undefined);
  assert.equal(h['x-forwarded-proto'], 'https');
  const other = presentSameOrigin({ host: 'roseram-1.fly.dev', origin: 'https://evil.example' }, 3001);
  assert.equal(other.origin, 'https://evil.example', 'a foreign origin is left for the dev server to judge');
  assert.equal(publicLocation('http://localhost:3001/login?x', 3001, 'roseram-1.fly.dev', 'https'), 'https://roseram-1.fly.dev/login?x');
  assert.equal(publicLocation('http://127.0.0.1:3001', 3001, 'a.fly.dev', 'https'), 'https://a.fly.dev');
  assert.equal(publicLocation('/relative', 3001, 'a.fly.dev', 'https'), '/relative');
  assert.equal(publicLocation('http://localhost:9999/x', 3001, 'a.fly.dev', 'https'), 'http://localhost:9999/x');
});

function listen(server) {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server.address().port)));
}

function request(port, path, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => {
        body += d;
      });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
    });
    req.on('error', reject);
  });
}

async function frontFixture(t) {
  const seen = [];
  const dev = http.createServer((req, res) => {
    seen.push(req.headers);
    if (req.url === '/redirect') {
      res.writeHead(302, { location: `http://localhost:${devPort}/there` });
      res.end();
      return;
    }
    res.end(`dev:${req.url}`);
  });
  dev.on('upgrade', (req, socket) => {
    seen.push(req.headers);
    socket.write('HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n');
    socket.on('data', (d) => socket.write(`echo:${d}`));
  });
  const devPort = await listen(dev);
  const ctx = { cfg: { port: 0, devPort }, state: new PreviewState(), devHost: '127.0.0.1' };
  ctx.front = await startFrontProxy(ctx);
  t.after(() => {
    stopFrontProxy(ctx);
    dev.closeAllConnections();
    dev.close();
  });
  return { ctx, seen, port: ctx.front.address().port, devPort };
}

test('front server: reserved paths, status page until serving, then the dev server', async (t) => {
  const { ctx, seen, port, devPort } = await frontFixture(t);
  ctx.state.set('installing', 'installing dependencies');
  ctx.state.line('install', 'npm error 404 GET https://u:secret@registry/x');
  assert.deepEqual(await request(port, '/__preview/health').then((r) => [r.status, r.body]), [200, 'ok\n']);
  const ready = await request(port, '/__preview/ready');
  assert.equal(ready.status, 503);
  assert.equal(ready.body, 'installing: installing dependencies\nnpm error 404 GET https://u:secret@registry/x\n');
  const status = JSON.parse((await request(port, '/__preview/status')).body);
  assert.equal(status.phase, 'installing');
  const page = await request(port, '/some/page');
  assert.equal(page.status, 503);
  assert.equal(page.headers['retry-after'], '2');
  assert.match(page.body, /Installing dependencies/);
  assert.equal(seen.length, 0, 'nothing reaches the dev server before it serves');

  ctx.state.set('serving', 'the dev server answers');
  assert.equal((await request(port, '/__preview/ready')).status, 200);
  const app = await request(port, '/app?x=1', { host: 'roseram-1.fly.dev', origin: 'https://roseram-1.fly.dev' });
  assert.deepEqual([app.status, app.body], [200, 'dev:/app?x=1']);
  assert.equal(seen.at(-1).host, `localhost:${devPort}`);
  assert.equal(seen.at(-1).origin, `http://localhost:${devPort}`);
  const moved = await request(port, '/redirect', { host: 'roseram-1.fly.dev', 'x-forwarded-proto': 'https' });
  assert.equal(moved.headers.location, 'https://roseram-1.fly.dev/there');
  assert.equal((await request(port, '/__preview/ready')).body, 'serving: the dev server answers\n', 'reserved paths are never proxied');
  // An HTTP/1.0 client reading to the end of the connection gets the body and the close.
  const raw = await new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => s.write('GET /old HTTP/1.0\r\nHost: localhost\r\n\r\n'));
    let got = '';
    s.on('data', (d) => {
      got += d;
    });
    s.on('end', () => resolve(got));
  });
  assert.match(raw, /^HTTP\/1\.1 200/);
  assert.ok(raw.endsWith('\r\n\r\ndev:/old'), raw);
  assert.ok(!/transfer-encoding/i.test(raw), raw);
});

test('front server: WebSocket upgrades are piped both ways with same-origin headers', async (t) => {
  const { ctx, seen, port, devPort } = await frontFixture(t);
  const refused = await rawUpgrade(port);
  assert.match(refused, /^HTTP\/1\.1 503/, 'no upgrade while not serving');
  ctx.state.set('serving', 'ok');
  const answer = await rawUpgrade(port, 'ping');
  assert.match(answer, /^HTTP\/1\.1 101/);
  assert.match(answer, /echo:ping$/);
  assert.equal(seen.at(-1).host, `localhost:${devPort}`);
  assert.equal(seen.at(-1).origin, `http://localhost:${devPort}`);
});

function rawUpgrade(port, send = null) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let got = '';
    s.on('connect', () =>
      s.write(
        'GET /_hmr HTTP/1.1\r\nHost: roseram-1.fly.dev\r\nOrigin: https://roseram-1.fly.dev\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n',
      ),
    );
    s.on('data', (d) => {
      got += d;
      if (send && got.includes('\r\n\r\n') && !got.includes('echo:')) s.write(send);
      if (!send || got.includes(`echo:${send}`)) {
        s.destroy();
        resolve(got);
      }
    });
    s.on('close', () => resolve(got));
  });
}

test('install failures name their cause', () => {
  const npm404 = [
    'npm error code E404',
    'npm error 404 Not Found - GET https://registry.npmjs.org/@acme%2fsecret-ui - Not found',
    "npm error 404  '@acme/secret-ui@^1.2.0' is not in this registry.",
  ];
  assert.match(installFailureCause(npm404), /^@acme\/secret-ui could not be downloaded from the registry \(404\): .*set NPM_TOKEN/);
  const pnpm401 = [' ERR_PNPM_FETCH_401  GET https://registry.npmjs.org/@acme%2Fsecret: Unauthorized - 401'];
  assert.match(installFailureCause(pnpm401, 'pnpm'), /^@acme\/secret could not be downloaded .*\(401\).*NPM_TOKEN/);
  assert.match(installFailureCause(['npm error code E401', 'npm error 401 Unauthorized - GET https://r/x']), /set NPM_TOKEN/);
  assert.match(installFailureCause(["npm error 404  'left-padd@^9' is not in this registry."]), /^left-padd is not in the registry/);
  // npm 11's wording
  assert.match(
    installFailureCause(["npm error 404  The requested resource 'left-padd@^9' could not be found or you do not have permission to access it."]),
    /^left-padd is not in the registry \(404\)/,
  );
  assert.match(
    installFailureCause(["npm error 404  The requested resource '@acme/ui@^1' could not be found or you do not have permission to access it."]),
    /^@acme\/ui could not be downloaded .*NPM_TOKEN/,
  );
  const stale = [
    'npm error code EUSAGE',
    'npm error `npm ci` can only install packages when your package.json and package-lock.json or npm-shrinkwrap.json are in sync. Please update your lock file with `npm install` before continuing.',
    'npm error Missing: ms@2.1.3 from lock file',
  ];
  assert.equal(installFailureCause(stale), 'package-lock.json is out of date with package.json: run `npm install` and commit package-lock.json');
  assert.equal(
    installFailureCause([' ERR_PNPM_OUTDATED_LOCKFILE  Cannot install with "frozen-lockfile"'], 'pnpm'),
    'pnpm-lock.yaml is out of date with package.json: run `pnpm install` and commit pnpm-lock.yaml',
  );
  for (const line of ['Error: Missing environment variable DATABASE_URL', 'process.env.STRIPE_KEY is undefined', 'SUPABASE_URL is not set']) {
    assert.match(installFailureCause(['> app@1.0.0 postinstall', line]), /needs the environment variable (DATABASE_URL|STRIPE_KEY|SUPABASE_URL)/, line);
  }
  assert.equal(installFailureCause(['npm error code 1', 'npm error command failed']), null);
});

test('redaction: tokens in URLs, Authorization headers, npm auth, secret values', () => {
  const r = makeRedactor('ghtok', ['npm_s3cr3t_value']);
  assert.equal(r('GET https://user:pass@registry.example/x'), 'GET https://[REDACTED]@registry.example/x');
  assert.equal(r('Authorization: Bearer abc.def'), 'Authorization: [REDACTED]');
  assert.equal(r('//registry.npmjs.org/:_authToken=abcdef'), '//registry.npmjs.org/:_authToken=[REDACTED]');
  assert.equal(r('token npm_s3cr3t_value and ghtok'), 'token [REDACTED] and [REDACTED]');
  assert.equal(r('ghp_0123456789abcdefghijABCDEFGHIJ'), '[REDACTED]');
  assert.equal(r('https://registry.npmjs.org/@acme%2fx'), 'https://registry.npmjs.org/@acme%2fx');
});

test('ROOT_DIRECTORY, DEV_PORT and FAILURE_LINGER inputs', () => {
  assert.equal(validateRootDirectory(undefined), null);
  assert.equal(validateRootDirectory('.'), null);
  assert.equal(validateRootDirectory('apps/web/'), 'apps/web');
  assert.equal(validateRootDirectory('./apps//web'), 'apps/web');
  for (const [bad, why] of [
    ['../x', 'double_dot'],
    ['apps/../../x', 'double_dot'],
    ['/abs', 'absolute'],
    ['apps\\web', 'backslash'],
    ['apps/we b', 'control_or_space'],
    ['apps/\u202eweb', 'format_char'],
    ['a'.repeat(256), 'too_long'],
  ]) {
    assert.throws(() => validateRootDirectory(bad), (e) => e instanceof InputError && e.why === why && e.variable === 'ROOT_DIRECTORY', bad);
  }
  assert.equal(parseDevPort(undefined, 3000), 3001);
  assert.equal(parseDevPort('4000', 3000), 4000);
  assert.throws(() => parseDevPort('3000', 3000), /must differ from PORT/);
  const base = { REPO_URL: 'https://github.com/o/r' };
  assert.equal(readConfig(base).failureLingerMs, 20_000);
  assert.equal(readConfig({ ...base, FAILURE_LINGER: '0s' }).failureLingerMs, 0);
  assert.equal(readConfig({ ...base, ROOT_DIRECTORY: 'apps/web' }).rootDirectory, 'apps/web');
  assert.throws(() => readConfig({ ...base, FAILURE_LINGER: '2h' }), /FAILURE_LINGER/);
});

test('probe candidates: the last answering address first, then loopbacks, then the non-loopback one', () => {
  assert.deepEqual(candidates(null, '10.0.0.2'), ['127.0.0.1', '::1', '10.0.0.2']);
  assert.deepEqual(candidates('::1', '10.0.0.2'), ['::1', '127.0.0.1', '10.0.0.2']);
  const ifs = { lo: [{ address: '127.0.0.1', family: 'IPv4', internal: true }], eth0: [{ address: 'fe80::1', family: 'IPv6', internal: false }, { address: 'fdaa::3', family: 'IPv6', internal: false }] };
  assert.equal(nonLoopbackAddress(ifs), 'fdaa::3');
});

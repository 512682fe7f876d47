// REPO_URL / REPO_BRANCH validation against the shared cases in testdata/repo-input-cases.json,
// and the other environment inputs.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import { test } from 'node:test';

import {
  FORMAT_CHAR_RANGES,
  INVISIBLE_RANGES,
  InputError,
  controlSocketPath,
  formatDuration,
  parseAllowedHosts,
  parseDuration,
  parsePort,
  readConfig,
  validateBranch,
  validateRepoUrl,
} from '../entrypoint.mjs';

const cases = JSON.parse(
  fs.readFileSync(new URL('../../../testdata/repo-input-cases.json', import.meta.url), 'utf8'),
);
const show = (v) => JSON.stringify(v).slice(0, 80);

function refusal(fn) {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof InputError, `not an InputError: ${e}`);
    return e;
  }
  return null;
}

test('shared cases file has the expected shape', () => {
  assert.deepEqual(cases.allowed_hosts, ['github.com']);
  for (const list of [cases.repo_url, cases.branch]) {
    assert.ok(list.length > 20);
    for (const c of list) {
      assert.equal(typeof c.value, 'string');
      assert.equal(typeof c.ok, 'boolean');
      if (!c.ok) assert.match(c.why, /^[a-z_]+$/, show(c));
      else assert.equal(c.why, undefined, show(c));
    }
  }
});

test('REPO_URL: every shared case', () => {
  for (const c of cases.repo_url) {
    const e = refusal(() => validateRepoUrl(c.value, cases.allowed_hosts));
    if (c.ok) {
      assert.equal(e, null, `${show(c.value)} must be accepted, got: ${e?.message}`);
    } else {
      assert.notEqual(e, null, `${show(c.value)} must be refused (${c.why})`);
      assert.equal(e.why, c.why, `${show(c.value)}: ${e.message}`);
      assert.equal(e.variable, 'REPO_URL');
      assert.ok(e.message.startsWith('invalid REPO_URL: '));
      // The value itself is never echoed (it could carry credentials).
      for (const secret of ['pass', 'ghp_inurl', 'PWNED']) {
        if (c.value.includes(secret)) assert.ok(!e.message.includes(secret), e.message);
      }
    }
  }
});

test('REPO_URL: scheme and host are case-insensitive and canonicalised', () => {
  const hosts = ['github.com'];
  assert.deepEqual(validateRepoUrl('https://github.com/o/r', hosts), {
    url: 'https://github.com/o/r',
    host: 'github.com',
    owner: 'o',
    repo: 'r',
  });
  assert.equal(validateRepoUrl('https://GitHub.com/My-Org/my.repo_1.git', hosts).url, 'https://github.com/My-Org/my.repo_1.git');
  assert.equal(validateRepoUrl('HTTPS://GITHUB.COM/o/r', hosts).url, 'https://github.com/o/r');
  assert.equal(validateRepoUrl('https://github.com/o/r.git', hosts).repo, 'r');
  assert.equal(validateRepoUrl('https://GitLab.com/o/r', parseAllowedHosts('github.com, GitLab.com')).host, 'gitlab.com');
  assert.equal(refusal(() => validateRepoUrl(undefined, hosts)).why, 'empty');
});

test('REPO_BRANCH: every shared case', () => {
  for (const c of cases.branch) {
    const e = refusal(() => validateBranch(c.value));
    if (c.ok) {
      assert.equal(e, null, `${show(c.value)} must be accepted, got: ${e?.message}`);
    } else {
      assert.notEqual(e, null, `${show(c.value)} must be refused (${c.why})`);
      assert.equal(e.why, c.why, `${show(c.value)}: ${e.message}`);
      assert.equal(e.variable, 'REPO_BRANCH');
    }
  }
  assert.equal(validateBranch(undefined), 'main');
});

test('REPO_BRANCH: every Unicode format character (Cf) and the whole tag block are refused', () => {
  const cf = /\p{Cf}/u;
  let checked = 0;
  for (let cp = 0x80; cp <= 0x10ffff; cp += 1) {
    if (cp >= 0xd800 && cp <= 0xdfff) continue;
    const ch = String.fromCodePoint(cp);
    const inTable = FORMAT_CHAR_RANGES.some(([a, b]) => cp >= a && cp <= b);
    if (cf.test(ch)) assert.ok(inTable, `U+${cp.toString(16)} is Cf but not in FORMAT_CHAR_RANGES`);
    if (inTable) {
      assert.equal(refusal(() => validateBranch(`a${ch}b`))?.why, 'format_char', `U+${cp.toString(16)}`);
      checked += 1;
    }
  }
  assert.ok(checked > 150);
  for (let cp = 0xe0000; cp <= 0xe007f; cp += 1) {
    assert.equal(refusal(() => validateBranch(`main${String.fromCodePoint(cp)}`))?.why, 'format_char');
  }
});

test('ALLOWED_HOSTS', () => {
  assert.deepEqual(parseAllowedHosts(undefined), ['github.com']);
  assert.deepEqual(parseAllowedHosts(' GitHub.com ,gitlab.com,'), ['github.com', 'gitlab.com']);
  for (const bad of ['', ' , ', 'github.com/x', 'a b', '-x.com', 'x_y.com']) {
    assert.throws(() => parseAllowedHosts(bad), InputError, bad);
  }
});

test('durations', () => {
  assert.equal(parseDuration('500ms', 'X', '5s'), 500);
  assert.equal(parseDuration('5s', 'X', '5s'), 5000);
  assert.equal(parseDuration('1m', 'X', '5s'), 60000);
  assert.equal(parseDuration('60m', 'X', '5s'), 3_600_000);
  assert.equal(parseDuration(undefined, 'X', '5s'), 5000);
  assert.equal(parseDuration('', 'X', '5m'), 300_000);
  for (const bad of ['5', 's', '1h', '-1s', '1.5s', '0ms', '99ms', '61m', ' 5s']) {
    assert.throws(() => parseDuration(bad, 'X', '5s'), InputError, bad);
  }
  assert.equal(formatDuration(300_000), '5m');
  assert.equal(formatDuration(90_000), '90s');
  assert.equal(formatDuration(1500), '1500ms');
});

test('PORT', () => {
  assert.equal(parsePort(undefined), 3000);
  assert.equal(parsePort('8080'), 8080);
  for (const bad of ['0', '65536', '80a', ' 80', 'http']) assert.throws(() => parsePort(bad), InputError, bad);
});

test('readConfig: defaults and every variable', () => {
  const cfg = readConfig({ REPO_URL: 'https://github.com/o/r' });
  assert.equal(cfg.url, 'https://github.com/o/r');
  assert.equal(cfg.branch, 'main');
  assert.equal(cfg.port, 3000);
  assert.equal(cfg.syncIntervalMs, 60_000);
  assert.equal(cfg.installTimeoutMs, 300_000);
  assert.equal(cfg.workdir, '/app');
  assert.equal(cfg.controlSocket, '/app/.runner.sock');
  assert.equal(cfg.token, null);

  const full = readConfig({
    REPO_URL: 'https://github.com/o/r',
    REPO_BRANCH: 'dev',
    PORT: '4000',
    SYNC_INTERVAL: '1s',
    INSTALL_TIMEOUT: '90s',
    WORKDIR: '/w',
    GIT_TOKEN: 'tok',
  });
  assert.equal(full.installTimeoutMs, 90_000);
  assert.equal(full.controlSocket, '/w/.runner.sock');
  assert.equal(full.token, 'tok');
  assert.equal(controlSocketPath({ WORKDIR: '/w', RUNNER_CONTROL_SOCKET: '/run/r.sock' }), '/run/r.sock');

  const invalid = [
    ['INSTALL_TIMEOUT', { INSTALL_TIMEOUT: '5x' }],
    ['SYNC_INTERVAL', { SYNC_INTERVAL: '2h' }],
    ['WORKDIR', { WORKDIR: 'relative' }],
    ['RUNNER_CONTROL_SOCKET', { RUNNER_CONTROL_SOCKET: 'x.sock' }],
    ['GIT_TOKEN', { GIT_TOKEN: 'a b' }],
  ];
  for (const [variable, extra] of invalid) {
    const e = refusal(() => readConfig({ REPO_URL: 'https://github.com/o/r', ...extra }));
    assert.equal(e?.variable, variable, JSON.stringify(extra));
  }
});

test('REPO_BRANCH: every invisible blank and variation selector is refused', () => {
  let checked = 0;
  for (const [a, b] of INVISIBLE_RANGES) {
    for (let cp = a; cp <= b; cp += 1) {
      assert.equal(refusal(() => validateBranch(`a${String.fromCodePoint(cp)}b`))?.why, 'invisible', `U+${cp.toString(16)}`);
      checked += 1;
    }
  }
  assert.ok(checked > 250);
});

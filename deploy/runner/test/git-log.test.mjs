// Token handling for git, redaction, and cleaning of child output lines.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { gitAuthEnv, makeRedactor, stripAnsi } from '../entrypoint.mjs';
import { gitEnvFor } from '../lib/git.mjs';
import { cleanLine, createLogger } from '../lib/log.mjs';

test('the token goes to git only as an http.<url>.extraheader through GIT_CONFIG_*', () => {
  assert.deepEqual(gitAuthEnv({}, 'github.com', 'tok'), {
    GIT_CONFIG_COUNT: '1',
    GIT_CONFIG_KEY_0: 'http.https://github.com/.extraheader',
    GIT_CONFIG_VALUE_0: `Authorization: Basic ${Buffer.from('x-access-token:tok').toString('base64')}`,
  });
  assert.equal(gitAuthEnv({ GIT_CONFIG_COUNT: '2' }, 'github.com', 'tok').GIT_CONFIG_KEY_2, 'http.https://github.com/.extraheader');
  assert.deepEqual(gitAuthEnv({}, 'github.com', null), {});
  const env = gitEnvFor({ GIT_TOKEN: 'tok', PATH: '/bin' }, 'github.com', 'tok');
  assert.equal(env.GIT_TOKEN, undefined);
  assert.equal(env.GIT_TERMINAL_PROMPT, '0');
  assert.equal(env.PATH, '/bin');
  assert.equal(env.GIT_CONFIG_COUNT, '1');
});

test('every form of the token is redacted', () => {
  const r = makeRedactor('tok');
  assert.equal(r(`x tok y ${Buffer.from('x-access-token:tok').toString('base64')}`), 'x [REDACTED] y [REDACTED]');
  assert.equal(r(Buffer.from('tok').toString('base64')), '[REDACTED]');
  assert.equal(makeRedactor(null)('tok'), 'tok');
  assert.equal(makeRedactor('a/b c')('x a%2Fb%20c'), 'x [REDACTED]');
});

test('ANSI escape sequences are stripped from child output', () => {
  assert.equal(stripAnsi('\u001b[32m✓\u001b[39m ready in \u001b[1m312\u001b[22m ms'), '✓ ready in 312 ms');
  assert.equal(stripAnsi('\u001b[2K\u001b[1G\u001b[?25lx\u001b[?25h'), 'x');
  assert.equal(stripAnsi('\u001b]8;;https://vite.dev\u0007link\u001b]8;;\u0007'), 'link');
  assert.equal(stripAnsi('\u001b]0;title\u001b\\text'), 'text');
  assert.equal(stripAnsi('\u009b31mred\u009b0m'), 'red');
  assert.equal(stripAnsi('\u001b(Bplain\u001b='), 'plain');
  assert.equal(stripAnsi('no escapes'), 'no escapes');
  assert.equal(cleanLine('progress 10%\rprogress 100%\r'), 'progress 100%');
  assert.equal(cleanLine('a\u0007b\u0000c\td  '), 'abc\td');
});

test('logger prefixes, cleans and redacts', () => {
  const out = [];
  const err = [];
  const ctx = {
    stdout: { write: (s) => out.push(s) },
    stderr: { write: (s) => err.push(s) },
    redact: makeRedactor('tok'),
  };
  const log = createLogger(ctx);
  log.runner('hello tok');
  log.git('serving 0123456789ab');
  log.child('[dev]', '\u001b[36m  VITE\u001b[39m ready tok');
  log.child('[dev]', '\u001b[0m   ');
  log.child('[install]', 'oops', true);
  log.fatal('clone failed');
  assert.deepEqual(out, ['[runner] hello [REDACTED]\n', '[git] serving 0123456789ab\n', '[dev]   VITE ready [REDACTED]\n']);
  assert.deepEqual(err, ['[install] oops\n', 'runner: clone failed\n']);
});

// INSTALL_TIMEOUT extended while the install makes progress (lib/install.mjs): the decision, the
// CPU of a process group read from a /proc laid out like Linux's, and the one-line reasons.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

import { MAX_EXTENSIONS, groupCpuSeconds, progressing, timeoutReason } from '../lib/install.mjs';

test('progress: at least 2 CPU-s and 1 % of the window', () => {
  const fiveMin = 300_000;
  assert.equal(progressing(0.1, fiveMin), false, 'a stuck install (waiting on the network)');
  assert.equal(progressing(2.9, fiveMin), false);
  assert.equal(progressing(3, fiveMin), true);
  assert.equal(progressing(18.75, fiveMin), true, 'npm ci at a shared vCPU baseline (6.25 %)');
  assert.equal(progressing(1.9, 2_000), false, 'npm starting up is not progress in a short window');
  assert.equal(progressing(40, 3_600_000), true);
  assert.equal(progressing(35, 3_600_000), false);
});

test('the CPU of one process group, with its reaped children', (t) => {
  const proc = fs.mkdtempSync(path.join(os.tmpdir(), 'runner-proc-'));
  t.after(() => fs.rmSync(proc, { recursive: true, force: true }));
  // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime cutime cstime
  const stat = (pid, comm, pgrp, u, s, cu, cs) => {
    fs.mkdirSync(path.join(proc, String(pid)));
    fs.writeFileSync(path.join(proc, String(pid), 'stat'), `${pid} (${comm}) S 1 ${pgrp} ${pgrp} 0 -1 0 0 0 0 0 ${u} ${s} ${cu} ${cs} 20 0 1 0\n`);
  };
  stat(100, 'npm ci', 100, 150, 50, 300, 100); // a comm with a space and a parenthesis-free name
  stat(101, 'node) (x', 100, 25, 25, 0, 0); // a comm that looks like the end of the field
  stat(200, 'other', 200, 9999, 0, 0, 0);
  fs.mkdirSync(path.join(proc, 'self'));
  assert.equal(groupCpuSeconds(100, proc), 6.5);
  assert.equal(groupCpuSeconds(300, proc), 0);
  assert.equal(groupCpuSeconds(100, path.join(proc, 'missing')), 0);
});

test('why an install was killed', () => {
  assert.equal(timeoutReason(300_000, 1), 'install timed out after 5m (INSTALL_TIMEOUT)');
  assert.equal(timeoutReason(300_000, 3), 'install timed out after 15m: no progress in the last 5m (INSTALL_TIMEOUT)');
  assert.equal(timeoutReason(300_000, MAX_EXTENSIONS + 1), 'install timed out after 30m (at most 6 × INSTALL_TIMEOUT)');
});

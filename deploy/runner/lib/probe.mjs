// HTTP probes of the dev server: which address answers (127.0.0.1, ::1, the machine's
// non-loopback address, as Fly's proxy would connect) and with what status.

import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';

/** The machine's first non-loopback address (IPv4 first, then non-link-local IPv6), or null. */
export function nonLoopbackAddress(interfaces = os.networkInterfaces()) {
  const all = Object.values(interfaces).flat().filter((a) => a && !a.internal);
  const v4 = all.find((a) => a.family === 'IPv4' || a.family === 4);
  if (v4) return v4.address;
  const v6 = all.find((a) => (a.family === 'IPv6' || a.family === 6) && !a.address.toLowerCase().startsWith('fe80'));
  return v6 ? v6.address : null;
}

/**
 * GET / on host:port (Host: localhost:port). Resolves to { status } as soon as the status line
 * and headers arrive, or { error } (a code like ECONNREFUSED, or `timeout`).
 */
export function probe(host, port, timeoutMs, path = '/') {
  return new Promise((resolve) => {
    let settled = false;
    const done = (r) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.destroy();
      resolve(r);
    };
    const req = http.get(
      { host, port, path, agent: false, headers: { host: `localhost:${port}`, accept: 'text/html,*/*', 'user-agent': 'preview-runner-probe' } },
      (res) => {
        res.resume();
        done({ status: res.statusCode });
      },
    );
    const timer = setTimeout(() => done({ error: 'timeout' }), timeoutMs);
    req.on('error', (e) => done({ error: e.code ?? e.message }));
  });
}

/** Addresses the dev server may listen on, the one that answered last first. */
export function candidates(preferred, nonLoopback = nonLoopbackAddress()) {
  const list = [preferred, '127.0.0.1', '::1', nonLoopback].filter((a) => a);
  return list.filter((a, i) => list.indexOf(a) === i);
}

/**
 * Probe the dev server on each candidate address until one answers HTTP. A refused
 * connection moves on to the next address at once; a timeout ends the round (the process is
 * there but does not answer). Resolves to { status, host } or { error }.
 */
export async function probeDev(preferred, port, timeoutMs) {
  let last = { error: 'ECONNREFUSED' };
  for (const host of candidates(preferred)) {
    const r = await probe(host, port, timeoutMs);
    if (r.status !== undefined) return { ...r, host };
    last = r;
    if (r.error === 'timeout') break;
  }
  return last;
}

/** True when the address is a loopback one. */
export function isLoopback(host) {
  return host === '::1' || host.startsWith('127.');
}

/**
 * CPU time (clock ticks, user + system) used so far by every process of a process group, from
 * /proc; null where /proc is not readable. A dev server that does not answer but uses CPU is
 * busy (compiling), not hung: a SIGSTOPped or deadlocked one uses none.
 */
export function groupCpuTicks(pgid, procDir = '/proc') {
  let names;
  try {
    names = fs.readdirSync(procDir);
  } catch {
    return null;
  }
  let total = 0;
  for (const name of names) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = fs.readFileSync(path.join(procDir, name, 'stat'), 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // after "pid (comm) ": state ppid pgrp session ... utime(12) stime(13)
      if (Number(f[2]) === pgid) total += Number(f[11]) + Number(f[12]);
    } catch {
      // gone meanwhile
    }
  }
  return total;
}

// Line-prefixed logging for `fly logs`, token redaction and cleaning of child output.

/** A function that removes every form of the token from a string. */
export function makeRedactor(token) {
  if (token === null || token === undefined) return (s) => s;
  const forms = [
    Buffer.from(`x-access-token:${token}`, 'utf8').toString('base64'),
    Buffer.from(token, 'utf8').toString('base64'),
    encodeURIComponent(token),
    token,
  ].filter((f, i, all) => f.length > 0 && all.indexOf(f) === i);
  return (s) => {
    let out = s;
    for (const f of forms) out = out.split(f).join('[REDACTED]');
    return out;
  };
}

// OSC (ESC ] ... BEL | ESC \), CSI (ESC [ or 0x9b, params, intermediates, final byte) and the
// other two-byte escape sequences (ESC, intermediates, final byte).
// eslint-disable-next-line no-control-regex
const ANSI = /\u001b\][^\u0007\u001b]*(?:\u0007|\u001b\\)?|(?:\u001b\[|\u009b)[0-?]*[ -/]*[@-~]|\u001b[ -/]*[0-~]?/g;
// eslint-disable-next-line no-control-regex
const OTHER_CONTROLS = /[\u0000-\u0008\u000b-\u001f\u007f]/g;

/** Remove ANSI escape sequences from a string. */
export function stripAnsi(s) {
  return s.replace(ANSI, '');
}

/**
 * One line of child output as it should appear in the log: ANSI escapes removed, a progress
 * line redrawn with `\r` reduced to its last non-empty state, other control characters dropped.
 */
export function cleanLine(line) {
  let s = stripAnsi(line);
  if (s.includes('\r')) {
    const parts = s.split('\r').filter((p) => p.trim().length > 0);
    s = parts.length > 0 ? parts[parts.length - 1] : '';
  }
  return s.replace(OTHER_CONTROLS, '').trimEnd();
}

/**
 * Logger bound to a context: `ctx.stdout`, `ctx.stderr` and `ctx.redact` (read on every call, so
 * the redactor can be installed once the token is known).
 */
export function createLogger(ctx) {
  const write = (stream, text) => stream.write(`${ctx.redact(text)}\n`);
  return {
    /** `[runner] msg` on stdout. */
    runner: (msg) => write(ctx.stdout, `[runner] ${msg}`),
    /** `[git] msg` on stdout. */
    git: (msg) => write(ctx.stdout, `[git] ${msg}`),
    /** A line of child output with its prefix, cleaned; blank lines are dropped. */
    child: (prefix, line, toStderr = false) => {
      const clean = cleanLine(line);
      if (clean.trim().length > 0) write(toStderr ? ctx.stderr : ctx.stdout, `${prefix} ${clean}`);
    },
    /** The single `runner: msg` line on stderr that explains an exit. */
    fatal: (msg) => write(ctx.stderr, `runner: ${msg}`),
  };
}

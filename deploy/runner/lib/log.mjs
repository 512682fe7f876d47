// Line-prefixed logging for `fly logs`, token redaction and cleaning of child output.

/** Environment variables whose values are secrets: removed from every printed line. */
export const SECRET_ENV = ['GIT_TOKEN', 'NPM_TOKEN', 'NODE_AUTH_TOKEN', 'GITHUB_TOKEN'];

/** Secret-shaped text, whatever its value: credentials in URLs, Authorization headers, npm auth settings. */
const SECRET_PATTERNS = [
  // https://user:password@host, https://token@host
  [/\b([a-z][a-z0-9+.-]*:\/\/)[^\s/@:]*(?::[^\s/@]*)?@/gi, '$1[REDACTED]@'],
  [/\b((?:proxy-)?authorization\s*[:=]\s*)(?:(?:basic|bearer|token)\s+)?[^\s,;"']+/gi, '$1[REDACTED]'],
  [/((?:_authToken|_auth|_password|npm_token|npm_config__auth\w*)\s*[=:]\s*)[^\s"']+/gi, '$1[REDACTED]'],
  [/\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|npm_[A-Za-z0-9]{30,})\b/g, '[REDACTED]'],
];

/**
 * A function that removes every form of the token (and of `extraSecrets`, e.g. NPM_TOKEN's
 * value) from a string, plus secret-shaped text: credentials in URLs, Authorization headers,
 * npm auth settings, GitHub / npm token formats.
 */
export function makeRedactor(token, extraSecrets = []) {
  const values = [
    ...(typeof token === 'string' && token.length > 0 ? [token] : []),
    ...extraSecrets.filter((v) => typeof v === 'string' && v.length >= 4),
  ];
  const forms = values
    .flatMap((v) => [
      Buffer.from(`x-access-token:${v}`, 'utf8').toString('base64'),
      Buffer.from(v, 'utf8').toString('base64'),
      encodeURIComponent(v),
      v,
    ])
    .filter((f, i, all) => f.length > 0 && all.indexOf(f) === i);
  return (s) => {
    let out = s;
    for (const f of forms) out = out.split(f).join('[REDACTED]');
    for (const [re, to] of SECRET_PATTERNS) out = out.replace(re, to);
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
  // Child output also goes to the preview's status (ctx.state), by source.
  const keep = (source, text) => ctx.state?.line(source, text);
  return {
    /** `[runner] msg` on stdout. */
    runner: (msg) => write(ctx.stdout, `[runner] ${msg}`),
    /** `[git] msg` on stdout. */
    git: (msg) => {
      keep('git', msg);
      write(ctx.stdout, `[git] ${msg}`);
    },
    /** A line of child output with its prefix, cleaned; blank lines are dropped. */
    child: (prefix, line, toStderr = false) => {
      const clean = cleanLine(line);
      if (clean.trim().length === 0) return;
      keep(prefix.replace(/^\[|\]$/g, ''), clean);
      write(toStderr ? ctx.stderr : ctx.stdout, `${prefix} ${clean}`);
    },
    /** The single `runner: msg` line on stderr that explains an exit. */
    fatal: (msg) => write(ctx.stderr, `runner: ${msg}`),
  };
}

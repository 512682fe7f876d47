// What the preview is doing, for the status page, `/__preview/ready`, `/__preview/status`, the
// `status` command and the `dev` object of sync replies: a phase, since when, one sentence, and
// the last relevant output lines (redacted, bounded).

/** Every phase. `serving` is the only one in which the dev server gets the traffic. */
export const PHASES = [
  'cloning',
  'installing',
  'starting',
  'serving',
  'restarting',
  'crashloop',
  'clone_failed',
  'install_failed',
  'no_script',
  'invalid',
];
/** Phases after which the runner only lingers and exits. */
export const TERMINAL_PHASES = new Set(['crashloop', 'clone_failed', 'install_failed', 'no_script', 'invalid']);

export const MAX_LINES = 20;
export const MAX_LINE_CHARS = 200;
export const MAX_READY_BYTES = 1024;

/** Output lines kept per source (`git`, `install`, `dev`); the status shows the relevant ones. */
const SOURCE_OF_PHASE = {
  cloning: 'git',
  clone_failed: 'git',
  installing: 'install',
  install_failed: 'install',
  no_script: 'install',
  invalid: 'none',
};

function clip(line) {
  return line.length > MAX_LINE_CHARS ? `${line.slice(0, MAX_LINE_CHARS - 1)}…` : line;
}

export class PreviewState {
  /** @param redact function applied to every line and message (read at call time) */
  constructor(redact = (s) => s, now = () => new Date()) {
    this.redactFn = redact;
    this.now = now;
    this.phase = 'cloning';
    this.since = now();
    this.message = 'cloning the repository';
    this.restarts = 0;
    this.revision = null;
    this.buffers = { git: [], install: [], dev: [], none: [] };
    this.waiters = new Set();
  }

  redact(s) {
    return this.redactFn(s);
  }

  /** Enter `phase` with a one-sentence message (the same phase again only updates the message). */
  set(phase, message) {
    if (!PHASES.includes(phase)) throw new Error(`unknown phase ${phase}`);
    if (phase !== this.phase) this.since = this.now();
    this.phase = phase;
    this.message = this.redact(message);
    for (const w of [...this.waiters]) w();
  }

  get terminal() {
    return TERMINAL_PHASES.has(this.phase);
  }

  get serving() {
    return this.phase === 'serving';
  }

  /** Keep one line of output of `source` (`git`, `install` or `dev`). */
  line(source, text) {
    const buf = this.buffers[source];
    if (!buf || text.trim() === '') return;
    buf.push(clip(this.redact(text)));
    if (buf.length > MAX_LINES) buf.splice(0, buf.length - MAX_LINES);
  }

  clearLines(source) {
    if (this.buffers[source]) this.buffers[source].length = 0;
  }

  /** The lines relevant to the current phase. */
  lines() {
    return [...this.buffers[SOURCE_OF_PHASE[this.phase] ?? 'dev']];
  }

  /** The JSON of `/__preview/status`, the `status` command and the sync reply's `dev`. */
  snapshot() {
    return {
      phase: this.phase,
      since: this.since.toISOString(),
      message: this.message,
      lines: this.lines(),
      restarts: this.restarts,
      revision: this.revision ? this.revision.slice(0, 12) : null,
    };
  }

  /** Body of `/__preview/ready`: `<phase>: <message>` then the last lines, at most 1,024 bytes. */
  readyBody() {
    const head = clip(`${this.phase}: ${this.message}`);
    const lines = this.lines();
    let body = head;
    const fits = (s) => Buffer.byteLength(s, 'utf8') <= MAX_READY_BYTES;
    for (let i = 0; i < lines.length; i += 1) {
      const candidate = [head, ...lines.slice(i)].join('\n');
      if (fits(candidate)) {
        body = candidate;
        break;
      }
    }
    return fits(body) ? body : Buffer.from(body, 'utf8').subarray(0, MAX_READY_BYTES).toString('utf8').replace(/\uFFFD$/, '');
  }

  /** Resolves when the phase changes, or after `ms`. */
  changed(ms) {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.waiters.add(done);
    });
  }
}

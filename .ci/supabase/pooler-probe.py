#!/usr/bin/env python3
"""Show how a client can tell a direct connection / session pooler from a transaction pooler.

Usage: pooler-probe.py PORT [PORT ...]   (host 127.0.0.1, user postgres, db postgres, trust auth)

Speaks the Postgres wire protocol itself (simple query protocol, no driver needed) so it can
also show what drivers hide: the BackendKeyData pid and the ParameterStatus set.
Two client connections A and B to the same port:
  handoff   A runs one autocommit statement and stays idle; B then opens a transaction.
            Same backend pid => A's backend was handed to B => transaction pooling.
  lock      A takes a session advisory lock (autocommit); B tries the same lock.
            B gets it => they share a backend => session-level state is not per client.
  guc       A sets a session GUC; B reads it in a transaction.
  pinned    B holds a transaction open; A runs two statements: does A keep its backend?
  prepare   A PREPAREs, B holds a transaction, A EXECUTEs.
  listen    A LISTENs, B NOTIFYs, then A runs a statement: who receives the notification?
"""
import socket
import struct
import sys
import uuid


class Conn:
    def __init__(self, port, host="127.0.0.1", user="postgres", db="postgres", params=None):
        self.s = socket.create_connection((host, port), timeout=5)
        self.port = port
        body = struct.pack("!i", 196608)
        for k, v in [("user", user), ("database", db)] + list((params or {}).items()):
            body += k.encode() + b"\0" + v.encode() + b"\0"
        body += b"\0"
        self.s.sendall(struct.pack("!i", len(body) + 4) + body)
        self.params, self.key_pid, self.notifications = {}, None, []
        self._read_until_ready()

    def _recv(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.s.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("server closed the connection")
            buf += chunk
        return buf

    def _msg(self):
        t = self._recv(1)
        (ln,) = struct.unpack("!i", self._recv(4))
        return t, self._recv(ln - 4)

    def _read_until_ready(self):
        rows, error = [], None
        while True:
            t, b = self._msg()
            if t == b"R":
                (code,) = struct.unpack("!i", b[:4])
                if code != 0:
                    raise RuntimeError(f"auth method {code} requested; this probe only does trust")
            elif t == b"S":
                k, v = b.split(b"\0")[:2]
                self.params[k.decode()] = v.decode()
            elif t == b"K":
                self.key_pid = struct.unpack("!i", b[:4])[0]
            elif t == b"D":
                (n,) = struct.unpack("!h", b[:2])
                pos, row = 2, []
                for _ in range(n):
                    (ln,) = struct.unpack("!i", b[pos:pos + 4])
                    pos += 4
                    row.append(None if ln < 0 else b[pos:pos + ln].decode())
                    pos += max(ln, 0)
                rows.append(row)
            elif t == b"A":
                (pid,) = struct.unpack("!i", b[:4])
                chan, payload = b[4:].split(b"\0")[:2]
                self.notifications.append((pid, chan.decode(), payload.decode()))
            elif t == b"E":
                fields = dict((f[:1], f[1:].decode()) for f in b.split(b"\0") if f)
                error = f"{fields.get(b'C', '')} {fields.get(b'M', '')}"
            elif t == b"Z":
                return rows, error
            # T (row description), C (command complete), N (notice), I (empty) are ignored

    def q(self, sql):
        body = sql.encode() + b"\0"
        self.s.sendall(b"Q" + struct.pack("!i", len(body) + 4) + body)
        return self._read_until_ready()

    def one(self, sql):
        rows, err = self.q(sql)
        return err if err else (rows[0][0] if rows and rows[0] else None)

    def close(self):
        try:
            self.s.sendall(b"X" + struct.pack("!i", 4))
        finally:
            self.s.close()


def probe(port):
    out = {}
    a = Conn(port, params={"application_name": "probe-a"})
    real_pid = a.one("select pg_backend_pid()")
    out["BackendKeyData pid == pg_backend_pid()"] = f"{a.key_pid == int(real_pid)} (key {a.key_pid}, backend {real_pid})"
    out["inet_server_port()"] = f"{a.one('select inet_server_port()')} (connected to {port})"
    out["ParameterStatus keys"] = ",".join(sorted(a.params))

    # handoff
    a_pid = a.one("select pg_backend_pid()")
    b = Conn(port, params={"application_name": "probe-b"})
    b.q("begin")
    b_pid = b.one("select pg_backend_pid()")
    b.q("commit")
    out["handoff: A idle pid / B tx pid"] = f"{a_pid} / {b_pid} -> {'SAME' if a_pid == b_pid else 'different'}"

    # advisory lock (session level)
    key = 4242
    got_a = a.one(f"select pg_try_advisory_lock({key})")
    got_b = b.one(f"select pg_try_advisory_lock({key})")
    out["lock: A then B pg_try_advisory_lock"] = f"A={got_a} B={got_b}"
    a.q(f"select pg_advisory_unlock_all()")
    b.q(f"select pg_advisory_unlock_all()")

    # session GUC leak
    token = uuid.uuid4().hex[:8]
    a.q(f"select set_config('fpc.probe', '{token}', false)")
    b.q("begin")
    seen = b.one("select current_setting('fpc.probe', true)")
    b.q("commit")
    out["guc: A sets fpc.probe, B reads"] = f"{'LEAKED ' + seen if seen == token else repr(seen)}"
    a.q("reset fpc.probe")

    # pinned: B holds a transaction open while A runs two statements
    p1 = a.one("select pg_backend_pid()")
    b.q("begin")
    bh = b.one("select pg_backend_pid()")
    p2 = a.one("select pg_backend_pid()")
    b.q("commit")
    out["pinned: A pid, B holds tx on pid, A pid again"] = f"{p1}, {bh}, {p2} -> A {'kept' if p1 == p2 else 'MOVED'}"

    # prepared statement
    a.q("deallocate all")
    a.q("prepare fpc_probe_stmt as select 1")
    b.q("begin")
    b.one("select 1")
    res = a.one("execute fpc_probe_stmt")
    b.q("commit")
    out["prepare on A, B holds tx, execute on A"] = res
    a.q("deallocate all")
    b.q("deallocate all")

    # LISTEN/NOTIFY
    chan = "fpc_probe_" + uuid.uuid4().hex[:8]
    a.q(f"listen {chan}")
    b.q(f"notify {chan}, 'hello'")
    a.q("select 1")
    out["listen on A, notify from B: received by"] = (
        "A=%d B=%d" % (len([n for n in a.notifications if n[1] == chan]), len([n for n in b.notifications if n[1] == chan])))
    a.q("unlisten *")
    b.q("unlisten *")
    a.close()
    b.close()
    return out


def main():
    for port in [int(p) for p in sys.argv[1:]] or [54329, 6544, 6543]:
        print(f"== 127.0.0.1:{port}")
        try:
            for k, v in probe(port).items():
                print(f"  {k:46} {v}")
        except Exception as e:  # report and go on with the next port
            print(f"  probe failed: {e}")


if __name__ == "__main__":
    main()

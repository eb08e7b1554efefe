"""Shared helpers for the tests/t-smtpd*.py scripts: qmail-smtpd under a
real tcpserver, a raw-socket SMTP client, and a queue-file reader."""
import os, socket, struct, subprocess, time
from harness import Instance, free_port, wait_for, IS_ROOT


class Server:
    """tcpserver on 127.0.0.1 running PREFIX/bin/qmail-smtpd. relay=True
    gives every client RELAYCLIENT="" through a tcprules cdb."""

    def __init__(self, inst, relay=False, env=None, name="smtpd", program=None, listener=None):
        """program: the argv tcpserver runs; by default qmail-smtpd, with
        tcpserver taking the smtpd uid. listener: options for
        qmail-smtpd-listen, which then serves in tcpserver's place."""
        self.inst = inst
        self.port = free_port()
        rules = inst.path("control", "%s-%d.rules" % (name, self.port))
        cdb = rules + ".cdb"
        with open(rules, "w") as f:
            f.write('127.0.0.1:allow,RELAYCLIENT=""\n' if relay else "127.0.0.1:allow\n")
            f.write(":allow\n")
        subprocess.run(["tcprules", cdb, cdb + ".tmp"], stdin=open(rules), check=True)
        os.chmod(cdb, 0o644)
        self.log = open(inst.path("%s-%d.log" % (name, self.port)), "w+")
        common = ["-l", "mail.example.test", "-c", "40", "-x", cdb]
        argv = ["tcpserver", "-q", "-R", "-H"] + common
        if listener is not None:
            argv = [inst.bin("qmail-smtpd-listen")] + common + listener
            program = []
        elif program is None:
            if IS_ROOT and inst.multi:
                uid, gid = inst.uid("smtpd")
                argv += ["-u", str(uid), "-g", str(gid)]
            program = [inst.bin("qmail-smtpd")]
        argv += ["127.0.0.1", str(self.port)] + program
        e = dict(os.environ)
        e.pop("RELAYCLIENT", None)
        e.update(env or {})
        inst.spawn(argv, stdout=self.log, stderr=self.log, env=e)
        if not wait_for(self._up, 10):
            raise SystemExit("%s did not start" % argv[0])

    def _up(self):
        try:
            s = socket.create_connection(("127.0.0.1", self.port), 1)
            s.close()
            return True
        except OSError:
            return False

    def logtext(self):
        self.log.flush()
        with open(self.log.name, errors="replace") as f:
            return f.read()

    def connect(self, greet=True, timeout=10):
        return Client(self.port, greet, timeout)


class Client:
    def __init__(self, port, greet=True, timeout=10):
        self.s = socket.create_connection(("127.0.0.1", port), timeout)
        self.s.settimeout(timeout)
        self.buf = b""
        self.greeting = self.reply() if greet else None

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.s.sendall(data)

    def _line(self):
        while b"\r\n" not in self.buf:
            d = self.s.recv(65536)
            if not d:
                raise EOFError("connection closed; have %r" % self.buf)
            self.buf += d
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line.decode("utf-8", "replace")

    def reply(self):
        """(code, text of every line joined by newline); code 0 at EOF."""
        lines = []
        try:
            while True:
                l = self._line()
                lines.append(l[4:])
                if len(l) < 4 or l[3] != "-":
                    return int(l[:3]), "\n".join(lines)
        except (EOFError, ConnectionResetError):
            return 0, "\n".join(lines)
        except socket.timeout:
            return -1, "\n".join(lines)

    def cmd(self, line):
        self.send(line + "\r\n")
        return self.reply()

    def closed(self, wait=5):
        """True when the server has closed the connection."""
        self.s.settimeout(wait)
        try:
            while True:
                d = self.s.recv(65536)
                if not d:
                    return True
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass

    def transaction(self, sender, rcpts, ehlo=True):
        """EHLO (or HELO), MAIL, RCPTs: the list of reply codes."""
        codes = [self.cmd(("EHLO" if ehlo else "HELO") + " client.test")[0]]
        codes.append(self.cmd("MAIL FROM:<%s>" % sender)[0])
        for r in rcpts:
            codes.append(self.cmd("RCPT TO:<%s>" % r)[0])
        return codes


def read_queue_file(path):
    """Parses a queue file: (message bytes, sender, options, [(state, rcpt)])."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:4] == b"QMQ1" and data[28:32] == b"DONE", "bad header"
    msg_len = struct.unpack(">Q", data[4:12])[0]
    env_off = struct.unpack(">Q", data[12:20])[0]
    msg = data[32:32 + msg_len]
    i = env_off
    sender, opts, rcpts = None, [], []
    while i < len(data):
        t = data[i:i + 1]
        n = struct.unpack(">I", data[i + 1:i + 5])[0]
        d = data[i + 5:i + 5 + n]
        i += 5 + n
        if t == b"F":
            sender = d
        elif t == b"O":
            opts.append(d)
        elif t == b"R":
            rcpts.append((d[:1], d[1:]))
        elif t == b"E":
            break
    return msg, sender, opts, rcpts


class Queue:
    """Watches PREFIX/queue/mess: what arrived since the last call."""

    def __init__(self, inst):
        self.inst = inst
        self.seen = set(self._list())

    def _list(self):
        return os.listdir(self.inst.path("queue", "mess"))

    def new(self, expect=0, wait=5.0):
        """Names of messages committed since last time. With expect, waits
        up to wait seconds for that many; otherwise waits a moment so that
        a late arrival would be noticed."""
        if expect:
            wait_for(lambda: len(set(self._list()) - self.seen) >= expect, wait)
        else:
            time.sleep(0.1)
        now = set(self._list())
        fresh = sorted(now - self.seen)
        self.seen = now
        return fresh

    def read(self, name):
        return read_queue_file(self.inst.path("queue", "mess", name))

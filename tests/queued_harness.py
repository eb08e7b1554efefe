"""Shared helpers for the tests/t-queued*.py scripts: qmail-queued started
as the queue uid with its readiness pipe, a client of its protocol
(lib/qqclient.h) in Python, and a strict queue-file parser."""
import os, re, resource, select, socket, subprocess
from harness import IS_ROOT, wait_for

RECEIVED_QQD = re.compile(rb"Received: \(qmail-queued (\d+) invoked by uid (\d+) pid (\d+)\); "
                          rb"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{1,2} "
                          rb"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} "
                          rb"\d\d:\d\d:\d\d \+0000\n")
POOL_NAME = re.compile(r"p\d{1,20}")
RECEIVED_QQ = re.compile(rb"Received: \(qmail-queue (\d+) invoked by uid (\d+)\); [^\n]*\n")


class QueueDir:
    """A queue's mess/ and tmp/ as the tests look at them."""

    def __init__(self, inst):
        self.mess_dir = inst.path("queue", "mess")
        self.tmp_dir = inst.path("queue", "tmp")

    def mess(self):
        return sorted(os.listdir(self.mess_dir))

    def tmp(self):
        """tmp/ but for qmail-queued's unused pool names (empty p<n>)."""
        return sorted(n for n in os.listdir(self.tmp_dir) if not self.pooled(n))

    def pool(self):
        return sorted(n for n in os.listdir(self.tmp_dir) if self.pooled(n))

    def pooled(self, name):
        try:
            return POOL_NAME.fullmatch(name) and os.stat(os.path.join(self.tmp_dir, name)).st_size == 0
        except FileNotFoundError:
            return False

    def read(self, name):
        with open(os.path.join(self.mess_dir, name), "rb") as f:
            return f.read()


def envl(sender, rcpts):
    return b"F" + sender + b"\0" + b"".join(b"T" + r + b"\0" for r in rcpts) + b"\0"


def parse(data):
    """The queue file format of lib/qfile.h, read strictly: a dict with the
    message, sender, options, recipients and the envelope's raw bytes, or
    ValueError."""
    if len(data) < 32 or data[:4] != b"QMQ1" or data[28:32] != b"DONE":
        raise ValueError("bad header")
    msg_len = int.from_bytes(data[4:12], "big")
    env_off = int.from_bytes(data[12:20], "big")
    if env_off != 32 + msg_len or env_off > len(data):
        raise ValueError("bad lengths")
    recs, i = [], env_off
    while i < len(data):
        if len(data) - i < 5:
            raise ValueError("cut record")
        n = int.from_bytes(data[i + 1:i + 5], "big")
        if i + 5 + n > len(data):
            raise ValueError("record past EOF")
        recs.append((chr(data[i]), data[i + 5:i + 5 + n]))
        i += 5 + n
    types = "".join(r[0] for r in recs)
    if not re.fullmatch(r"FO*R+E", types):
        raise ValueError("record order " + types)
    if recs[-1][1] and not re.fullmatch(rb"\d+\.\d{6}\.\d+", recs[-1][1]):
        raise ValueError("end record " + repr(recs[-1][1]))
    return {
        "message": data[32:env_off],
        "sender": recs[0][1],
        "opts": [d for ty, d in recs if ty == "O"],
        "rcpts": [(d[:1], d[1:]) for ty, d in recs if ty == "R"],
        "envelope": data[env_off:],
        "qid": recs[-1][1].decode(),
    }


def read_trigger(fd):
    """What the trigger fifo got within a second (qmail-queued pulls it
    after the answer, once mess/ is fsynced); the fd is closed."""
    got = select.select([fd], [], [], 1)[0] and os.read(fd, 4096) or b""
    os.close(fd)
    return got


def sans_sum(data):
    """A queue file with its header's sum zeroed (it covers the Received:
    line, which names the writer)."""
    return data[:20] + bytes(8) + data[28:]


def swap_received(data, line, qid):
    """The queue file data with its first message line replaced by line,
    its end record's qid by qid, the header's lengths adjusted and its
    sum zeroed: what qmail-queued must write for the message qmail-queue
    wrote as data, but for the sum."""
    q = parse(data)
    first = q["message"].index(b"\n") + 1
    msg = line + q["message"][first:]
    n = len(msg).to_bytes(8, "big")
    env = q["envelope"][:-(5 + len(q["qid"]))] + b"E" + len(qid).to_bytes(4, "big") + qid.encode()
    return b"QMQ1" + n + (32 + len(msg)).to_bytes(8, "big") + bytes(8) + b"DONE" + msg + env


class Daemon:
    """qmail-queued as the queue uid (as root), ready once it has written
    to its notification pipe. nofile: a descriptor limit, to make it
    small (its client slots follow it)."""

    def __init__(self, inst, nofile=None):
        self.inst = inst
        self.sock = inst.path("queued", "socket")
        self.log = open(inst.path("queued-%d.log" % len(inst.procs)), "w+")
        r, w = os.pipe()
        argv = [inst.bin("qmail-queued"), "-d%d" % w]
        if IS_ROOT and inst.multi:
            u, g = inst.uid("queue")
            argv = ["s6-applyuidgid", "-u", str(u), "-g", str(g), "-G", ""] + argv

        def pre():
            if nofile:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
        self.p = inst.spawn(argv, stdout=self.log, stderr=self.log, pass_fds=(w,), preexec_fn=pre)
        os.close(w)
        ok = select.select([r], [], [], 10)[0]
        self.ready = ok and os.read(r, 16) == b"\n"
        os.close(r)
        self.pid = self.p.pid

    def logtext(self):
        self.log.flush()
        with open(self.log.name, errors="replace") as f:
            return f.read()

    def stop(self, sig=15, wait=15):
        if self.p.poll() is None:
            os.kill(self.p.pid, sig)
        try:
            return self.p.wait(wait)
        except subprocess.TimeoutExpired:
            self.p.kill()
            return self.p.wait()


class Client:
    """One message through qmail-queued: connect and hand over the pipes
    (ack: b"K", b"B", or b"" if the server closed), then the message and
    envelope, then result(): (code, qid) or (None, None) without answer."""

    def __init__(self, path, flags=0, timeout=10, wait_ack=True):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.s.settimeout(timeout)
        self.s.connect(path)
        mr, self.mw = os.pipe()
        er, self.ew = os.pipe()
        try:
            socket.send_fds(self.s, [bytes([ord("Q"), flags])], [mr])
            socket.send_fds(self.s, [b"E"], [er])
        except OSError:
            pass
        os.close(mr)
        os.close(er)
        self.ack = None
        if wait_ack:
            self.get_ack()

    def get_ack(self):
        try:
            self.ack = self.s.recv(64)
        except OSError:
            self.ack = b""
        return self.ack

    def write(self, data):
        _write_all(self.mw, data)

    def end_message(self):
        if self.mw >= 0:
            os.close(self.mw)
            self.mw = -1

    def envelope(self, data, close=True):
        self.end_message()
        _write_all(self.ew, data)
        if close:
            self.close_env()

    def close_env(self):
        if self.ew >= 0:
            os.close(self.ew)
            self.ew = -1

    def send(self, message, envelope):
        self.write(message)
        self.envelope(envelope)
        return self.result()

    def result(self):
        try:
            a = self.s.recv(64)
        except OSError:
            a = b""
        self.close()
        if not a:
            return None, None
        return a[0], a[1:].decode() if len(a) > 1 else None

    def close(self):
        self.end_message()
        self.close_env()
        self.s.close()


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def queue_once(path, message, envelope, flags=0):
    """One message; (ack, code, qid)."""
    c = Client(path, flags)
    if c.ack != b"K":
        c.close()
        return c.ack, None, None
    code, qid = c.send(message, envelope)
    return c.ack, code, qid


def refused_connect(path):
    """True when nothing listens on the socket (the file may remain)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        s.connect(path)
        return False
    except (ConnectionRefusedError, FileNotFoundError):
        return True
    finally:
        s.close()

#!/usr/bin/env python3
"""qmail-smtpd-listen's resident parent and the state shared across
connections, against the real listener and the real qmail-smtpd-state,
from several loopback addresses (127.0.0.0/8 is all loopback on Linux).

SIGPIPE: the reader of the listener's log pipe goes away and a spare is
killed (the parent logs its death into the dead pipe): the listener still
serves. Password guessing across many connections from one address ends
in 454 4.7.0 at control/authmaxfail (5 here), while a user from another address
authenticates; the fail2ban regex of qmail-smtpd(8), read from the page,
finds the guesser's lines. A dictionary attack spread over connections
is remembered per address: past control/rcptfailmax unknown recipients
in control/rcptfailwindow seconds, its next RCPTs get 421 4.7.0, logged
once for the episode, while another address is served."""
import base64, os, re, select, signal, socket, subprocess, sys, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import T, Instance, wait_for, IS_ROOT
from smtpd_harness import Client

t = T()
inst = Instance(t, control={"rcpthosts": ["example.test"], "errordelay": "10"})
LISTEN = inst.bin("qmail-smtpd-listen")
IDS = []
if IS_ROOT and inst.multi:
    IDS = ["-u", str(inst.uid("smtpd")[0]), "-g", str(inst.uid("smtpd")[1])]


class Srv:
    """A listener on 127.0.0.1 port 0, its log into a pipe read by a
    thread of ours (or, logfile given, a file)."""

    def __init__(self, name, opts=(), pipe=False):
        self.log = open(inst.path(name + ".log"), "w+")
        self.rd, wr = os.pipe() if pipe else (None, self.log)
        e = dict(os.environ)
        e.pop("RELAYCLIENT", None)
        self.p = inst.spawn([LISTEN, "-1", "-l", "mail.example.test"] + IDS + list(opts) + ["0", "0"],
                            stdout=subprocess.PIPE, stderr=wr, env=e)
        if pipe:
            os.close(wr)
        r, _, _ = select.select([self.p.stdout], [], [], 10)
        line = self.p.stdout.readline() if r else b""
        self.port = int(line) if line.strip().isdigit() else 0

    def drain(self):
        """What the log pipe holds now, appended to the log file."""
        while self.rd is not None and select.select([self.rd], [], [], 0.2)[0]:
            d = os.read(self.rd, 65536)
            if not d:
                break
            self.log.write(d.decode("utf-8", "replace"))
        self.log.flush()

    def logtext(self):
        self.drain()
        return open(self.log.name, errors="replace").read()

    def lines(self, *words):
        return [l for l in self.logtext().split("\n") if all(w in l for w in words)]

    def stop(self):
        self.drain()
        if self.p.poll() is None:
            self.p.terminate()
        self.p.wait(10)


class C(Client):
    def __init__(self, port, source, greet=True, timeout=10):
        self.s = socket.create_connection(("127.0.0.1", port), timeout, source_address=(source, 0))
        self.s.settimeout(timeout)
        self.buf = b""
        self.greeting = self.reply() if greet else None


def children(pid):
    with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
        return [int(x) for x in f.read().split()]


# --- SIGPIPE: the log's reader and a spare go away ----------------------------------
srv = Srv("sigpipe", pipe=True)
c = C(srv.port, "127.0.0.1")
t.check("the listener serves", c.greeting[0] == 220, c.greeting)
c.close()
spares = wait_for(lambda: children(srv.p.pid) if len(children(srv.p.pid)) >= 2 else None, 5) or []
os.close(srv.rd)           # the log's reader is gone: every log write is EPIPE
srv.rd = None
for pid in spares[:1]:
    os.kill(pid, signal.SIGKILL)   # the parent logs event=crash into the dead pipe
time.sleep(0.5)
t.check("a spare killed while the log's reader is gone: the listener lives",
        len(spares) >= 2 and srv.p.poll() is None, (spares, srv.p.poll()))
codes = []
for _ in range(3):
    try:
        c = C(srv.port, "127.0.0.1")
        codes += [c.greeting[0], c.cmd("EHLO client.test")[0], c.cmd("QUIT")[0]]
        c.close()
    except OSError as e:
        codes.append(str(e))
t.check("... and still serves: three sessions from greeting to QUIT", codes == [220, 250, 221] * 3, codes)
srv.stop()
t.check("... and stops on SIGTERM with 0", srv.p.returncode == 0, srv.p.returncode)


# --- the state service -------------------------------------------------------------
slog = open(inst.path("state.log"), "w+")
user = {}
if IS_ROOT and inst.multi:
    uid, gid = inst.uid("smtpdstate")
    user = dict(user=uid, group=gid, extra_groups=[])
state = inst.spawn([inst.bin("qmail-smtpd-state")], stdout=slog, stderr=slog, **user)
if not t.check("qmail-smtpd-state starts", wait_for(lambda: os.path.exists(inst.path("smtpdstate", "socket")), 10)):
    t.done()
srv = Srv("door")

# --- password guessing across connections ---------------------------------------------
PW = "right-pass"
r = subprocess.run([inst.bin("qmail-passwd"), "add", "joe"], input=(PW + "\n").encode(),
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
t.check("qmail-passwd add", r.returncode == 0, r.stderr)
inst.control("authloopback", "1")      # AUTH without TLS from loopback
inst.control("authmaxfail", "5")       # fail2ban's default (ours is 10): each failure costs 1 s


def plain(pw):
    return "AUTH PLAIN " + base64.b64encode(("\0joe\0" + pw).encode()).decode()


replies = []
for i in range(6):
    c = C(srv.port, "127.0.0.3")
    c.cmd("EHLO guesser.test")
    for k in range(3):
        code, text = c.cmd(plain("guess%d-%d" % (i, k)))
        replies.append((code, text))
        if code != 535:
            break
    c.close()
codes = [x[0] for x in replies]
t.check("the guesser: five failures over two connections (535, and 421 at a session's third)",
        codes[:5] == [535, 535, 421, 535, 535], codes)
t.check("... then 454 4.7.0, on that connection and at once on every later one",
        codes[5:] == [454] * 5 and all(x[1].startswith("4.7.0") for x in replies[5:]), replies[5:])
c = C(srv.port, "127.0.0.3")
c.cmd("EHLO guesser.test")
t.check("... even with the right password", c.cmd(plain(PW))[0] == 454)
c.close()
c = C(srv.port, "127.0.0.1")
c.cmd("EHLO legit.test")
t.check("meanwhile a user from another address authenticates: 235", c.cmd(plain(PW))[0] == 235)
c.close()

# The fail2ban regex as qmail-smtpd(8) documents it, <HOST> as fail2ban
# expands it, run on the log.
page = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "qmail-smtpd",
                         "qmail-smtpd.8")).read()
m = re.search(r"For fail2ban.*?\n\.EX\n(.*?)\n\.EE", page, re.S)
doc = m.group(1).replace("\\-", "-").replace("\\e", "\\") if m else "(no regex in the page)"
rx = re.compile(doc.replace("<HOST>", r"(?P<host>\S+)"))
hits = [rx.search(l) for l in srv.logtext().splitlines()]
hosts = [h.group("host") for h in hits if h]
t.check("the documented fail2ban regex finds the 5 failures and 6 refusals of the guesser, no other host",
        hosts == ["127.0.0.3"] * 11, (doc, hosts))
t.check("... its lines say failed, then locked",
        [h.group(0).rsplit("=", 1)[1] for h in hits if h] == ["failed"] * 5 + ["locked"] * 6)

# --- a dictionary attack across connections -----------------------------------------
inst.control("rcptfailmax", "30")
inst.control("rcptfailwindow", "60")


def probe(src, rcpts, closing=True):
    """One connection from src: the RCPT replies, until one is not 550,
    and (closing) whether the server closed it."""
    c = C(srv.port, src)
    c.cmd("HELO prober.test")
    c.cmd("MAIL FROM:<p@prober.test>")
    out = []
    for to in rcpts:
        code, text = c.cmd("RCPT TO:<%s>" % to)
        out.append((code, text))
        if code != 550:
            break
    closed = closing and c.closed()
    c.close()
    return out, closed


r1, _ = probe("127.0.0.4", ["n%d@mail.example.test" % i for i in range(25)])
t.check("a prober's first connection: 20 unknown recipients, 550 each, then 421 (maxbadrcpts)",
        [x[0] for x in r1] == [550] * 20 + [421], [x[0] for x in r1])
r2, closed = probe("127.0.0.4", ["m%d@mail.example.test" % i for i in range(25)])
t.check("its second: the 10th unknown recipient makes 30 in the window: 550, then 421 4.7.0, closed",
        [x[0] for x in r2] == [550] * 10 + [421] and r2[-1][1].startswith("4.7.0") and closed,
        [x[0] for x in r2])
for i in range(2):
    r3, closed = probe("127.0.0.4", ["u@example.test"])
    t.check("a later connection from it: even a good recipient gets 421 4.7.0, closed (%d)" % i,
            [x[0] for x in r3] == [421] and "unknown recipients" in r3[0][1] and closed, r3)
r4, _ = probe("127.0.0.1", ["u@example.test"], closing=False)
r5, _ = probe("127.0.0.1", ["nobody@mail.example.test", "u@example.test"], closing=False)
t.check("another address: its recipients get 250, its unknown ones 550",
        [x[0] for x in r4] == [250] and [x[0] for x in r5] == [550, 250], (r4, r5))
lines = [l for l in srv.logtext().splitlines() if "event=dictionary" in l]
t.check("the episode is logged once, with the count and window",
        len(lines) == 1 and "ip=127.0.0.4 unknown=30 window=60" in lines[0], lines)
t.check("... and each refused connection closes with reason=dictionary",
        len([l for l in srv.logtext().splitlines() if "ip=127.0.0.4 reason=dictionary" in l]) == 3)
srv.stop()
state.terminate()
state.wait(10)
t.done()

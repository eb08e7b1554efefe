"""qmail-smtpd-listen, the resident SMTP listener, against the real
tcpserver it replaces (ucspi-tcp-ipv6).

Both run the same session code with QMAILQUEUE pointing at a script that
records its environment, so what each server sets is compared as the
session hands it on: IPv4 and IPv6 clients, on dual-stack, IPv6-only and
IPv4 sockets, with a tcprules table (exact address, prefixes, "", a rule
overriding a TCP variable, stale TCPREMOTEHOST/INFO in the servers'
environment). Then: deny and RELAYCLIENT from the table, a message queued
by the real qmail-queue, the -c limit (421 beyond it), too few
descriptors (421 and a log line), a session killed by SIGSEGV
(SIGKILL under ASan) while another runs, SIGTERM (sessions finish, no new
connection), each session a fork of the listener (no exec), usage errors, the parent's memory, and as root the uid, gid
and empty supplementary groups of the parent and of a session, which its
own uid cannot inspect.
"""
import os, select, signal, socket, subprocess, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import T, Instance, wait_for, IS_ROOT, SANITIZED
from smtpd_harness import Client, Queue

t = T()
inst = Instance(t, control={"rcpthosts": ["example.test"], "timeoutsmtpd": "20"})
q = Queue(inst)
LISTEN = inst.bin("qmail-smtpd-listen")

RULES = '''127.0.0.1:allow,RELAYCLIENT="",R="v4",X="a b",TCPLOCALHOST="ruled"
127.0.0.:allow,R="v4prefix"
127.0.0.3:deny
::1:allow,R="v6"
:::allow,R="v6prefix"
:allow,R="default"
'''


def compile_rules(text, name="rules"):
    src = inst.path("control", name)
    with open(src, "w") as f:
        f.write(text)
    subprocess.run(["tcprules", src + ".cdb", src + ".tmp"], stdin=open(src), check=True)
    os.chmod(src + ".cdb", 0o644)
    return src + ".cdb"


CDB = compile_rules(RULES)

# QMAILQUEUE: records the environment the session hands to qmail-queue,
# reads the message and the envelope, accepts.
DUMPS = inst.path("envdumps")
os.mkdir(DUMPS)
os.chmod(DUMPS, 0o1777)
DUMP = inst.path("envdump")
with open(DUMP, "w") as f:
    f.write('#!/bin/sh\nenv > %s/.$$ && mv %s/.$$ %s/env.$$\ncat > /dev/null\ncat <&1 > /dev/null\n'
            % (DUMPS, DUMPS, DUMPS))
os.chmod(DUMP, 0o755)

BASE = dict(os.environ)
BASE.pop("RELAYCLIENT", None)
# tcpserver -H -R removes these; set here, they must be gone in both.
BASE.update(TCPREMOTEHOST="stale.example", TCPREMOTEINFO="stale", TCP6REMOTEHOST="stale.example",
            TCP6REMOTEINFO="stale")
IDS = []
if IS_ROOT and inst.multi:
    IDS = ["-u", str(inst.uid("smtpd")[0]), "-g", str(inst.uid("smtpd")[1])]


def read_port(p, timeout=10):
    """The port a server started with -1 prints, or 0."""
    r, _, _ = select.select([p.stdout], [], [], timeout)
    line = p.stdout.readline() if r else b""
    return int(line) if line.strip().isdigit() else 0


class Srv:
    """A listener (or tcpserver running qmail-smtpd) on host, port 0 -1."""

    def __init__(self, host, tcpserver=False, limit=40, env=None, ids=True, cdb=CDB, wrap=()):
        name = "%s-%s-%d" % ("tcpserver" if tcpserver else "listen", host.replace(":", "_"),
                             len(inst.procs))
        self.log = open(inst.path(name + ".log"), "w+")
        common = ["-1", "-l", "mail.example.test", "-c", str(limit), "-x", cdb] + (IDS if ids else [])
        if tcpserver:
            argv = ["tcpserver", "-H", "-R"] + common + [host, "0", inst.bin("qmail-smtpd")]
        else:
            argv = list(wrap) + [LISTEN] + common + [host, "0"]
        e = dict(BASE, QMAILQUEUE=DUMP)
        e.update(env or {})
        self.p = inst.spawn(argv, stdout=subprocess.PIPE, stderr=self.log, env=e)
        self.port = read_port(self.p)
        self.host = host

    def logtext(self):
        self.log.flush()
        return open(self.log.name, errors="replace").read()

    def children(self, comm="qmail-smtpd"):
        """The sessions (a session names itself qmail-smtpd), or with
        comm="qmail-smtpd-lis" the spares waiting to accept."""
        out = []
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    st = open("/proc/%s/stat" % d).read()
                    if (int(st.rsplit(")", 1)[1].split()[1]) == self.p.pid
                            and st[st.index("(") + 1:st.rindex(")")] == comm):
                        out.append(int(d))
                except (OSError, IndexError, ValueError):
                    pass
        return sorted(out)


class C(Client):
    """smtpd_harness's Client to any loopback address, from a chosen one."""

    def __init__(self, host, port, source=None, greet=True, timeout=10):
        self.s = socket.create_connection((host, port), timeout,
                                          source_address=(source, 0) if source else None)
        self.s.settimeout(timeout)
        self.buf = b""
        self.greeting = self.reply() if greet else None


def session_env(srv, host, source=None):
    """One message through srv from source: (environment QMAILQUEUE got,
    client port), or (None, detail)."""
    before = set(os.listdir(DUMPS))
    c = C(host, srv.port, source)
    codes = [c.greeting[0], c.cmd("EHLO client.test")[0], c.cmd("MAIL FROM:<s@client.test>")[0],
             c.cmd("RCPT TO:<u@example.test>")[0], c.cmd("DATA")[0]]
    c.send("Subject: env\r\n\r\nenv\r\n.\r\n")
    codes.append(c.reply()[0])
    cport = c.s.getsockname()[1]
    c.cmd("QUIT")
    c.close()
    if codes != [220, 250, 250, 250, 354, 250]:
        return None, codes
    new = wait_for(lambda: sorted(set(os.listdir(DUMPS)) - before - {n for n in os.listdir(DUMPS)
                                                                         if n.startswith(".")}), 5)
    if len(new or []) != 1:
        return None, new
    env = {}
    for line in open(os.path.join(DUMPS, new[0])):
        k, _, v = line.rstrip("\n").partition("=")
        env[k] = v
    return env, cport


def normal(env, cport, sport):
    """The environment with the ports replaced by what they must be."""
    e = dict(env)
    for k, want in (("TCPREMOTEPORT", cport), ("TCP6REMOTEPORT", cport),
                    ("TCPLOCALPORT", sport), ("TCP6LOCALPORT", sport)):
        e[k] = "ok" if e.get(k) == str(want) else "bad: %r" % e.get(k)
    return e


def diff(a, b):
    keys = sorted(set(a) | set(b))
    return {k: (a.get(k), b.get(k)) for k in keys if a.get(k) != b.get(k)}


# --- environment parity with tcpserver ---------------------------------
pairs = [("0", "::", [("127.0.0.1", None), ("127.0.0.1", "127.0.0.2"), ("::1", None)]),
         ("0", "0", [("127.0.0.1", None), ("::1", None)]),
         ("::1", "::1", [("::1", None)]),
         ("127.0.0.1", "127.0.0.1", [("127.0.0.1", None), ("127.0.0.1", "127.0.0.2")])]
seen = {}
for ts_host, ls_host, clients in pairs:
    ts, ls = Srv(ts_host, tcpserver=True), Srv(ls_host)
    t.check("tcpserver on %s and the listener on %s listen" % (ts_host, ls_host), ts.port and ls.port,
            (ts.port, ls.port, ls.logtext()))
    for host, source in clients:
        what = "client %s%s, tcpserver %s / listener %s" % (host, " from " + source if source else "",
                                                          ts_host, ls_host)
        te, tp = session_env(ts, host, source)
        le, lp = session_env(ls, host, source)
        if not t.check("a message through each: " + what, te is not None and le is not None, (tp, lp)):
            continue
        tn, ln = normal(te, tp, ts.port), normal(le, lp, ls.port)
        t.check("same environment: " + what, tn == ln, diff(tn, ln))
        seen[(host, source)] = le
    ts.p.terminate()
    ls.p.terminate()

e4 = seen.get(("127.0.0.1", None), {})
t.check("IPv4 client: PROTO=TCP, TCPREMOTEIP, TCP6REMOTEIP in ::ffff: form",
        (e4.get("PROTO"), e4.get("TCPREMOTEIP"), e4.get("TCP6REMOTEIP")) == ("TCP", "127.0.0.1", "::ffff:127.0.0.1"), e4)
t.check("exact rule: RELAYCLIENT and X set, TCPLOCALHOST overridden by the rule",
        (e4.get("R"), e4.get("RELAYCLIENT"), e4.get("X"), e4.get("TCPLOCALHOST"), e4.get("TCP6LOCALHOST"))
        == ("v4", "", "a b", "ruled", "mail.example.test"), e4)
t.check("no TCPREMOTEHOST or TCPREMOTEINFO (-H -R), nor their TCP6 twins",
        not any(k in e4 for k in ("TCPREMOTEHOST", "TCPREMOTEINFO", "TCP6REMOTEHOST", "TCP6REMOTEINFO")), e4)
e42 = seen.get(("127.0.0.1", "127.0.0.2"), {})
t.check("127.0.0.2 takes the 127.0.0. prefix rule", e42.get("R") == "v4prefix" and "RELAYCLIENT" not in e42, e42)
e6 = seen.get(("::1", None), {})
t.check("IPv6 client: PROTO=TCP6, TCPREMOTEIP=::1, its rule",
        (e6.get("PROTO"), e6.get("TCPREMOTEIP"), e6.get("TCP6REMOTEIP"), e6.get("R")) == ("TCP6", "::1", "::1", "v6"), e6)

# The IPv6 prefix and the default rule: the table is read per connection.
ts, ls = Srv("0", tcpserver=True), Srv("::")
compile_rules(RULES.replace("::1:allow", "#"))
for label, rules, want in (("::1 without its rule takes the :: prefix", RULES.replace("::1:allow", "#"), "v6prefix"),
                           ("and then the \"\" rule", RULES.replace("::1:allow", "#").replace(":::allow", "#"), "default")):
    compile_rules(rules)
    te, tp = session_env(ts, "::1")
    le, lp = session_env(ls, "::1")
    if t.check("a message through each (%s)" % want, te is not None and le is not None, (tp, lp)):
        tn, ln = normal(te, tp, ts.port), normal(le, lp, ls.port)
        t.check(label, ln.get("R") == want and tn == ln, diff(tn, ln))
compile_rules(RULES)

# --- deny and RELAYCLIENT ------------------------------------------------
for srv, name in ((ts, "tcpserver"), (ls, "listener")):
    c = C("127.0.0.1", srv.port, "127.0.0.3", greet=False, timeout=5)
    t.check("%s: a denied client is closed without a greeting" % name, c.reply()[0] == 0)
    c.close()
t.check("the listener logs the refusal", wait_for(lambda: "qmail-smtpd-listen event=deny ip=127.0.0.3" in ls.logtext(), 5),
        ls.logtext()[-500:])
c = C("127.0.0.1", ls.port)
t.check("RELAYCLIENT from the rule: 127.0.0.1 may relay",
        c.transaction("s@client.test", ["x@elsewhere.test"]) == [250, 250, 250])
c.close()
c = C("127.0.0.1", ls.port, "127.0.0.2")
t.check("127.0.0.2 may not", c.transaction("s@client.test", ["x@elsewhere.test"]) == [250, 250, 553])
c.close()
ts.p.terminate()
ls.p.terminate()

# --- a message through the real qmail-queue --------------------------------
srv = Srv("127.0.0.1", env={"QMAILQUEUE": ""})
c = C("127.0.0.1", srv.port, "127.0.0.2")
codes = c.transaction("s@client.test", ["u@example.test"])
codes.append(c.cmd("DATA")[0])
c.send("Subject: listen\r\n\r\nthrough the listener\r\n.\r\n")
codes.append(c.reply()[0])
codes.append(c.cmd("QUIT")[0])
c.close()
t.check("a full session: EHLO, MAIL, RCPT, DATA, QUIT", codes == [250, 250, 250, 354, 250, 221], codes)
new = q.new(expect=1)
t.check("one message queued", len(new) == 1, new)
if new:
    msg, sender, opts, rcpts = q.read(new[0])
    t.check("envelope", sender == b"s@client.test" and rcpts == [(b"P", b"u@example.test")], (sender, rcpts))
    first = next((l for l in msg.split(b"\n") if l.startswith(b"Received: from")), b"")
    t.check("Received: names the client address", b"[127.0.0.2]" in first, msg[:300])
    t.check("the session logs its qid (qqpid)", "qqpid=%s" % new[0].rsplit(".", 1)[1] in srv.logtext(),
            srv.logtext()[-500:])
t.check("the listener logs its start", "qmail-smtpd-listen event=start host=127.0.0.1 port=%d limit=40" % srv.port
        in srv.logtext(), srv.logtext()[:300])
rss = 0
for line in open("/proc/%d/status" % srv.p.pid):
    if line.startswith("VmRSS:"):
        rss = int(line.split()[1])
if SANITIZED:
    t.skip("the parent's memory", "ASan's shadow memory counts in it")
else:
    t.check("the parent stays small (VmRSS %d kB < 4 MB)" % rss, 0 < rss < 4096, rss)
srv.p.terminate()

# --- the -c limit, and a crashing session ------------------------------------
srv = Srv("127.0.0.1", limit=2)
a = C("127.0.0.1", srv.port)
b = C("127.0.0.1", srv.port)
t.check("two sessions under -c 2", a.greeting[0] == 220 and b.greeting[0] == 220)
kids = srv.children()
t.check("one child process per session", len(kids) == 2, kids)
# The point of the listener: a session is a fork of it, never an exec of
# qmail-smtpd (the CPU that saves is measured in bench/cpu-listen.py).
exes = [os.readlink("/proc/%d/exe" % k) for k in kids]
t.check("each session is a fork, not an exec", exes and all(os.path.samefile(e, LISTEN) for e in exes), exes)
t.check("no spare beyond the limit", srv.children("qmail-smtpd-lis") == [], srv.children("qmail-smtpd-lis"))
# At the limit a client is answered 421 at once and closed, never left in
# the backlog; the episode is logged once, with its count at the end.
over = [C("127.0.0.1", srv.port, timeout=5) for _ in range(3)]
t.check("beyond the limit: 421 4.3.2 at once, then closed",
        all(o.greeting == (421, "4.3.2 too many connections, try again later") and o.closed(5) for o in over),
        [o.greeting for o in over])
t.check("the episode is logged once, with the limit and the sessions",
        srv.logtext().count("event=limit") == 1 and "event=limit state=full limit=2 sessions=2" in srv.logtext(),
        srv.logtext()[-500:])
t.check("the first session still answers", a.cmd("NOOP")[0] == 250)
a.cmd("QUIT")
a.close()
t.check("its end is logged with the count once a slot is free",
        wait_for(lambda: "event=limit state=ok refused=3 sessions=1" in srv.logtext(), 5), srv.logtext()[-500:])
c = C("127.0.0.1", srv.port, timeout=5)
t.check("when a session ends a new client is served", c.greeting[0] == 220)
victim = [p for p in srv.children() if p in kids]
t.check("the second session's process is known", len(victim) == 1, (kids, srv.children()))
# ASan catches SIGSEGV and exits; SIGKILL is a crash it cannot turn into an exit.
CRASH = signal.SIGKILL if SANITIZED else signal.SIGSEGV
if victim:
    os.kill(victim[0], CRASH)
    t.check("a session killed by %s drops its client" % CRASH.name, b.closed(5))
    t.check("the listener logs the crash",
            wait_for(lambda: "event=crash pid=%d signal=%d" % (victim[0], CRASH) in srv.logtext(), 5),
            srv.logtext()[-500:])
t.check("the parent lives on", srv.p.poll() is None)
t.check("the other session is unaffected", c.cmd("EHLO client.test")[0] == 250
        and c.cmd("MAIL FROM:<s@client.test>")[0] == 250)
d = C("127.0.0.1", srv.port, timeout=5)
t.check("the crashed session's slot is free again", d.greeting[0] == 220)
d.cmd("QUIT")
d.close()
b.close()

# A session ended by SIGTERM (a stop, not a fault) is logged as killed.
srv2 = Srv("127.0.0.1")
e = C("127.0.0.1", srv2.port)
ek = srv2.children()
if len(ek) == 1:
    os.kill(ek[0], signal.SIGTERM)
t.check("a session ended by SIGTERM is logged as killed, not as a crash",
        len(ek) == 1 and wait_for(lambda: "event=killed pid=%d signal=15" % ek[0] in srv2.logtext(), 5)
        and "event=crash pid=%d" % ek[0] not in srv2.logtext(), (ek, srv2.logtext()[-300:]))
e.close()
srv2.p.terminate()

# --- out of descriptors: a 421 and a log line, never silence -----------------
# The parent needs 10 descriptors (0-2, signalfd, socket, two pipes, the
# reserve); with 20 a session would lack some of the 16 it may need on
# the way (TLS, the queue's pipes), and the spare sees it before it starts.
tsrv = Srv("127.0.0.1", wrap=["prlimit", "--nofile=20", "--"])
tight = [C("127.0.0.1", tsrv.port, timeout=5) for _ in range(2)]
t.check("too few descriptors for a session: 421 at once, then closed",
        all(o.greeting == (421, "4.3.2 out of resources, try again later") and o.closed(5) for o in tight),
        [o.greeting for o in tight])
t.check("the condition is logged", wait_for(lambda: tsrv.logtext().count("event=nofiles") == 2, 5),
        tsrv.logtext()[-500:])
t.check("the listener goes on", tsrv.p.poll() is None)
tsrv.p.terminate()

# --- SIGTERM: stop accepting, running sessions finish ------------------------
def running(pid):
    try:
        return open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False



t.check("one session left", wait_for(lambda: len(srv.children()) == 1, 5), srv.children())
spares = wait_for(lambda: srv.children("qmail-smtpd-lis"), 5) or []
t.check("spares wait to accept the next connections", len(spares) >= 1, spares)
srv.p.send_signal(signal.SIGTERM)
try:
    rc = srv.p.wait(10)
except subprocess.TimeoutExpired:
    rc = None
t.check("SIGTERM: the parent exits 0", rc == 0, rc)
t.check("and logs it", "qmail-smtpd-listen event=stop sessions=1" in srv.logtext(), srv.logtext()[-300:])
# The spares hold the socket until they see the parent's pipe close.
t.check("the spares exit without accepting",
        wait_for(lambda: not any(running(p) for p in spares), 10), spares)
try:
    socket.create_connection(("127.0.0.1", srv.port), 2).close()
    refused = False
except OSError:
    refused = True
t.check("no new connection is accepted", refused)
t.check("the spares exit without accepting",
        wait_for(lambda: not any(os.path.exists("/proc/%d" % p) for p in spares), 5), spares)
c.cmd("RCPT TO:<u@example.test>")
t.check("the running session goes on to its end", c.cmd("QUIT")[0] == 221)
c.close()

# --- usage -------------------------------------------------------------------
for argv in ([], ["127.0.0.1"], ["-c", "0", "127.0.0.1", "0"], ["-c", "x", "127.0.0.1", "0"],
             ["not-an-address", "0"], ["127.0.0.1", "65536"], ["-u", "-1", "127.0.0.1", "0"],
             ["-i", "-u", "1", "-g", "1", "127.0.0.1", "0"], ["-t", "1:1", "127.0.0.1", "0"],
             ["-t", "1", "-u", "1", "-g", "1", "127.0.0.1", "0"]):
    r = subprocess.run([LISTEN] + argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=10)
    t.check("usage error exits 100: %s" % " ".join(argv), r.returncode == 100 and b"usage" in r.stderr,
            (r.returncode, r.stderr))

# --- ids ---------------------------------------------------------------------
def ids(pid):
    out = {}
    for line in open("/proc/%d/status" % pid):
        k, _, v = line.partition(":")
        if k in ("Uid", "Gid", "Groups"):
            out[k] = v.split()
    return out


if IS_ROOT and inst.multi:
    uid, gid = inst.uid("smtpd")
    want = {"Uid": [str(uid)] * 4, "Gid": [str(gid)] * 4, "Groups": []}
    srv = Srv("127.0.0.1")
    c = C("127.0.0.1", srv.port)
    kids = srv.children()
    t.check("as root: the parent runs as the smtpd uid and gid, no supplementary group",
            ids(srv.p.pid) == want, ids(srv.p.pid))
    t.check("so does the session", len(kids) == 1 and ids(kids[0]) == want, kids and ids(kids[0]))
    sp = wait_for(lambda: srv.children("qmail-smtpd-lis"), 5) or []
    t.check("and the spares waiting to accept", sp and all(ids(p) == want for p in sp),
            [ids(p) for p in sp])

    # The parent changed uid, so it and its forks are not dumpable: another
    # process of the smtpd uid (another session taken over) can neither
    # ptrace a session nor read its memory or environment through /proc.
    def as_smtpd():
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)
    if kids:
        r = subprocess.run(["cat", "/proc/%d/environ" % kids[0]], preexec_fn=as_smtpd,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=10)
        t.check("the smtpd uid cannot read a session's /proc/PID/environ",
                r.returncode != 0 and not r.stdout and b"ermission denied" in r.stderr, (r.returncode, r.stderr))
    c.cmd("QUIT")
    c.close()
    srv.p.terminate()
    # Without -u/-g nothing is dropped (the single-uid mode's run script).
    srv = Srv("127.0.0.1", ids=False)
    t.check("without -u/-g the ids stay", ids(srv.p.pid)["Uid"] == ["0"] * 4, ids(srv.p.pid))
    srv.p.terminate()
else:
    t.skip("uid, gid and groups", "not root")

t.done()

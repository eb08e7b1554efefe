#!/usr/bin/env python3
"""qmail-metrics and the event counters (lib/metrics.h): known traffic
through a real instance (qmail-smtpd under tcpserver, qmail-send with both
spawners, a remote SMTP sink) moves each counter by exactly what was sent;
the exposition passes promtool check metrics and python3-prometheus-client's
parser; the HTTP mode answers through a real tcpserver as the metrics uid
(404, 405, 400 for the rest); -o writes its file atomically.

Root only: the counter files are the writers' uids', qmail-metrics is
setgid to the queue's group."""
import os, signal, socket, subprocess, sys, time, urllib.error, urllib.request
from harness import T, IS_ROOT, free_port, wait_for
from remote_peers import Sink
from send_harness import DOMAIN, setup, start
from smtpd_harness import Server
from metrics_harness import as_metrics as run_as_metrics, scrape as scrape_inst, values, v

t = T()
if not IS_ROOT:
    t.skip("metrics", "needs root: separate uids")
    t.done()

closed = free_port()          # nothing listens there: connection refused
sink = Sink(t, rcpt=lambda a: "550 5.1.1 no such user" if a.startswith("bad@")
            else "451 4.3.0 try later" if a.startswith("later@") else "250 ok")
inst = setup(t, control={"rcpthosts": [DOMAIN], "maxrcpt": "2", "deadthreshold": "2",
                         "smtproutes": ["far.test:127.0.0.1:%d" % sink.port,
                                        "down.test:127.0.0.1:%d" % closed]})
mu, mg = inst.uid("metrics")
# No catch-all: an unknown local part is refused at RCPT.
au, ag = inst.uid("alias")
with open(inst.path("users", "assign"), "w") as f:
    f.write("".join("=%s:alias:%d:%d:%s:::\n" % (n, au, ag, inst.path("home", n)) for n in ("alice", "bob", "carol")) + ".\n")
subprocess.run([inst.bin("qmail-newu")], check=True)
os.unlink(inst.path("alias", ".qmail-default"))


def as_metrics(argv, **kw):
    return run_as_metrics(inst, argv, **kw)


def scrape():
    return scrape_inst(inst)


# --- layout and privileges as installed -------------------------------------
for f, role in (("send", "send"), ("smtpd", "smtpd"), ("remote", "remote")):
    st = os.stat(inst.path("metrics", f))
    t.check("metrics/%s is %s's, 0644, 4096 bytes" % (f, role),
            st.st_uid == inst.uid(role)[0] and st.st_mode & 0o7777 == 0o644 and st.st_size == 4096,
            "%o uid %d" % (st.st_mode, st.st_uid))
st = os.stat(inst.bin("qmail-metrics"))
t.check("bin/qmail-metrics is setgid to the queue's group",
        st.st_mode & 0o7777 == 0o2755 and st.st_gid == inst.uid("queue")[1], "%o gid %d" % (st.st_mode, st.st_gid))
t.check("the HTTP service is off by default (down file)", os.path.exists(inst.path("service/qmail-metrics/down")))
run = open(inst.path("service/qmail-metrics/run")).read()
t.check("the service runs qmail-metrics under tcpserver on 127.0.0.1:2590 as the metrics uid",
        "tcpserver" in run and "-u %d -g %d 127.0.0.1 2590 " % (mu, mg) in run and "bin/qmail-metrics" in run, run)

rc, text0, err = scrape()
t.check("qmail-metrics -o - as the metrics uid exits 0", rc == 0, err)
base = values(text0)
t.check("as the metrics uid, every source is up (the queue count included)",
        all(v(base, "qmail_metrics_source_up", source=s) == 1 for s in ("send", "smtpd", "remote", "queue")), text0[-400:])
p = subprocess.run(["promtool", "check", "metrics"], input=text0.encode(), stdout=subprocess.PIPE,
                   stderr=subprocess.STDOUT)
t.check("promtool check metrics passes", p.returncode == 0, p.stdout.decode())

# --- known traffic ----------------------------------------------------------
log = inst.path("send.log")
send = start(inst, log)
srv = Server(inst)
# Server's probe of its port was a session too: the baseline comes after it.
t.check("the probe's session is counted", wait_for(
    lambda: v(values(scrape()[1]), "qmail_smtp_sessions_total") == v(base, "qmail_smtp_sessions_total") + 1, 10))
base = values(scrape()[1])
N = 3
for i in range(N):             # accepted, each delivered locally to alice
    c = srv.connect()
    c.transaction("x@client.test", [])
    c.cmd("RCPT TO:<alice@%s>" % DOMAIN)
    c.cmd("DATA")
    code, _ = c.cmd("Subject: m%d\r\n\r\nbody\r\n." % i)
    c.cmd("QUIT")
    c.close()
    t.check("message %d accepted" % i, code == 250, code)
# Refusals: 2 relay, 1 unknown user, 1 limits (maxrcpt 2), 1 content (NUL).
c = srv.connect()
codes = c.transaction("x@client.test", ["a@elsewhere.test", "b@elsewhere.test", "nosuch@" + DOMAIN,
                                        "alice@" + DOMAIN, "bob@" + DOMAIN, "carol@" + DOMAIN])
t.check("RCPT replies: relay, relay, unknown, ok, ok, over maxrcpt",
        codes[2:] == [553, 553, 550, 250, 250, 452], codes)
c.cmd("DATA")
code, _ = c.cmd("Subject: nul\r\n\r\na\0b\r\n.")
t.check("a message with a NUL is refused", code == 554, code)
c.cmd("QUIT")
c.close()
SESSIONS = N + 1

# Remote: one delivered and one failed (a bounce to bob, delivered locally),
# one 4xx deferral, one connection refused.
t.check("injected", inst.inject("bob@" + DOMAIN, ["ok@far.test", "bad@far.test"], "Subject: r\n\nr\n") == 0)
t.check("injected", inst.inject("bob@" + DOMAIN, ["later@far.test"], "Subject: l\n\nl\n") == 0)
t.check("injected", inst.inject("bob@" + DOMAIN, ["x@down.test"], "Subject: d\n\nd\n") == 0)

d = {}


def settled():
    rc, text, _ = scrape()
    if rc:
        return False
    d["text"] = text
    d["vals"] = values(text)
    vals = d["vals"]
    return (v(vals, "qmail_deliveries_total", channel="local", result="delivered") ==
            base[("qmail_deliveries_total", (("channel", "local"), ("result", "delivered")))] + N + 1 and
            v(vals, "qmail_deliveries_total", channel="remote", result="deferred") ==
            base[("qmail_deliveries_total", (("channel", "remote"), ("result", "deferred")))] + 2 and
            v(vals, "qmail_queue_messages") == 2)


t.check("deliveries settle (3 local + the bounce, 2 remote deferrals, 2 messages left)", wait_for(settled, 30),
        d.get("text", "")[:3000])
vals = d["vals"]


def delta(name, **labels):
    return v(vals, name, **labels) - v(base, name, **labels)


expect = [
    (("qmail_smtp_sessions_total", {}), SESSIONS),
    (("qmail_smtp_messages_accepted_total", {}), N),
    (("qmail_smtp_refused_total", {"reason": "relay"}), 2),
    (("qmail_smtp_refused_total", {"reason": "unknown_user"}), 1),
    (("qmail_smtp_refused_total", {"reason": "limits"}), 1),
    (("qmail_smtp_refused_total", {"reason": "content"}), 1),
    (("qmail_smtp_refused_total", {"reason": "dnsbl"}), 0),
    (("qmail_smtp_refused_total", {"reason": "other"}), 0),
    (("qmail_deliveries_total", {"channel": "local", "result": "delivered"}), N + 1),
    (("qmail_deliveries_total", {"channel": "local", "result": "failed"}), 0),
    (("qmail_deliveries_total", {"channel": "remote", "result": "delivered"}), 1),
    (("qmail_deliveries_total", {"channel": "remote", "result": "failed"}), 1),
    (("qmail_deliveries_total", {"channel": "remote", "result": "deferred"}), 2),
    (("qmail_deferrals_total", {"reason": "4xx"}), 1),
    (("qmail_deferrals_total", {"reason": "connect"}), 1),
    (("qmail_deferrals_total", {"reason": "tls"}), 0),
    (("qmail_deferrals_total", {"reason": "local"}), 0),
    (("qmail_bounces_total", {}), 1),
]
for (name, labels), want in expect:
    got = delta(name, **labels)
    t.check("%s%s moved by %d" % (name, labels or "", want), got == want, got)
t.check("one destination held (down.test), none dead",
        v(vals, "qmail_destinations", state="held") == 1 and v(vals, "qmail_destinations", state="dead") == 0,
        (v(vals, "qmail_destinations", state="held"), v(vals, "qmail_destinations", state="dead")))
plain = sum(v(vals, "qmail_tls_out_sessions_total", policy=p, result="plaintext") for p in ("none", "may"))
t.check("each session to the sink (no STARTTLS) counted once as plaintext",
        plain == len(sink.sessions) and plain >= 1, (plain, len(sink.sessions)))
t.check("queue: 2 recipients pending remote, none local, none failed",
        v(vals, "qmail_queue_recipients", state="pending_remote") == 2 and
        v(vals, "qmail_queue_recipients", state="pending_local") == 0 and
        v(vals, "qmail_queue_recipients", state="failed_awaiting_bounce") == 0,
        d["text"][-1500:])
age = v(vals, "qmail_queue_oldest_message_age_seconds")
t.check("the oldest message's age is that of the injected ones", age is not None and 0 <= age < 120, age)
p = subprocess.run(["promtool", "check", "metrics"], input=d["text"].encode(), stdout=subprocess.PIPE,
                   stderr=subprocess.STDOUT)
t.check("promtool check metrics passes after traffic", p.returncode == 0, p.stdout.decode())

# A retry of everything now (SIGALRM, s6-svc -a): down.test fails a second
# time and is marked dead (deadthreshold 2).
os.kill(send.pid, signal.SIGALRM)
d2 = {}


def dead():
    d2["vals"] = values(scrape()[1])
    return v(d2["vals"], "qmail_destinations", state="dead") == 1


t.check("after a second connection failure the destination is dead, no longer counted as held",
        wait_for(dead, 30) and v(d2["vals"], "qmail_destinations", state="held") == 0,
        [(k, x) for k, x in d2.get("vals", {}).items() if "destinations" in k[0]])
t.check("... and that failure counted as a connect deferral",
        v(d2["vals"], "qmail_deferrals_total", reason="connect") - v(base, "qmail_deferrals_total", reason="connect") == 2)

# --- a counter file that is not the writer's own is never written ------------
# qmail-smtpd under tcpserver maps metrics/smtpd at each session's start.
sm = inst.path("metrics", "smtpd")
su, sg = inst.uid("smtpd")
ru = inst.uid("remote")[0]
other = inst.path("metrics", "elsewhere")


def session_ok():
    c = srv.connect()
    ok = c.greeting[0] == 220 and c.cmd("EHLO client.test")[0] == 250 and c.cmd("QUIT")[0] == 221
    c.close()
    return ok


with open(sm, "rb") as f:
    before = f.read()
os.chown(sm, ru, -1)
os.chmod(sm, 0o666)            # writable, but another uid's: still not written
t.check("metrics/smtpd owned by another uid: the session works", session_ok())
time.sleep(0.5)
t.check("... and the file is not written", open(sm, "rb").read() == before)
os.rename(sm, other)
os.chown(other, su, -1)
os.symlink(other, sm)
t.check("metrics/smtpd a symbolic link: the session works", session_ok())
time.sleep(0.5)
t.check("... and its target is not written", open(other, "rb").read() == before)
os.unlink(sm)
with open(sm, "wb") as f:
    f.write(before[:100])
os.chown(sm, su, -1)
t.check("metrics/smtpd of the wrong size: the session works", session_ok())
time.sleep(0.5)
t.check("... and it is left as it was", open(sm, "rb").read() == before[:100])
rc, text, _ = scrape()
t.check("qmail-metrics leaves out what it cannot read, and says so",
        rc == 0 and v(values(text), "qmail_metrics_source_up", source="smtpd") == 0 and
        "qmail_smtp_sessions_total" not in text, text[-300:])
os.unlink(sm)
os.rename(other, sm)
os.chmod(sm, 0o644)

# --- -o FILE: atomic, from the caller's directory, after the group is gone ---
out = inst.path("textfile")
os.mkdir(out)
os.chown(out, mu, mg)
r = as_metrics([inst.bin("qmail-metrics"), "-o", "qmail.prom"], cwd=out)
names = os.listdir(out)
t.check("-o FILE (relative) writes that file and leaves no temporary one", r.returncode == 0 and names == ["qmail.prom"],
        (names, r.stderr))
st = os.stat(os.path.join(out, "qmail.prom"))
t.check("the file is the metrics uid's group's, not the queue's: the group was given up first",
        st.st_gid == mg and st.st_uid == mu, (st.st_uid, st.st_gid))
t.check("the file parses", v(values(open(os.path.join(out, "qmail.prom")).read()), "qmail_bounces_total") is not None)

# --- HTTP through a real tcpserver, as the service runs it -------------------
port = free_port()
svc = inst.spawn(["tcpserver", "-q", "-R", "-H", "-l", "0", "-c", "4", "-u", str(mu), "-g", str(mg),
                  "127.0.0.1", str(port), inst.bin("qmail-metrics")], stdout=subprocess.DEVNULL)


def up():
    try:
        socket.create_connection(("127.0.0.1", port), 1).close()
        return True
    except OSError:
        return False


t.check("tcpserver listens", wait_for(up, 10))
url = "http://127.0.0.1:%d" % port
with urllib.request.urlopen(url + "/metrics", timeout=10) as resp:
    body = resp.read().decode()
    ctype = resp.headers.get("Content-Type")
    t.check("GET /metrics: 200, text format 0.0.4, Connection: close",
            resp.status == 200 and ctype.startswith("text/plain; version=0.0.4") and
            resp.headers.get("Connection") == "close", (resp.status, ctype))
hv = values(body)
t.check("over HTTP the same counters, the queue counted",
        v(hv, "qmail_bounces_total") == v(vals, "qmail_bounces_total") and
        v(hv, "qmail_metrics_source_up", source="queue") == 1, body[-600:])
for path, code in (("/", 404), ("/metrics/x", 404), ("/metricsx", 404), ("/etc/passwd", 404)):
    try:
        urllib.request.urlopen(url + path, timeout=10)
        got = 200
    except urllib.error.HTTPError as e:
        got = e.code
    t.check("GET %s: %d" % (path, code), got == code, got)
for method in ("POST", "PUT", "HEAD", "DELETE"):
    try:
        urllib.request.urlopen(urllib.request.Request(url + "/metrics", method=method, data=b"x" if method in ("POST", "PUT") else None), timeout=10)
        got, allow = 200, None
    except urllib.error.HTTPError as e:
        got, allow = e.code, e.headers.get("Allow")
    t.check("%s /metrics: 405 with Allow: GET" % method, got == 405 and allow == "GET", (got, allow))


def raw(data, wait=15):
    s = socket.create_connection(("127.0.0.1", port), 10)
    s.settimeout(wait)
    try:
        s.sendall(data)
    except OSError:
        pass
    got = b""
    try:
        while True:
            k = s.recv(65536)
            if not k:
                break
            got += k
    except (socket.timeout, ConnectionResetError):
        pass
    s.close()
    return got


r = raw(b"GET /metrics HTTP/1.0\r\n\r\n")
t.check("HTTP/1.0: answered in 1.0, body then close", r.startswith(b"HTTP/1.0 200 ") and b"qmail_bounces_total" in r, r[:80])
r = raw(b"GET /metrics HTTP/1.1\r\nHost: x\r\n" + b"X: " + b"a" * 5000 + b"\r\n\r\n")
t.check("a request head over 4 KiB: 400", r.startswith(b"HTTP/1.1 400 "), r[:80])
r = raw(b"GET /metrics SMTP/1.0\r\n\r\n")
t.check("not HTTP: 400", r.startswith(b"HTTP/1.1 400 "), r[:80])
t0 = time.monotonic()
r = raw(b"GET /metrics HTTP/1.1\r\n", wait=30)
t.check("an unfinished request is cut off after the read timeout (400)", r.startswith(b"HTTP/1.1 400 ") and
        time.monotonic() - t0 < 25, (r[:80], time.monotonic() - t0))

t.done()

#!/usr/bin/env python3
"""The outbound-only container mode: service/container/qmail-container
setup on an installed instance, then qmail-container run (the password
read from its file at start, then s6-svscan on PREFIX/service) as the
container's one command, its logs on its stdout. The smarthost is a Python sink with implicit TLS (certificate
from a CA made here, trusted through TLS_CA) that requires AUTH, named
only in /etc/hosts (bind-mounted in a mount namespace of the supervision
tree, as docker's --add-host writes it): the DNS server knows no such name.
A recipient with an address literal goes through the smarthost too; while
the smarthost is held, mail to ten more domains makes no connection: one
hold, the smarthost's, not one per domain.

With a DKIM key given at run time (Ed25519 here, a file named by
DKIM_KEY_FILE): control/dkim made at start, the key the DKIM uid's, and
the mail signed as d=example.test, which dkimpy verifies against the
record in the loopback DNS server.

sendmail from root: the smarthost gets it once, with the envelope sender
and From: rewritten (control/rewritesender) and after AUTH; nothing
listens; smarthost down, then up and a flush (SIGALRM): delivered once; a
550 from the smarthost: the bounce goes to the rewritten sender through
the smarthost, from <>; when that bounce is refused too, the double bounce
is dropped locally, never sent anywhere.

As root the instance is multi-uid (the harness's); the single-uid "one
normal user" case is the same scripts run by that user (service/install
picks single-uid mode), checked here only when not root."""
import base64, os, re, ssl, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import T, Instance, IS_ROOT, ROOT, free_port, processes_under, stop_svscan, wait_for
from remote_peers import Dns, Sink, txt_lookup
try:
    import dkim
except ImportError:
    sys.path.append("/usr/lib/python3/dist-packages")
    import dkim
from tls_harness import CA

t = T()
QC = os.path.join(ROOT, "service", "container", "qmail-container")
inst = Instance(t)
ca = CA(t)
cert, key = ca.issue("smarthost.test", "ec")
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
PW = "container-secret"
port = free_port()
EXT = ["PIPELINING", "8BITMIME", "AUTH PLAIN LOGIN"]


def smarthost(**kw):
    return Sink(t, port=port, tls=ctx, ext=EXT, auth={"app": PW}, **kw)


sink = smarthost()
# The DKIM key's record; NXDOMAIN for smarthost.test: only /etc/hosts names it.
ED = os.path.join(ROOT, "tests", "dkim-keys", "ed.pem")
ED_PUB = base64.b64encode(subprocess.run(["openssl", "pkey", "-in", ED, "-pubout", "-outform", "DER"],
                                         capture_output=True, check=True).stdout[-32:]).decode()
dns = Dns(t, ["--txt-record=e1._domainkey.example.test,v=DKIM1; k=ed25519; p=" + ED_PUB])
t.check("dnsmasq answers", dns.ok)
inst.control("dnsserver", "127.0.0.1:%d" % dns.port)

pwfile = inst.path("smarthost-password")
with open(pwfile, "w") as f:
    f.write(PW + "\n")
env = dict(os.environ, PREFIX=inst.prefix, SMARTHOST="smarthost.test:%d" % port, SMARTHOST_TLS="implicit",
           SMARTHOST_USER="app", SMARTHOST_PASSWORD_FILE=pwfile, REWRITE_SENDER="noreply@example.test",
           CONTAINER_ME="app.example.test", TLS_CA=ca.cert)
r = subprocess.run(["sh", QC, "setup"], env=env,
                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
t.check("service/container setup", r.returncode == 0, r.stdout)
t.check("no password in the settings kept", PW not in open(inst.path("control", "container")).read())
services = sorted(n for n in os.listdir(inst.path("service")) if not n.startswith("."))   # .s6-svscan: s6-svscan's own
t.check("only qmail-send is left to supervise", services == ["qmail-send"], services)
t.check("route: implicit TLS, verified", open(inst.path("control", "smtproutes")).read()
        == ":smarthost.test:%d tls=implicit\n" % port)
st = os.stat(inst.path("control", "smtpauth"))
t.check("control/smtpauth: remote uid, 0400", st.st_mode & 0o777 == 0o400 and
        st.st_uid == inst.uid("remote")[0], (oct(st.st_mode), st.st_uid))
r = subprocess.run(["sh", QC, "setup"],
                   env=dict(env, SMARTHOST="bad host"), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
t.check("setup refuses a bad SMARTHOST", r.returncode == 100, r.stdout)
r = subprocess.run(["sh", QC, "setup"], env=dict(env, DKIM_DOMAIN="example.test"),
                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
t.check("setup refuses a DKIM domain without its key and selector", r.returncode == 100 and
        b"go together" in r.stdout, r.stdout)
r = subprocess.run(["sh", QC, "setup"], env=dict(env, DKIM_DOMAIN="example.test", DKIM_SELECTOR="../x",
                                               DKIM_KEY_FILE="/dev/null"),
                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
t.check("... and a selector that is not DNS labels", r.returncode == 100 and b"bad DKIM_SELECTOR" in r.stdout,
        r.stdout)


def run(*argv, timeout=30):
    return subprocess.run(list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)


P = inst.prefix


def leftovers():
    return processes_under(P, cmdline=False)


svlog = open(P + "-svscan.log", "wb")
hosts = inst.path("etc-hosts")
with open(hosts, "w") as f:
    f.write("127.0.0.1\tlocalhost\n# added by the container engine\n127.0.0.1\tsmarthost.test smarthost\n")
scan = inst.spawn(["unshare", "-m", "sh", "-c", 'mount --bind "$0" /etc/hosts && exec "$@"', hosts,
                   "sh", QC, "run"], env=dict(env, DKIM_KEY_FILE=ED, DKIM_DOMAIN="example.test",
                                              DKIM_SELECTOR="e1"), stdout=svlog,
                  stderr=subprocess.STDOUT, start_new_session=True)


def stop_scan():
    stop_svscan(scan, P, inst.path("service"))


t.cleanups.append(stop_scan)


def up():
    out = run("s6-svstat", "-o", "up", inst.path("service", "qmail-send")).stdout.decode().strip()
    return out == "true"


t.check("qmail-send up under s6-svscan", wait_for(up, 20))


def log():
    """The container's stdout: every service's log (CONTAINER_LOG=stdout)."""
    try:
        return open(P + "-svscan.log", errors="replace").read()
    except OSError:
        return ""


t.check("its log lines on the container's stdout", wait_for(lambda: "qmail-send event=start" in log(), 10),
        log()[-1000:])


def listening():
    """Sockets in LISTEN state owned by this instance's processes."""
    inodes = set()
    for pid in leftovers():
        try:
            for fd in os.listdir("/proc/%d/fd" % pid):
                link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
                if link.startswith("socket:["):
                    inodes.add(link[8:-1])
        except OSError:
            pass
    found = []
    for f in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in open(f).read().splitlines()[1:]:
            parts = line.split()
            if parts[3] == "0A" and parts[9] in inodes:
                found.append(parts[1])
    return found


t.check("no listening socket", wait_for(lambda: leftovers(), 5) and listening() == [], listening())


def sendmail(msg, *args):
    return subprocess.run([inst.bin("sendmail")] + list(args), input=msg.encode(),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30,
                          env=dict(os.environ, USER="root", LOGNAME="root"))


def got(s, n=1):
    return wait_for(lambda: sum(len(x.data) for x in s.sessions) >= n, 30)


def delivered(s):
    return [x for x in s.sessions if x.data]


# --- mail from root through the smarthost ------------------------------------
r = sendmail("Subject: cron job\n\nthe output\n", "ops@far.test")
t.check("sendmail queued", r.returncode == 0, r.stderr)
t.check("the smarthost received it", got(sink), log())
time.sleep(1)
d = delivered(sink)
t.check("once", len(d) == 1 and len(d[0].data) == 1, [x.commands for x in sink.sessions])
if d:
    s = d[0]
    body = s.data[0].decode("utf-8", "replace")
    t.check("after AUTH PLAIN as app", s.auth == [("PLAIN", "app", True)], s.commands)
    t.check("envelope sender rewritten", "MAIL FROM:<noreply@example.test>" in s.commands, s.commands)
    t.check("From: rewritten", re.search(r"^From: noreply@example\.test\r$", body, re.M), body)
    t.check("nothing names root@", "root@" not in body and not any("root@" in c for c in s.commands),
            (body, s.commands))
    t.check("RCPT as given", "RCPT TO:<ops@far.test>" in s.commands, s.commands)
    wire = re.sub(rb"(?m)^\.", b"", s.data[0][:-3])
    t.check("signed with the key given at run time (Ed25519, d=example.test): dkimpy verifies it",
            re.search(rb"^DKIM-Signature:.*a=ed25519-sha256;.*d=example\.test;", wire, re.M | re.S) and
            dkim.verify(wire, dnsfunc=lambda name, timeout=5: txt_lookup(dns.port, name)), body[:900])
    kst = os.stat(inst.path("control", "dkim", "example.test", "e1.key"))
    t.check("the key: the DKIM uid's, 0400", kst.st_uid == inst.uid("dkim")[0] and kst.st_mode & 0o777 == 0o400,
            (kst.st_uid, oct(kst.st_mode)))

r = sendmail("From: Cron Daemon <root>\nTo: ops@far.test\nSubject: hdr\n\nx\n", "-t")
t.check("sendmail -t with a local From:", r.returncode == 0, r.stderr)
t.check("delivered", got(sink, 2), log())
s = delivered(sink)[-1]
body = s.data[-1].decode("utf-8", "replace")
t.check("a local From: header is replaced, display name too",
        re.search(r"^From: noreply@example\.test\r$", body, re.M) and "Cron Daemon" not in body, body)

r = sendmail("From: Someone <someone@example.org>\nSubject: own\n\nx\n", "-f", "someone@example.org",
             "ops@far.test")
t.check("delivered", got(sink, 3), log())
s = delivered(sink)[-1]
body = s.data[-1].decode("utf-8", "replace")
t.check("a non-local sender and From: are kept",
        "MAIL FROM:<someone@example.org>" in s.commands and "From: Someone <someone@example.org>" in body,
        (s.commands, body))

r = sendmail("Subject: literal\n\ntoken-literal\n", "someone@[192.0.2.7]")
t.check("delivered", got(sink, 4), log())
s = delivered(sink)[-1]
t.check("an address literal recipient goes through the smarthost, after AUTH",
        "RCPT TO:<someone@[192.0.2.7]>" in s.commands and s.auth == [("PLAIN", "app", True)] and
        b"token-literal" in s.data[-1], s.commands)

# --- smarthost down (it answers 421), then up ----------------------------------
sink.close()
sink = smarthost(greeting="421 4.3.2 down for maintenance")
r = sendmail("Subject: while down\n\ntoken-down\n", "ops@far.test")
t.check("queued while the smarthost is down", r.returncode == 0, r.stderr)
HOP = "smarthost.test:%d" % port
t.check("deferred; the smarthost is held",
        wait_for(lambda: re.search(r"result=deferred", log()) and
                 "event=dest domain=%s state=held" % HOP in log(), 30), log()[-2000:])
tried = len(sink.sessions)
for k in range(10):
    r = sendmail("Subject: to d%d\n\ntoken-d%d-\n" % (k, k), "ops@d%d.test" % k)
    t.check("queued for d%d.test" % k, r.returncode == 0, r.stderr)
time.sleep(3)
t.check("while it is held, ten more domains make no connection", len(sink.sessions) == tried,
        (tried, len(sink.sessions)))
held = {l.split("domain=")[1].split()[0] for l in log().splitlines() if "event=dest" in l and "state=held" in l}
t.check("one hold: the smarthost's, not one per domain", held == {HOP}, held)
sink.close()
sink = smarthost()
run("s6-svc", "-a", inst.path("service", "qmail-send"))
t.check("after SIGALRM: delivered", got(sink, 11), log()[-2000:])
time.sleep(2)
run("s6-svc", "-a", inst.path("service", "qmail-send"))
time.sleep(2)
d = delivered(sink)
toks = sorted(re.findall(rb"token-[a-z0-9]+", b"".join(m for x in d for m in x.data)))
t.check("each delivered once",
        toks == sorted([b"token-down"] + [b"token-d%d" % k for k in range(10)]), toks)
t.check("the queue is empty", wait_for(lambda: inst.queue_files() == [], 10), inst.queue_files())

# --- permanent failure: bounce to the rewritten sender, through the smarthost -----
sink.close()
sink = smarthost(rcpt=lambda a: "550 5.1.1 no such user" if a.startswith("nobody") else "250 ok")
r = sendmail("Subject: to nobody\n\ntoken-bounce\n", "nobody@far.test")
t.check("queued", r.returncode == 0, r.stderr)


def bounce():
    for x in sink.sessions:
        if x.data and "MAIL FROM:<>" in x.commands:
            return x
    return None


b = wait_for(bounce, 30)
t.check("the bounce reached the smarthost from <>", b is not None, [x.commands for x in sink.sessions])
if b:
    t.check("addressed to the rewritten sender", "RCPT TO:<noreply@example.test>" in b.commands, b.commands)
    t.check("it quotes the failure", b"no such user" in b.data[0] and b"nobody@far.test" in b.data[0])
t.check("the queue is empty", wait_for(lambda: inst.queue_files() == [], 20), inst.queue_files())

# --- the bounce bounces: dropped, never sent ---------------------------------------
sink.close()
sink = smarthost(rcpt=lambda a: "550 5.1.1 refused" if a.startswith(("nobody", "noreply")) else "250 ok")
r = sendmail("Subject: double\n\ntoken-double\n", "nobody@far.test")
t.check("queued", r.returncode == 0, r.stderr)
t.check("the double bounce is dropped locally",
        wait_for(lambda: re.search(r"rcpt=doublebounce@localhost channel=local result=delivered", log()), 40),
        log()[-3000:])
t.check("the queue is empty", wait_for(lambda: inst.queue_files() == [], 20), inst.queue_files())
t.check("no session ever sent the double bounce",
        not any(c.startswith("MAIL FROM:<#@[]>") or "doublebounce" in c for x in sink.sessions for c in x.commands),
        [x.commands for x in sink.sessions])
t.check("nothing kept in the alias Maildir", inst.maildir(inst.path("alias", "Maildir")) == [])

t.check("no password in the log", PW not in log())

stop_scan()
t.check("s6-svscanctl -t leaves no process", wait_for(lambda: leftovers() == [], 10), leftovers())
if IS_ROOT:
    t.skip("as one non-root user", "root: the harness instance is multi-uid; run the tests as a "
           "normal user for the single-uid case")
else:
    t.check("single-uid instance", not inst.multi)

t.done()

#!/usr/bin/env python3
"""The outbound container as a container engine runs it, without one,
by README's recipe: its engine-less lines are read from README and run
as written (only the example values replaced: prefix, directory, the
smarthost's port, .test domains). make container-rootfs makes the
runtime root file system (the Containerfile's second stage) and its
tarball; service/container/run-rootfs runs it with unshare (mount and pid
namespaces) and chroot, so no host file is visible, as uid 1000650000
with group 0, which is not the uid the image was made by and has no
/etc/passwd entry (as OpenShift runs images), all of it in a network
namespace of its own (loopback only: no resolver, nothing outside). The
smarthost is a sink with real STARTTLS and AUTH on that loopback, named
only in the root's /etc/hosts. Settings come at run time (the password
from a secret file, read at start), logs go to the container's stdout.

Checked: a refused setup (bad SMARTHOST_TLS) stops make container before
anything is installed; the tarball holds no password, no DKIM key and no
SMTP server; mail from the application is relayed after STARTTLS and
AUTH with the sender rewritten, unsigned (no key given); an address
literal goes through the smarthost too; mail to root goes to LOCAL_TO,
its To: header qualified, though the host name has no dot; a bounce goes
through the smarthost to LOCAL_TO, not to the no-reply sender, with a
From: in the rewritten sender's domain; the processes run as that uid,
group 0, no other group; sendmail -q works. A second start given only
BOUNCE_TO and the DKIM key (DKIM_KEY_FILE, DKIM_DOMAIN, DKIM_SELECTOR)
keeps every other setting; the application's mail and the bounce (to
BOUNCE_TO) are signed, and dkimpy verifies them against the record
published in a DNS server on the loopback."""
import base64, os, re, shutil, ssl, subprocess, sys, tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import T, ROOT, BUILD, PREFIX, IS_ROOT, free_port, wait_for

# A network namespace of our own, loopback only: the sink and the
# container meet there, and nothing can reach the machine's resolver.
if IS_ROOT and not os.environ.get("QMAIL_TEST_NETNS") and shutil.which("unshare"):
    os.execvpe("unshare", ["unshare", "-n", "--", "sh", "-c", 'ip link set lo up && exec "$@"', "sh",
                           sys.executable, os.path.abspath(__file__)],
               dict(os.environ, QMAIL_TEST_NETNS="1"))

from remote_peers import Dns, Sink, txt_lookup
from tls_harness import CA
try:
    import dkim
except ImportError:
    sys.path.append("/usr/lib/python3/dist-packages")
    import dkim

t = T()
missing = [p for p in ("busybox", "unshare", "chroot", "setpriv", "s6-svscan", "ldd", "strip")
           if not shutil.which(p)]
if not IS_ROOT or missing or not PREFIX:
    t.skip("the root file system", "needs root, PREFIX and %s" % (missing or "nothing more"))
    t.done()

P = PREFIX
uid = 1000650000          # run-rootfs's default RUN_UID: not the image's (CONTAINER_UID), in no passwd
RUNROOTFS = os.path.join(ROOT, "service", "container", "run-rootfs")
work = tempfile.mkdtemp(prefix="qmail-rootfs-")
os.chmod(work, 0o755)     # the image's uid installs under it
t.cleanups.append(lambda: shutil.rmtree(work, ignore_errors=True))
root = os.path.join(work, "fs")


def run(argv, **kw):
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120, **kw)


# --- a refused setup installs nothing ------------------------------------------------
shutil.rmtree(P, ignore_errors=True)
r = run(["make", "-s", "-C", ROOT, "container", "BUILD=" + BUILD, "PREFIX=" + P,
         "SMARTHOST=relay.test:587", "SMARTHOST_TLS=sometimes"])
t.check("make container with SMARTHOST_TLS=sometimes: refused", r.returncode != 0 and
        b"SMARTHOST_TLS is starttls or implicit" in r.stdout, r.stdout[-500:])
t.check("... before anything is installed", not os.path.exists(P), os.listdir(P) if os.path.exists(P) else "")


# --- README's recipe without an engine, its lines as written --------------------------
def recipe():
    """The indented block after "runs these lines" in README's container
    section, continuation lines joined: one command a line."""
    text = open(os.path.join(ROOT, "README.md")).read()
    sec = text[text.index("### An outbound-only container"):]
    sec = sec[:sec.index("\n### ")]
    lines, cur, started = [], "", False
    for l in sec[sec.index("runs these lines"):].split("\n")[1:]:
        if not l.startswith("    "):
            if started:
                break
            continue
        started = True
        cur += l.strip()
        if cur.endswith("\\"):
            cur = cur[:-1]
        else:
            lines.append(cur)
            cur = ""
    return lines


port = free_port()
pwfile = os.path.join(work, "smtp-password")
msgfile = os.path.join(work, "message")
# The recipe's example values, and this test's: the build's prefix, a
# work directory, the sink's port, .test domains, the files.
SUBST = [("/opt/qmail", P), ("/srv/mail", root), ("smtp.example.org:587", "relay.test:%d" % port),
         ("example.org", "example.test"), ("smtp-password", pwfile), ("< message", "< " + msgfile)]
steps = recipe()
t.check("README: four engine-less steps (build, secret, start, sendmail)",
        len(steps) == 4 and steps[0].startswith("make container-rootfs ") and
        steps[1].startswith("install ") and steps[2].endswith("&") and " -- sendmail " in steps[3], steps)
if len(steps) != 4:
    t.done()
cmds = []
for c in steps:
    for k, v in SUBST:
        c = c.replace(k, v)
    cmds.append(c)
print("\n".join(cmds), flush=True)

PW = "rootfs-secret"
with open(pwfile, "w") as f:
    f.write(PW + "\n")
with open(msgfile, "w") as f:
    f.write("Subject: app\n\ntoken-app\n")
sh_env = dict(os.environ, BUILD=BUILD)
sh_env.pop("PREFIX", None)
r = run(["sh", "-c", cmds[0]], cwd=ROOT, env=sh_env)
tarball = root + ".tar.gz"
t.check("README: make container-rootfs makes the root and its tarball", r.returncode == 0 and
        os.path.isfile(tarball), r.stdout[-2000:])
if r.returncode:
    t.done()
print(r.stdout.decode().strip().splitlines()[-1], flush=True)
names = run(["tar", "-tzf", tarball]).stdout.decode().split()
t.check("no password and no SMTP server in the image",
        not any(n.endswith(("/control/smtpauth", "/bin/qmail-smtpd", "/bin/qmail-queued")) for n in names),
        [n for n in names if "smtp" in n])
t.check("no DKIM key in the image, the signer in it",
        not any(n.endswith(".key") for n in names) and any(n.endswith("/bin/qmail-dkim") for n in names),
        [n for n in names if "dkim" in n])
r = run(["sh", "-c", cmds[1]], cwd=ROOT, env=sh_env)
t.check("README: the secret installed", r.returncode == 0, r.stdout)
t.check("the uid has no /etc/passwd entry, the image's has",
        not re.search(r"^[^:]*:[^:]*:%d:" % uid, open(os.path.join(root, "etc", "passwd")).read(), re.M) and
        re.search(r"^app:x:10001:0:", open(os.path.join(root, "etc", "passwd")).read(), re.M))

# What the engine gives and the recipe assumes: /etc/hosts naming the
# smarthost (HOSTS, as --add-host), the CA that signed its certificate
# among the system's; a second secret, the DKIM key (root's, group 0
# reads it, as a platform mounts one), and its record in a DNS server on
# the loopback.
hosts = os.path.join(work, "hosts")
with open(hosts, "w") as f:
    f.write("127.0.0.1\tlocalhost\n127.0.0.1\trelay.test\n")
ca = CA(t)
cert, key = ca.issue("relay.test", "ec")
os.makedirs(os.path.join(root, "etc", "ssl", "certs"), exist_ok=True)
with open(os.path.join(root, "etc", "ssl", "certs", "ca-certificates.crt"), "a") as f:
    f.write(open(ca.cert).read())
KEY = os.path.join(ROOT, "tests", "dkim-keys", "rsa2048.pem")
shutil.copy(KEY, os.path.join(root, "run", "secrets", "dkim"))
os.chown(os.path.join(root, "run", "secrets", "dkim"), 0, 0)
os.chmod(os.path.join(root, "run", "secrets", "dkim"), 0o440)
pub = base64.b64encode(subprocess.run(["openssl", "pkey", "-in", KEY, "-pubout", "-outform", "DER"],
                                      capture_output=True, check=True).stdout).decode()
record = "v=DKIM1; k=rsa; p=" + pub
dns = Dns(t, ["--txt-record=c1._domainkey.example.test,%s" %
              ",".join(record[i:i + 200] for i in range(0, len(record), 200))])
t.check("dnsmasq answers the key record", dns.ok and txt_lookup(dns.port, "c1._domainkey.example.test") ==
        record.encode())

ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
sink = Sink(t, port=port, starttls=ctx, ext=["PIPELINING", "8BITMIME", "STARTTLS", "AUTH PLAIN LOGIN"],
            auth={"app": PW}, rcpt=lambda a: "550 5.1.1 no such user" if a.startswith("nobody") else "250 ok")
run_env = dict(sh_env, HOSTS=hosts)


def inside(*argv):
    """argv in the root as the container's uid, group 0 (run-rootfs --)."""
    return ["sh", RUNROOTFS, root, "--"] + list(argv)


r = run(inside("/bin/ls", "/", "/etc"))
t.check("no host file is visible", r.returncode == 0 and b"os-release" not in r.stdout and
        b"passwd" in r.stdout and b"proc" not in r.stdout, r.stdout)

out_path = os.path.join(work, "stdout")


def start(argv):
    out = open(out_path, "ab")
    p = subprocess.Popen(argv, cwd=ROOT, env=run_env, stdin=subprocess.DEVNULL, stdout=out,
                         stderr=subprocess.STDOUT, start_new_session=True)
    out.close()
    return p


def stop(p):
    run(inside("/usr/bin/s6-svscanctl", "-t", P + "/service"))
    try:
        p.wait(30)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait(10)


def stdout():
    return open(out_path, errors="replace").read()


def ours():
    """pid -> (name, uid, gid, supplementary groups) of the processes in our root."""
    found = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            if os.readlink("/proc/%s/root" % d) != root:
                continue
            st = dict(l.split(":", 1) for l in open("/proc/%s/status" % d).read().splitlines() if ":" in l)
            found[int(d)] = (st["Name"].strip(), int(st["Uid"].split()[0]), int(st["Gid"].split()[0]),
                             st["Groups"].split())
        except (OSError, KeyError, ValueError):
            pass
    return found


p = start(["sh", "-c", cmds[2][:-1]])      # README's start line, without its "&"
t.cleanups.append(lambda: p.poll() is None and stop(p))
t.check("qmail-send starts; its log line is on the container's stdout",
        wait_for(lambda: "qmail-send event=start" in stdout(), 30), stdout()[-2000:])
procs = ours()
t.check("every process runs as the random uid, group 0, no other group",
        procs and all(u == uid and g == 0 and not gs for _, u, g, gs in procs.values()), procs)
t.check("qmail-send and its spawners among them",
        {"qmail-send", "qmail-lspawn", "qmail-rspawn"} <= {n for n, _, _, _ in procs.values()}, procs)
t.check("no log file: stdout only", not os.path.exists(os.path.join(root, P.lstrip("/"), "log", "qmail-send", "current")))
auth_file = os.path.join(root, P.lstrip("/"), "control", "smtpauth")
t.check("the password was read at start", os.path.exists(auth_file) and PW in open(auth_file).read())


def sendmail(msg, *args):
    return run(inside("sendmail", *args), input=msg.encode())


def got(n):
    return wait_for(lambda: sum(len(x.data) for x in sink.sessions) >= n, 30)


def delivered():
    return [x for x in sink.sessions if x.data]


def data_with(token):
    """The bytes of the first message holding token (a session may carry several)."""
    for x in delivered():
        for d in x.data:
            if token in d:
                return d
    return b""


def session_with(token):
    for x in delivered():
        if any(token in d for d in x.data):
            return x
    return None


r = run(["sh", "-c", cmds[3]], cwd=ROOT, env=run_env)
t.check("README: sendmail as the uid", r.returncode == 0, r.stdout)
t.check("relayed", wait_for(lambda: session_with(b"token-app"), 30), stdout()[-2000:])
s = session_with(b"token-app")
if s:
    t.check("after STARTTLS and AUTH PLAIN", s.tls and s.auth == [("PLAIN", "app", True)], s.commands)
    t.check("sender rewritten", "MAIL FROM:<noreply@example.test>" in s.commands, s.commands)
    t.check("no DKIM key given: sent unsigned", not re.search(rb"^DKIM-Signature:", data_with(b"token-app"), re.I | re.M),
            data_with(b"token-app")[:600])

r = sendmail("Subject: lit\n\ntoken-literal\n", "someone@[192.0.2.7]")
t.check("an address literal goes through the smarthost",
        wait_for(lambda: session_with(b"token-literal"), 30) and
        "RCPT TO:<someone@[192.0.2.7]>" in session_with(b"token-literal").commands, stdout()[-2000:])

r = sendmail("To: root\nSubject: cron\n\ntoken-root\n", "root")
t.check("mail to root goes to LOCAL_TO through the smarthost",
        wait_for(lambda: session_with(b"token-root"), 30) and
        "RCPT TO:<ops@example.test>" in session_with(b"token-root").commands, stdout()[-3000:])
s = session_with(b"token-root")
t.check("... its To: header qualified (sendmail qualifies header addresses)",
        re.search(rb"^To: root@[A-Za-z0-9.-]+\r?$", data_with(b"token-root"), re.M), data_with(b"token-root")[:600])

r = sendmail("Subject: nobody\n\ntoken-bounce\n", "nobody@far.test")


def bounce(n=1):
    """(session, bytes) of the n-th bounce of mail to nobody@far.test the sink got."""
    found = [(x, d) for x in delivered() if "MAIL FROM:<>" in x.commands
             for d in x.data if b"nobody@far.test" in d and b"\r\nAuto-Submitted: auto-replied" in d]
    return found[n - 1] if len(found) >= n else None


b = wait_for(bounce, 30)
t.check("the bounce goes through the smarthost to LOCAL_TO, not the rewritten sender",
        b and re.search(rb"^To: ops@example\.test\r?$", b[1], re.M), stdout()[-3000:])
if b:
    t.check("its From: is in the rewritten sender's domain",
            re.search(rb"^From: [^\r\n]*@example\.test\r?$", b[1], re.M), b[1][:600])

r = run(inside("sendmail", "-q"))
t.check("sendmail -q (flush) as the uid", r.returncode == 0, r.stdout)
lines = [l for l in stdout().splitlines() if l.startswith("qmail-")]
t.check("stdout: one key=value line per event",
        lines and all(re.match(r"^qmail-[a-z]+ event=\w+( [a-z_]+=\S*)*", l) for l in lines),
        [l for l in lines if not re.match(r"^qmail-[a-z]+ event=\w+", l)][:5])
t.check("no password on stdout", PW not in stdout())



def verifies(data):
    """Every DKIM-Signature of data, as the sink received it, verifies with dkimpy,
    the key looked up in the loopback DNS server; and there is one, d=
    example.test."""
    wire = re.sub(rb"(?m)^\.", b"", data[:-3] if data.endswith(b"\r\n.\r\n") else data)   # SMTP's dots undone
    head = wire.split(b"\r\n\r\n", 1)[0]     # a bounce quotes the signed header in its body
    n = len(re.findall(rb"^DKIM-Signature:", head, re.I | re.M))
    d = dkim.DKIM(wire)
    return n > 0 and re.search(rb"^DKIM-Signature:.*d=example\.test;", head, re.I | re.M | re.S) and \
        all(d.verify(idx=i, dnsfunc=lambda name, timeout=5: txt_lookup(dns.port, name)) for i in range(n))


# --- a second start, more settings given: the others kept --------------------------------
stop(p)
t.check("stopped: no process left", wait_for(lambda: not ours(), 10), ours())
p = start(["sh", RUNROOTFS, root, "CONTAINER_ME=app.example.test", "BOUNCE_TO=bounces@example.test",
           "DKIM_KEY_FILE=/run/secrets/dkim", "DKIM_DOMAIN=example.test", "DKIM_SELECTOR=c1"])
t.check("started again with BOUNCE_TO and the DKIM key",
        wait_for(lambda: stdout().count("qmail-send event=start") >= 2, 30), stdout()[-2000:])
kpath = os.path.join(root, P.lstrip("/"), "control", "dkim", "example.test", "c1.key")
kst = os.stat(kpath) if os.path.exists(kpath) else None
t.check("the key copied at start: the uid's, 0400", kst and kst.st_uid == uid and kst.st_mode & 0o777 == 0o400,
        kst and (kst.st_uid, oct(kst.st_mode)))
r = sendmail("From: App <app@localhost>\nSubject: again\n\ntoken-again\n", "ops@far.test")
t.check("sendmail as the uid", r.returncode == 0, r.stdout)
s = wait_for(lambda: session_with(b"token-again"), 30)
t.check("still relayed after STARTTLS and AUTH, sender rewritten",
        s and s.tls and s.auth == [("PLAIN", "app", True)] and "MAIL FROM:<noreply@example.test>" in s.commands,
        s.commands if s else stdout()[-2000:])
t.check("signed: dkimpy verifies it (d=example.test, key from the loopback DNS)", s and verifies(data_with(b"token-again")),
        data_with(b"token-again")[:1200])
r = sendmail("Subject: nobody\n\ntoken-bounce2\n", "nobody@far.test")
b = wait_for(lambda: bounce(2), 30)
t.check("its bounce goes to BOUNCE_TO", b and re.search(rb"^To: bounces@example\.test\r?$", b[1], re.M),
        b[1][:600] if b else stdout()[-2000:])
t.check("signed too, and verifies", b and verifies(b[1]), b and b[1][:1200])
stop(p)
t.done()

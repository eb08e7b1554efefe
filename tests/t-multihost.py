#!/usr/bin/env python3
"""Several hosts, each a whole instance in network namespaces the test makes.

A primary MX (mx1, preference 10) and a backup MX (mx2, 20) for
example.test, an outbound hub, and two submitting hosts, on a private
network (10.99.0.0/24 inside the namespaces only, a bridge in a namespace
of its own) with dnsmasq in that namespace as every host's control/dnsserver.
Each host runs its own s6-svscan on its own installed tree: a mount
namespace binds it over PREFIX (the prefix is compiled in), so the three
instances are one build.

  1. app1 -> hub (relaying for the private network) -> MX -> primary.
  2. The primary is stopped: mail goes to the backup, which queues it;
     the primary returns, the backup is told to retry (s6-svc -a) and
     hands everything over.
  3. app1 and app2 together send MULTIHOST_MESSAGES (default 500; 10000
     in make check-multihost) through the hub to the primary.
Every message is counted at the primary by its token: none lost, none twice.
Root only (namespaces, mounts).
"""
import hashlib, os, shutil, signal, subprocess, sys, tempfile, textwrap, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness
from harness import T, IS_ROOT, free_ids, wait_for

t = T()
if not IS_ROOT or not shutil.which("ip") or not shutil.which("unshare"):
    t.skip("several hosts", "needs root, ip and unshare")
    t.done()

N = int(os.environ.get("MULTIHOST_MESSAGES", "500"))
PREFIX = harness.PREFIX
TAG = "qmmh%d" % (os.getpid() % 100000)
NET = "10.99.%d" % (os.getpid() % 200 + 20)   # a /24 of its own per run
HOSTS = {"mx1": 11, "mx2": 12, "hub": 13, "app1": 21, "app2": 22}
INSTANCES = ("mx1", "mx2", "hub")
top = tempfile.mkdtemp(prefix="qmmh.")
os.chmod(top, 0o755)
procs = []


def sh(*argv, check=True, **kw):
    r = subprocess.run(list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120, **kw)
    if check and r.returncode:
        raise SystemExit("%s: %s" % (" ".join(argv), r.stdout.decode(errors="replace")))
    return r


def ns(h):
    return "%s-%s" % (TAG, h)


def cleanup():
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
    for h in list(HOSTS) + ["sw"]:
        subprocess.run(["ip", "netns", "pids", ns(h)], stdout=subprocess.PIPE)
        r = subprocess.run(["ip", "netns", "pids", ns(h)], stdout=subprocess.PIPE)
        for pid in r.stdout.split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        subprocess.run(["ip", "netns", "del", ns(h)], stderr=subprocess.DEVNULL)
    shutil.rmtree(top, ignore_errors=True)


t.cleanups.append(cleanup)

# --- the network ---------------------------------------------------------------
sh("ip", "netns", "add", ns("sw"))
sh("ip", "-n", ns("sw"), "link", "add", "br0", "type", "bridge")
sh("ip", "-n", ns("sw"), "addr", "add", NET + ".1/24", "dev", "br0")
sh("ip", "-n", ns("sw"), "link", "set", "br0", "up")
sh("ip", "-n", ns("sw"), "link", "set", "lo", "up")
for h, last in HOSTS.items():
    sh("ip", "netns", "add", ns(h))
    sh("ip", "link", "add", "%s-%s" % (TAG[:6], h), "netns", ns(h), "type", "veth",
       "peer", "name", "p-" + h, "netns", ns("sw"))
    sh("ip", "-n", ns(h), "link", "set", "%s-%s" % (TAG[:6], h), "name", "eth0")
    sh("ip", "-n", ns(h), "addr", "add", "%s.%d/24" % (NET, last), "dev", "eth0")
    sh("ip", "-n", ns(h), "link", "set", "eth0", "up")
    sh("ip", "-n", ns(h), "link", "set", "lo", "up")
    sh("ip", "-n", ns("sw"), "link", "set", "p-" + h, "master", "br0")
    sh("ip", "-n", ns("sw"), "link", "set", "p-" + h, "up")
ip = {h: "%s.%d" % (NET, last) for h, last in HOSTS.items()}

dns = subprocess.Popen(["ip", "netns", "exec", ns("sw"), "dnsmasq", "--keep-in-foreground", "--no-resolv",
                        "--no-hosts", "--port=53", "--listen-address=" + NET + ".1", "--bind-interfaces",
                        "--local=/test/", "--cache-size=0", "--log-facility=/dev/null", "--pid-file=",
                        "--mx-host=example.test,mx1.example.test,10",
                        "--mx-host=example.test,mx2.example.test,20"] +
                       ["--host-record=%s.example.test,%s" % (h, ip[h]) for h in HOSTS],
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
procs.append(dns)

# --- three instances from one build ------------------------------------------
ids = free_ids(15, start=7700)
names = ["QMAIL_GROUP", "QMAIL_NOFILES", "QMAIL_QUEUE", "QMAIL_SEND", "QMAIL_REMOTE", "QMAIL_SMTPD",
         "QMAIL_LOG", "QMAIL_ALIAS", "QMAIL_AUTH", "QMAIL_TLS", "QMAIL_SMTPDGROUP", "QMAIL_LOGGROUP",
         "QMAIL_DKIM", "QMAIL_STATE", "QMAIL_METRICS"]
RELAY = {"hub": ['%s.:allow,RELAYCLIENT=""' % NET, "127.0.0.1:allow,RELAYCLIENT=\"\"", ":allow"],
         "mx1": [":allow"], "mx2": [":allow"]}


def tree(h):
    return os.path.join(top, h) + PREFIX


def inside(h, *argv, check=True):
    """argv in host h's network namespace with its tree over PREFIX."""
    return sh("ip", "netns", "exec", ns(h), "unshare", "-m", "--propagation", "private", "sh", "-c",
              'mount --bind "$0" "$1" && shift && exec "$@"', tree(h), PREFIX, *argv, check=check)


os.makedirs(PREFIX, exist_ok=True)
for h in INSTANCES:
    os.makedirs(os.path.join(tree(h), "control"), exist_ok=True)
    with open(os.path.join(tree(h), "control", "tcp.smtp"), "w") as f:
        f.write("\n".join(RELAY[h]) + "\n")
    env = dict(os.environ, PREFIX=PREFIX, DESTDIR=os.path.join(top, h), BUILD=harness.BUILD,
               SMTP_ADDR="0", SMTP_PORT="25", VOLATILE_DIR="", **dict(zip(names, map(str, ids))))
    if "ASAN_OPTIONS" in os.environ:
        env["SMTP_MEMLIMIT"] = "0"
    sh("sh", os.path.join(harness.ROOT, "service", "install"), env=env)
    c = os.path.join(tree(h), "control")
    for k, v in {"me": h + ".example.test", "dnsserver": NET + ".1",
                 "locals": "example.test\n%s.example.test" % h if h == "mx1" else h + ".example.test",
                 "rcpthosts": "example.test" if h in ("mx1", "mx2") else h + ".example.test"}.items():
        with open(os.path.join(c, k), "w") as f:
            f.write(v + "\n")
    # Submission ports stay down: one listener per host is enough here.
    for d in os.listdir(os.path.join(tree(h), "service")):
        if d not in ("qmail-send", "qmail-smtpd", "qmail-queued"):
            open(os.path.join(tree(h), "service", d, "down"), "w").close()

# The primary delivers every example.test address into the alias Maildir.
auid, agid = ids[names.index("QMAIL_ALIAS")], ids[names.index("QMAIL_GROUP")]
alias = os.path.join(tree("mx1"), "alias")
with open(os.path.join(tree("mx1"), "users", "assign"), "w") as f:
    f.write("+:alias:%d:%d:%s:-::\n.\n" % (auid, agid, os.path.join(PREFIX, "alias")))
with open(os.path.join(alias, ".qmail-default"), "w") as f:
    f.write("./Maildir/\n")
os.chown(os.path.join(alias, ".qmail-default"), auid, agid)
inside("mx1", os.path.join(PREFIX, "bin", "qmail-newu"))
svscan = {}


def start(h):
    p = subprocess.Popen(["ip", "netns", "exec", ns(h), "unshare", "-m", "--propagation", "private", "sh", "-c",
                          'mount --bind "$0" "$1" && exec s6-svscan "$1/service"', tree(h), PREFIX],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs.append(p)
    svscan[h] = p
    return wait_for(lambda: listening(h), 30, 0.2)


def listening(h):
    """From app1, across the bridge."""
    r = sh("ip", "netns", "exec", ns("app1"), "python3", "-c",
           "import socket; socket.create_connection(('%s', 25), 2).close()" % ip[h], check=False)
    return r.returncode == 0


def stop(h):
    inside(h, "s6-svscanctl", "-t", os.path.join(PREFIX, "service"), check=False)
    try:
        svscan[h].wait(60)
        return True
    except subprocess.TimeoutExpired:
        return False


for h in INSTANCES:
    t.check("%s: its instance answers on %s:25, from app1" % (h, ip[h]), start(h))

SUBMIT = textwrap.dedent("""
    import smtplib, sys
    host, first, count, tag = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    bad = 0
    s = smtplib.SMTP(host, 25, timeout=60)
    for n in range(first, first + count):
        try:
            s.sendmail("app@apps.test", ["user%d@example.test" % (n % 7)],
                       "Subject: %s %d\\r\\n\\r\\nTOKEN-%s-%d-\\r\\n" % (tag, n, tag, n))
        except smtplib.SMTPException as e:
            bad += 1
            print(n, e)
        if n % 100 == 99:
            s.quit(); s = smtplib.SMTP(host, 25, timeout=60)
    s.quit()
    print("bad", bad)
""")


def submit(h, first, count, tag):
    return subprocess.Popen(["ip", "netns", "exec", ns(h), "python3", "-c", SUBMIT, ip["hub"],
                             str(first), str(count), tag], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def tokens(tag):
    """{n: copies} of the messages with tag in the primary's Maildir."""
    out = {}
    d = os.path.join(alias, "Maildir", "new")
    for fn in os.listdir(d):
        try:
            data = open(os.path.join(d, fn), "rb").read()
        except FileNotFoundError:
            continue
        i = data.find(b"TOKEN-%s-" % tag.encode())
        if i >= 0:
            n = int(data[i:].split(b"-")[2])
            out[n] = out.get(n, 0) + 1
    return out


def sent_ok(p):
    out = p.communicate(timeout=600)[0].decode(errors="replace")
    return p.returncode == 0 and "bad 0" in out, out[-300:]


# 1. hub -> primary
ok, out = sent_ok(submit("app1", 0, 50, "one"))
t.check("1: app1 submits 50 messages to the hub", ok, out)
t.check("1: all 50 reach the primary's Maildir, each once",
        wait_for(lambda: len(tokens("one")) == 50, 60, 0.2) and set(tokens("one").values()) == {1},
        sorted(tokens("one").items())[:5])

# 2. the primary down: the backup queues, then hands over
t.check("2: the primary stops", stop("mx1"))
ok, out = sent_ok(submit("app1", 0, 50, "two"))
t.check("2: app1 submits 50 more while the primary is down", ok, out)
def backup_holds():
    r = inside("mx2", os.path.join(PREFIX, "bin", "qmail-qstat"), check=False)
    return b"messages in queue: 50" in r.stdout and r
t.check("2: the hub handed them to the backup MX, which holds all 50",
        wait_for(backup_holds, 60, 0.5), inside("mx2", os.path.join(PREFIX, "bin", "qmail-qstat"), check=False).stdout)
t.check("2: none reached the (stopped) primary", tokens("two") == {})
t.check("2: the primary starts again", start("mx1"))
inside("mx2", "s6-svc", "-a", os.path.join(PREFIX, "service", "qmail-send"))
t.check("2: after the backup's retry, all 50 are at the primary, each once",
        wait_for(lambda: len(tokens("two")) == 50, 60, 0.2) and set(tokens("two").values()) == {1},
        (len(tokens("two")), sorted(tokens("two").items())[:5]))
t.check("2: the backup's queue is empty",
        wait_for(lambda: b"messages in queue: 0" in inside("mx2", os.path.join(PREFIX, "bin", "qmail-qstat"),
                                                           check=False).stdout, 30, 0.5))

# 3. two submitting hosts, N messages through the hub
t0 = time.time()
half = N // 2
p1, p2 = submit("app1", 0, half, "three"), submit("app2", half, N - half, "three")
for name, p in (("app1", p1), ("app2", p2)):
    ok, out = sent_ok(p)
    t.check("3: %s's submissions all accepted by the hub" % name, ok, out)
done = wait_for(lambda: len(tokens("three")) == N, 600, 0.5)
got = tokens("three")
t.check("3: %d messages from two hosts through the hub reach the primary, none lost" % N, done,
        (len(got), N))
t.check("3: none delivered twice", set(got.values()) <= {1}, [k for k, v in got.items() if v > 1][:10])
print("3: %d messages in %.1f s" % (N, time.time() - t0), flush=True)
for h in INSTANCES:
    t.check("%s stops cleanly" % h, stop(h))
t.done()

"""This MTA against Postfix, Exim and OpenSMTPD, side by side, on loopback
(bench/run calls it). Exim and OpenSMTPD: see "peers run from their
unpacked Debian packages" below; the Postfix text here holds for them too.

Two throwaway instances under BASE: ours in BASE/this (installed by
service/install with unused numeric uids, its daemons run directly),
Postfix in BASE/pf (its own config, queue and data directories, started
with `postfix -c`). Both deliver *@local.test into one Maildir and
relay *@remote.test to an smtp-sink on loopback; nothing resolves names.
Every figure is taken alternately for both, several times; the table gives
median, min and max and the ratio this/Postfix. Every process started here
is ended by pid at exit, and every wait is bounded in count and time.
"""
import argparse, json, os, platform, pwd, grp, re, shutil, signal, smtplib
import socket, statistics, subprocess, sys, time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
import harness  # noqa: E402  (free_ids: one definition for tests and bench)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TICK = os.sysconf("SC_CLK_TCK")
LOCAL, REMOTE, DOWN = "local.test", "remote.test", "down.test"
SENDER = "bench@client.test"
PROCS = []          # Popen objects of long-running helpers, ended at exit


def log(*a):
    print("bench:", *a, file=sys.stderr, flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def free_ids(n):
    """Unused numeric ids, above the range the tests take."""
    return harness.free_ids(n, start=7400)


def wait_for(cond, timeout, step=0.01):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(step)
    return cond()


def wait_port(port, timeout=20):
    def up():
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return True
        except OSError:
            return False
    if not wait_for(up, timeout, 0.05):
        raise RuntimeError("nothing listens on 127.0.0.1:%d" % port)


def spawn(argv, **kw):
    kw.setdefault("stdin", subprocess.DEVNULL)
    p = subprocess.Popen(argv, start_new_session=True, **kw)
    PROCS.append(p)
    return p


def end(p, grace=10):
    """Ends one started process (and its process group) by its id."""
    if p.poll() is None:
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            p.wait(grace)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait(5)
    if p in PROCS:
        PROCS.remove(p)


# --- /proc ------------------------------------------------------------------

def stat_of(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
    except OSError:
        return None
    comm = s[s.index("(") + 1:s.rindex(")")]
    rest = s[s.rindex(")") + 2:].split()
    # rest[0] is field 3 (state): ppid 4, utime 14, stime 15, cutime 16, cstime 17
    return {"pid": pid, "comm": comm, "ppid": int(rest[1]),
            "cpu": sum(int(x) for x in rest[11:15])}


def all_stats():
    out = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = stat_of(int(d))
            if st:
                out[st["pid"]] = st
    return out


def tree(roots, stats=None):
    """The live processes under roots (included)."""
    stats = stats or all_stats()
    kids = {}
    for st in stats.values():
        kids.setdefault(st["ppid"], []).append(st["pid"])
    out, todo = [], [r for r in roots if r in stats]
    while todo and len(out) < 100000:
        p = todo.pop()
        out.append(stats[p])
        todo.extend(kids.get(p, []))
    return out


def cpu_ticks(roots):
    """CPU of everything ever run under roots: a live process's own time
    plus, in cutime/cstime, that of every child it has reaped."""
    return sum(st["cpu"] for st in tree(roots))


def rss_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def pss_kb(pid):
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def server_inode(server_port, client_port):
    """Inode of the server side of a loopback TCP connection."""
    want_local = "0100007F:%04X" % server_port
    want_rem = "0100007F:%04X" % client_port
    with open("/proc/net/tcp") as f:
        for line in f:
            x = line.split()
            if len(x) > 9 and x[1] == want_local and x[2] == want_rem:
                return x[9]
    return None


def session_procs(roots, server_port, client_port):
    """The processes of an instance that hold one session's socket."""
    ino = server_inode(server_port, client_port)
    if not ino:
        return []
    target = "socket:[%s]" % ino
    out = []
    for st in tree(roots):
        try:
            fds = os.listdir("/proc/%d/fd" % st["pid"])
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink("/proc/%d/fd/%s" % (st["pid"], fd)) == target:
                    out.append(st)
                    break
            except OSError:
                pass
    return out


def count_dir(d):
    try:
        return len(os.listdir(d))
    except FileNotFoundError:
        return 0


def empty_dir(d):
    for n in os.listdir(d):
        try:
            os.unlink(os.path.join(d, n))
        except FileNotFoundError:
            pass


# --- the sink -----------------------------------------------------------------

class Sink:
    """smtp-sink on loopback; -c writes a running count of messages."""

    def __init__(self, base):
        self.port = free_port()
        self.out = os.path.join(base, "sink.%d.out" % self.port)
        f = open(self.out, "wb")
        self.p = spawn(["/usr/sbin/smtp-sink", "-c", "-u", "postfix",
                        "127.0.0.1:%d" % self.port, "256"], stdout=f,
                       stderr=subprocess.STDOUT)
        f.close()
        wait_port(self.port)
        self.base = 0
        self.base = self.count()

    def count(self):
        """Messages received since the last reset()."""
        try:
            with open(self.out, "rb") as f:
                f.seek(max(0, os.path.getsize(self.out) - 256))
                tail = f.read().decode("ascii", "replace")
        except OSError:
            return 0
        nums = re.findall(r"(\d+)\s*$", tail.replace("\r", "\n").strip())
        # smtp-sink -c prints "sessions [quits] messages" counters per update.
        line = tail.replace("\r", "\n").strip().split("\n")[-1] if tail.strip() else ""
        fields = [int(x) for x in re.findall(r"\d+", line)]
        return (fields[-1] if fields else (int(nums[-1]) if nums else 0)) - self.base

    def reset(self):
        self.base = 0
        self.base = self.count()


# --- the two MTAs ---------------------------------------------------------------

class This:
    name = "this"

    def __init__(self, base, sink_port, down_port):
        self.base = base
        self.prefix = os.path.join(base, "this")
        self.build = os.path.join(base, "build")
        self.sink_port, self.down_port = sink_port, down_port
        self.procs = []
        self.install()

    def path(self, *p):
        return os.path.join(self.prefix, *p)

    def install(self):
        env = dict(os.environ, PREFIX=self.prefix, BUILD=self.build, DESTDIR="",
                   TLS_SELFSIGNED="yes")
        # Every account install knows (parts in install.d may add some)
        # gets an unused number: no account is created on this machine.
        names = set()
        srcs = [os.path.join(ROOT, "service", "install")]
        d = os.path.join(ROOT, "service", "install.d")
        srcs += [os.path.join(d, n) for n in sorted(os.listdir(d)) if n.endswith(".sh")]
        for src in srcs:
            names |= set(re.findall(r"\b(QMAIL_[A-Z]+)=\$\{", open(src).read()))
        names = sorted(names)
        for k, v in zip(names, free_ids(len(names))):
            env[k] = str(v)
        subprocess.run(["sh", os.path.join(ROOT, "service", "install")], env=env,
                       check=True, stdout=subprocess.DEVNULL)
        self.ids = dict(l.strip().split("=", 1) for l in open(self.path("control/ids")) if "=" in l)
        self.alias = tuple(int(x) for x in self.ids["alias"].split(":"))
        ctl = {"me": "mx.bench.test", "locals": LOCAL, "rcpthosts": LOCAL,
               "smtproutes": "%s:127.0.0.1:%d\n%s:127.0.0.1:%d" % (
                   REMOTE, self.sink_port, DOWN, self.down_port)}
        for k, v in ctl.items():
            with open(self.path("control", k), "w") as f:
                f.write(v + "\n")
        with open(self.path("users", "assign"), "w") as f:
            # box@ has its own entry (the common case: a known user); any
            # other local part falls to the catch-all.
            f.write("=box:alias:%d:%d:%s:::\n" % (self.alias + (self.path("alias"),)))
            f.write("+:alias:%d:%d:%s:-::\n.\n" % (self.alias + (self.path("alias"),)))
        subprocess.run([self.path("bin", "qmail-newu")], check=True)
        dq = self.path("alias", ".qmail-default")
        with open(dq, "w") as f:
            f.write("./Maildir/\n")
        os.chown(dq, *self.alias)
        os.chmod(dq, 0o644)
        self.maildir = self.path("alias", "Maildir", "new")
        self.logfile = self.path("send.log")

    def start(self):
        self.port = free_port()
        lf = open(self.logfile, "ab")
        s = "%s" % self.ids["send"]
        r = "%s" % self.ids["remote"]
        self.send = spawn([self.path("bin", "qmail-start"), s, r, "./Maildir/"],
                          cwd=self.prefix, stdout=lf, stderr=lf)
        # As the installed services run them: qmail-queued as the queue
        # uid, qmail-smtpd-listen as root dropping to the smtpd ids.
        qu, qg = self.ids["queue"].split(":")
        self.queued = spawn(["s6-applyuidgid", "-u", qu, "-g", qg, "-G", "",
                             self.path("bin", "qmail-queued")], stdout=lf, stderr=lf)
        def listening():
            u = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            try:
                u.connect(self.path("queued", "socket"))
                return True
            except OSError:
                return False
            finally:
                u.close()
        if not wait_for(listening, 10, 0.01):
            raise RuntimeError("qmail-queued did not start")
        u, g = self.ids["smtpd"].split(":")
        self.smtpd = spawn([self.path("bin", "qmail-smtpd-listen"), "-l", "mx.bench.test",
                            "-c", "100", "-x", self.path("control", "tcp.smtp.cdb"),
                            "-u", u, "-g", g, "127.0.0.1", str(self.port)],
                           stdout=subprocess.DEVNULL, stderr=lf)
        # STARTTLS on a port of its own, as the service with a certificate
        # runs it (service/install.d/60-tls.sh): qmail-smtpd-listen -t as
        # root; each connection splits into the TLS and smtpd ids.
        self.tls_port = free_port()
        self.tls = spawn([self.path("bin", "qmail-smtpd-listen"), "-l", "mx.bench.test",
                          "-c", "100", "-x", self.path("control", "tcp.smtp.cdb"),
                          "-t", self.ids["tls"], "-u", u, "-g", g,
                          "127.0.0.1", str(self.tls_port)],
                         stdout=subprocess.DEVNULL, stderr=lf)
        lf.close()
        self.procs = [self.send, self.queued, self.smtpd, self.tls]
        wait_port(self.port)
        wait_port(self.tls_port)
        time.sleep(0.3)

    def stop(self):
        for p in self.procs:
            end(p, 70)
        self.procs = []

    def roots(self):
        return [p.pid for p in self.procs]

    def queue_count(self):
        return count_dir(self.path("queue", "mess"))

    def wipe_queue(self):
        for d in ("mess", "bounce", "tmp"):
            qd = self.path("queue", d)
            for n in os.listdir(qd):
                os.unlink(os.path.join(qd, n))
        open(self.logfile, "w").close()


    def scheduler_rss(self):
        return sum(rss_kb(st["pid"]) for st in tree([self.send.pid])
                   if st["comm"] == "qmail-send")

    def taken_in(self, state):
        """Messages qmail-send knows: its event=message lines (one per
        message taken in, parked or not) and the largest queued= of its
        event=scan and event=pickup lines."""
        try:
            with open(self.logfile, "rb") as f:
                f.seek(state.get("off", 0))
                data = f.read()
        except OSError:
            return len(state.get("seen", ()))
        cut = data.rfind(b"\n") + 1
        state["off"] = state.get("off", 0) + cut
        seen = state.setdefault("seen", set())
        for line in data[:cut].split(b"\n"):
            if line.startswith(b"qmail-send event=message "):
                m = re.search(rb"qid=(\S+)", line)
                if m:
                    seen.add(m.group(1))
            elif line.startswith((b"qmail-send event=scan ", b"qmail-send event=pickup ")):
                m = re.search(rb"queued=(\d+)", line)
                if m:
                    state["queued"] = max(state.get("queued", 0), int(m.group(1)))
        return max(len(seen), state.get("queued", 0))


class Postfix:
    name = "Postfix"

    def __init__(self, base, sink_port, down_port, uid, gid):
        self.top = os.path.join(base, "pf")
        self.etc = os.path.join(self.top, "etc")
        self.queue = os.path.join(self.top, "queue")
        self.data = os.path.join(self.top, "data")
        self.mail = os.path.join(self.top, "mail")
        self.sink_port, self.down_port = sink_port, down_port
        self.uid, self.gid = uid, gid
        self.setup()

    def setup(self):
        if os.path.isdir(self.top):
            shutil.rmtree(self.top)
        for d in (self.etc, self.queue, self.data, self.mail):
            os.makedirs(d)
        os.chmod(self.top, 0o755)
        os.chmod(self.mail, 0o755)
        pfu = pwd.getpwnam("postfix")
        os.chown(self.data, pfu.pw_uid, pfu.pw_gid)
        box = os.path.join(self.mail, "box")
        for sub in ("", "tmp", "new", "cur"):
            os.makedirs(os.path.join(box, sub), exist_ok=True)
            os.chown(os.path.join(box, sub), self.uid, self.gid)
            os.chmod(os.path.join(box, sub), 0o700)
        self.maildir = os.path.join(box, "new")
        self.port = free_port()
        self.tls_port = free_port()
        self.maillog = os.path.join(self.top, "maillog")

    def use_tls_files(self, cert, key):
        """Serves STARTTLS with the same certificate and key as ours."""
        for src, dst, mode in ((cert, "tls.pem", 0o644), (key, "tls.key", 0o600)):
            shutil.copyfile(src, os.path.join(self.etc, dst))
            os.chmod(os.path.join(self.etc, dst), mode)

    def write_config(self):
        main = """compatibility_level = 3.6
queue_directory = {q}
data_directory = {d}
mail_owner = postfix
setgid_group = postdrop
myhostname = pf.bench.test
mydomain = bench.test
myorigin = $myhostname
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost = [127.0.0.1]:{sink}
transport_maps = inline:{{ {down}=smtp:[127.0.0.1]:{downp} }}
disable_dns_lookups = yes
smtp_dns_support_level = disabled
smtp_host_lookup = native
lmtp_host_lookup = native
smtpd_peername_lookup = no
alias_maps =
alias_database =
biff = no
smtpd_banner = $myhostname ESMTP
virtual_mailbox_domains = {local}
virtual_mailbox_base = {mail}
virtual_mailbox_maps = static:box/
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{gid}
virtual_minimum_uid = 1
maillog_file_prefixes = /tmp
maillog_file = {maillog}
""".format(q=self.queue, d=self.data, sink=self.sink_port, down=DOWN, downp=self.down_port,
           local=LOCAL, mail=self.mail, uid=self.uid, gid=self.gid, maillog=self.maillog)
        master = """127.0.0.1:{port} inet n - n - - smtpd
127.0.0.1:{tls_port} inet n - n - - smtpd
  -o smtpd_tls_security_level=may
  -o smtpd_tls_cert_file={etc}/tls.pem
  -o smtpd_tls_key_file={etc}/tls.key
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
""".format(port=self.port, tls_port=self.tls_port, etc=self.etc)
        with open(os.path.join(self.etc, "main.cf"), "w") as f:
            f.write(main)
        with open(os.path.join(self.etc, "master.cf"), "w") as f:
            f.write(master)

    def start(self):
        self.write_config()
        r = subprocess.run(["postfix", "-c", self.etc, "start"], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=60)
        if r.returncode != 0:
            raise RuntimeError("postfix start: " + r.stdout.decode(errors="replace"))
        wait_port(self.port)
        wait_port(self.tls_port)
        self.master = int(wait_for(self._master_pid, 10, 0.05) or 0)
        if not self.master:
            raise RuntimeError("postfix master pid not found")
        time.sleep(0.3)

    def _master_pid(self):
        try:
            with open(os.path.join(self.queue, "pid", "master.pid")) as f:
                p = int(f.read().split()[0])
            return p if stat_of(p) else None
        except (OSError, ValueError, IndexError):
            return None

    def stop(self):
        if not getattr(self, "master", 0):
            return
        subprocess.run(["postfix", "-c", self.etc, "stop"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, timeout=60)
        if not wait_for(lambda: stat_of(self.master) is None, 20, 0.1):
            for st in tree([self.master]):
                try:
                    os.kill(st["pid"], signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.master = 0

    def roots(self):
        return [self.master] if self.master else []

    def queue_count(self):
        n = 0
        for d in ("maildrop", "incoming", "active", "deferred", "hold"):
            for _, _, files in os.walk(os.path.join(self.queue, d)):
                n += len(files)
        return n

    def wipe_queue(self):
        for d in ("maildrop", "incoming", "active", "deferred", "defer", "bounce", "hold"):
            p = os.path.join(self.queue, d)
            if os.path.isdir(p):
                shutil.rmtree(p)


    def scheduler_rss(self):
        return sum(rss_kb(st["pid"]) for st in tree(self.roots()) if st["comm"] == "qmgr")

    def taken_in(self, state):
        """Messages qmgr has taken in: in active/ or deferred/ (none left in
        incoming/), whether attempted or deferred for a dead destination."""
        n = 0
        for d in ("active", "deferred"):
            for _, _, files in os.walk(os.path.join(self.queue, d)):
                n += len(files)
        return n


# --- peers run from their unpacked Debian packages ---------------------------------
#
# Exim and OpenSMTPD have their paths and user names compiled in
# (/etc/exim4/exim4.conf, Debian-exim, /var/spool/smtpd, opensmtpd,
# /usr/libexec/opensmtpd). Each runs from `dpkg-deb -x` of its package
# (bench/run puts it in BASE/pkg/NAME) inside a private mount namespace
# (bench/nsrun.py): a read-only overlay of BASE/NAME/etc on /etc gives it
# its configuration and a passwd and group naming throwaway ids, and the
# name service sees no DNS (hosts from files, a resolv.conf whose only
# server is a loopback address where nothing listens). The machine's /etc
# and spool are untouched and neither conflicts with the system's MTA.

class NsPeer:
    """A peer MTA from an unpacked package, in a mount namespace of its
    own. Subclasses: setup() writes the configuration, argv() the daemon's
    command line, mounts() the namespace's extra mounts, and the queue
    hooks. `na` maps a phase to why it is not measured for this peer."""
    name = "?"
    pkg = "?"
    na = {}
    # Scale runs: a count above scale_max is not run (n/a). Every load
    # run gives smtp-source secs_per_msg per message: both peers take mail
    # at a small fraction of this MTA's rate on this bench (100,000 would
    # take hours).
    scale_max = 10000
    secs_per_msg = 0.25

    def __init__(self, base, sink_port, down_port, uid, gid, ids):
        self.base = base
        self.pkgdir = os.path.join(base, "pkg", self.pkg)
        if not os.path.isdir(self.pkgdir):
            raise RuntimeError("%s: %s not unpacked (bench/run does it)" % (self.name, self.pkgdir))
        self.top = os.path.join(base, self.pkg)
        self.etc = os.path.join(self.top, "etc")
        self.mail = os.path.join(self.top, "mail")
        self.sink_port, self.down_port = sink_port, down_port
        self.uid, self.gid, self.ids = uid, gid, ids
        self.port, self.tls_port = free_port(), free_port()
        self.logfile = os.path.join(self.top, "log")
        self.p = None
        if os.path.isdir(self.top):
            shutil.rmtree(self.top)
        os.makedirs(self.etc)
        os.chmod(self.top, 0o755)
        os.makedirs(self.mail, 0o755)
        box = os.path.join(self.mail, "box")
        for sub in ("", "tmp", "new", "cur"):
            os.makedirs(os.path.join(box, sub), exist_ok=True)
            os.chown(os.path.join(box, sub), uid, gid)
            os.chmod(os.path.join(box, sub), 0o700)
        self.maildir = os.path.join(box, "new")
        self.boxdir = box
        self.write_etc()
        self.setup()

    def write_etc(self):
        """passwd and group: the machine's, plus this peer's accounts
        (self.accounts(): name -> (uid, gid, home)); name service from
        files; mailname; no reachable DNS server."""
        users = self.accounts()
        with open(os.path.join(self.etc, "passwd"), "w") as f:
            f.write(open("/etc/passwd").read())
            for n, (u, g, home) in users.items():
                f.write("%s:x:%d:%d::%s:/usr/sbin/nologin\n" % (n, u, g, home))
        with open(os.path.join(self.etc, "group"), "w") as f:
            f.write(open("/etc/group").read())
            for n, (u, g, home) in users.items():
                f.write("%s:x:%d:\n" % (n, g))
        for n in ("passwd", "group"):
            os.chmod(os.path.join(self.etc, n), 0o644)
        files = {"nsswitch.conf": "passwd: files\ngroup: files\nshadow: files\nhosts: files\n"
                                  "networks: files\nservices: files\n",
                 # OpenBSD's resolver (in OpenSMTPD) reads "lookup";
                 # glibc ignores it and has nsswitch's "hosts: files".
                 "resolv.conf": "lookup file\nnameserver 127.0.0.254\noptions attempts:1 timeout:1\n",
                 "hosts": "127.0.0.1 localhost\n",
                 "mailname": "%s.bench.test\n" % self.pkg}
        for n, text in files.items():
            with open(os.path.join(self.etc, n), "w") as f:
                f.write(text)

    def use_tls_files(self, cert, key):
        """Serves STARTTLS with the same certificate and key as ours."""
        self.cert = os.path.join(self.etc, "tls.pem")
        self.key = os.path.join(self.etc, "tls.key")
        shutil.copyfile(cert, self.cert)
        shutil.copyfile(key, self.key)
        os.chmod(self.cert, 0o644)
        os.chmod(self.key, 0o600)

    def start(self):
        self.write_config()
        lf = open(self.logfile, "ab")
        argv = ["unshare", "-m", "--propagation", "private", sys.executable,
                os.path.join(ROOT, "bench", "nsrun.py"), "--over", "%s:/etc" % self.etc]
        for flag, src, dst in self.mounts():
            argv += [flag, "%s:%s" % (src, dst)]
        self.p = spawn(argv + ["--"] + self.argv(), stdout=lf, stderr=lf)
        lf.close()
        wait_port(self.port)
        wait_port(self.tls_port)
        time.sleep(0.3)

    def stop(self):
        """SIGTERM to the daemon (nsrun passes it on), then SIGKILL by pid
        to whatever of its tree is left."""
        if not self.p:
            return
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(20)
            except subprocess.TimeoutExpired:
                for st in tree([self.p.pid]):
                    try:
                        os.kill(st["pid"], signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                self.p.wait(10)
        if self.p in PROCS:
            PROCS.remove(self.p)
        self.p = None

    def roots(self):
        return [self.p.pid] if self.p and self.p.poll() is None else []

    def mem_roots(self):
        """The daemon nsrun runs, without nsrun (a Python process that
        only waits): the processes whose memory the MTA itself takes."""
        return [st["pid"] for st in tree(self.roots()) if st["ppid"] in self.roots()]

    def scheduler_rss(self):
        return None

    def taken_in(self, state):
        return None


class Exim(NsPeer):
    """Exim 4 (exim4-daemon-light) as `exim4 -bdf -q30m`: its configuration
    at the compiled-in /etc/exim4/exim4.conf (so it keeps root for
    deliveries, as installed), spool and logs under BASE/exim4."""
    name = "Exim"
    pkg = "exim4"
    na = {"scale-scheduler": "Exim has no resident scheduler: the receiving process "
                             "forks a delivery at once, and queue runners are started "
                             "every 30 min; nothing to time or measure"}

    def accounts(self):
        return {"Debian-exim": (self.ids[0], self.ids[0], os.path.join(self.top, "spool")),
                "box": (self.uid, self.gid, self.boxdir)}

    def setup(self):
        self.spool = os.path.join(self.top, "spool")
        self.logdir = os.path.join(self.top, "logs")
        for d in (self.spool, self.logdir):
            os.makedirs(d)
            os.chown(d, self.ids[0], self.ids[0])
            os.chmod(d, 0o750)
        os.makedirs(os.path.join(self.etc, "exim4"))

    def use_tls_files(self, cert, key):
        super().use_tls_files(cert, key)
        os.chown(self.key, self.ids[0], self.ids[0])

    def write_config(self):
        conf = """primary_hostname = exim.bench.test
exim_path = {pkg}/usr/sbin/exim4
spool_directory = {spool}
log_file_path = {logs}/%slog
pid_file_path = {top}/exim.pid
keep_environment =
daemon_smtp_ports = {port} : {tls}
local_interfaces = <; 127.0.0.1.{port} ; 127.0.0.1.{tls}
tls_advertise_hosts = ${{if eq{{$received_port}}{{{tls}}}{{*}}{{}}}}
tls_certificate = {etc}/tls.pem
tls_privatekey = {etc}/tls.key
host_lookup =
rfc1413_hosts =
rfc1413_query_timeout = 0s
smtp_accept_max = 100
smtp_accept_queue_per_connection = 0
domainlist local_domains = {local}
acl_smtp_rcpt = acl_check_rcpt

begin acl
acl_check_rcpt:
  accept domains = +local_domains
  accept domains = {remote} : {down}
  deny message = relay not permitted

begin routers
sink:
  driver = manualroute
  domains = {remote}
  route_list = * 127.0.0.1 byname
  self = send
  transport = to_sink
down:
  driver = manualroute
  domains = {down}
  route_list = * 127.0.0.1 byname
  self = send
  transport = to_down
box:
  driver = accept
  domains = +local_domains
  transport = maildir

begin transports
to_sink:
  driver = smtp
  port = {sinkp}
to_down:
  driver = smtp
  port = {downp}
maildir:
  driver = appendfile
  directory = {box}
  maildir_format
  delivery_date_add
  envelope_to_add
  return_path_add
  user = {uid}
  group = {gid}
  mode = 0600

begin retry
* * F,2h,15m; G,16h,1h,1.5; F,4d,6h
""".format(pkg=self.pkgdir, spool=self.spool, logs=self.logdir, top=self.top, port=self.port,
           tls=self.tls_port, etc="/etc", local=LOCAL, remote=REMOTE, down=DOWN,
           sinkp=self.sink_port, downp=self.down_port, box=self.boxdir, uid=self.uid, gid=self.gid)
        p = os.path.join(self.etc, "exim4", "exim4.conf")
        with open(p, "w") as f:
            f.write(conf)
        os.chmod(p, 0o644)

    def mounts(self):
        return []

    def argv(self):
        return [os.path.join(self.pkgdir, "usr", "sbin", "exim4"), "-bdf", "-q30m"]

    def queue_count(self):
        d = os.path.join(self.spool, "input")
        try:
            return sum(1 for n in os.listdir(d) if n.endswith("-H"))
        except FileNotFoundError:
            return 0

    def wipe_queue(self):
        for d in ("input", "msglog", "db"):
            p = os.path.join(self.spool, d)
            if os.path.isdir(p):
                shutil.rmtree(p)


class OpenSMTPD(NsPeer):
    """OpenSMTPD (opensmtpd) as `smtpd -d -f smtpd.conf`: its spool at the
    compiled-in /var/spool/smtpd (BASE/opensmtpd/spool bound on /var/spool)
    and its delivery agents at /usr/libexec/opensmtpd (the package's,
    overlaid on /usr/libexec)."""
    name = "OpenSMTPD"
    pkg = "opensmtpd"
    # With 20 sessions it takes a few messages a second here (waiting, not
    # computing: its CPU per message is as with one session), so 10,000
    # would take most of an hour.
    scale_max = 1000
    na = {"scale-scheduler": "OpenSMTPD's scheduler keeps its state in memory and "
                             "logs nothing per message taken in; its queue files "
                             "do not tell when it has scheduled them",
          "tls": "Debian 12's OpenSMTPD 6.8.0p2 fails every STARTTLS handshake against "
                 "OpenSSL 3 (\"SSL routines::internal error\" here with the bench's P-256 "
                 "key, and with an RSA key too; known upstream: OpenSMTPD/OpenSMTPD "
                 "issues 1171 and 1239, fixed in 7.x)"}

    def accounts(self):
        return {"opensmtpd": (self.ids[0], self.ids[0], "/var/lib/opensmtpd/empty"),
                "opensmtpq": (self.ids[1], self.ids[1], "/var/lib/opensmtpd/empty"),
                "box": (self.uid, self.gid, self.boxdir)}

    def setup(self):
        self.spool = os.path.join(self.top, "spool")
        os.makedirs(os.path.join(self.spool, "smtpd"))
        os.chmod(self.spool, 0o755)
        os.chmod(os.path.join(self.spool, "smtpd"), 0o711)
        # Its processes chroot to the compiled-in /var/lib/opensmtpd/empty;
        # its control socket is the compiled-in /run/smtpd.sock.
        self.varlib = os.path.join(self.top, "varlib")
        os.makedirs(os.path.join(self.varlib, "opensmtpd", "empty"))
        self.run = os.path.join(self.top, "run")
        os.makedirs(self.run, 0o755)

    def write_config(self):
        # max-mails: its default of 100 messages per session would refuse
        # the later messages of the kept-connection runs.
        conf = """pki mx.bench.test cert "/etc/tls.pem"
pki mx.bench.test key "/etc/tls.key"
smtp limit max-mails 100000
listen on 127.0.0.1 port {port} hostname opensmtpd.bench.test
listen on 127.0.0.1 port {tls} tls pki mx.bench.test hostname opensmtpd.bench.test
action "box" maildir "{box}"
action "sink" relay host smtp://127.0.0.1:{sinkp}
action "down" relay host smtp://127.0.0.1:{downp}
match from any for domain "{local}" action "box"
match from any for domain "{remote}" action "sink"
match from any for domain "{down}" action "down"
""".format(port=self.port, tls=self.tls_port, box=self.boxdir, sinkp=self.sink_port,
           downp=self.down_port, local=LOCAL, remote=REMOTE, down=DOWN)
        p = os.path.join(self.etc, "smtpd.conf")
        with open(p, "w") as f:
            f.write(conf)
        os.chmod(p, 0o644)

    def mounts(self):
        return [("--bind", self.spool, "/var/spool"), ("--bind", self.run, "/run"),
                ("--over", self.varlib, "/var/lib"),
                ("--over", os.path.join(self.pkgdir, "usr", "libexec"), "/usr/libexec")]

    def argv(self):
        return [os.path.join(self.pkgdir, "usr", "sbin", "smtpd"), "-d", "-f", "/etc/smtpd.conf"]

    def queue_count(self):
        """Messages in the queue: one directory each under queue/XX/, plus
        those being received in incoming/."""
        n = 0
        q = os.path.join(self.spool, "smtpd")
        for d in ("queue", "incoming"):
            p = os.path.join(q, d)
            for _, dirs, files in os.walk(p):
                if d == "incoming":
                    n += len(dirs)
                    break
                n += sum(1 for x in dirs if len(x) > 2)
        return n

    def wipe_queue(self):
        q = os.path.join(self.spool, "smtpd")
        for d in ("queue", "incoming", "corrupt", "temporary", "offline", "purge"):
            p = os.path.join(q, d)
            if os.path.isdir(p):
                for n in os.listdir(p):
                    x = os.path.join(p, n)
                    shutil.rmtree(x) if os.path.isdir(x) else os.unlink(x)


PEERS = {"Postfix": None, "Exim": Exim, "OpenSMTPD": OpenSMTPD}


# --- load -------------------------------------------------------------------------

def smtp_source(port, sessions, count, size, rcpt, timeout, keep=False):
    argv = ["/usr/sbin/smtp-source"] + (["-d"] if keep else []) + [
            "-s", str(sessions), "-m", str(count), "-l", str(size),
            "-f", SENDER, "-t", rcpt, "-M", "client.test", "127.0.0.1:%d" % port]
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       stdin=subprocess.DEVNULL, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError("smtp-source: " + r.stdout.decode(errors="replace")[-500:])


def drain(mta, timeout):
    if not wait_for(lambda: mta.queue_count() == 0, timeout, 0.05):
        raise RuntimeError("%s: queue not empty after %ds (%d left)" % (
            mta.name, timeout, mta.queue_count()))


def run_local(mta, sessions, count, size, keep=False):
    """smtp-source into the MTA for count messages to one local Maildir:
    seconds to accept, seconds to the last message in the Maildir, CPU ms
    per message over every process of the instance."""
    empty_dir(mta.maildir)
    cpu0 = cpu_ticks(mta.roots())
    t0 = time.monotonic()
    limit = 60 + count * max(0.2 if size > 10000 else 0.05, getattr(mta, "secs_per_msg", 0))
    smtp_source(mta.port, sessions, count, size, "box@" + LOCAL, limit, keep)
    t1 = time.monotonic()
    if not wait_for(lambda: count_dir(mta.maildir) >= count, limit, 0.01):
        raise RuntimeError("%s: %d of %d delivered" % (mta.name, count_dir(mta.maildir), count))
    t2 = time.monotonic()
    drain(mta, 60)
    cpu = cpu_ticks(mta.roots()) - cpu0
    empty_dir(mta.maildir)
    return t1 - t0, t2 - t0, cpu * 1000.0 / TICK / count


def run_relay(mta, sink, count, size=2048):
    sink.reset()
    t0 = time.monotonic()
    limit = 60 + count * max(0.05, getattr(mta, "secs_per_msg", 0))
    smtp_source(mta.port, 20, count, size, "peer@" + REMOTE, limit)
    if not wait_for(lambda: sink.count() >= count, limit, 0.01):
        raise RuntimeError("%s: sink got %d of %d" % (mta.name, sink.count(), count))
    t = time.monotonic() - t0
    drain(mta, 60)
    return t


def latency_one(mta):
    """One message over SMTP, from connect to its file in the Maildir."""
    empty_dir(mta.maildir)
    msg = "From: <%s>\r\nTo: <box@%s>\r\nSubject: latency\r\n\r\n%s\r\n" % (
        SENDER, LOCAL, "x" * 70)
    t0 = time.monotonic()
    with smtplib.SMTP("127.0.0.1", mta.port, local_hostname="client.test", timeout=30) as s:
        s.sendmail(SENDER, ["box@" + LOCAL], msg)
    if not wait_for(lambda: count_dir(mta.maildir) >= 1, 30, 0.0005):
        raise RuntimeError("%s: latency message not delivered" % mta.name)
    t = time.monotonic() - t0
    drain(mta, 30)
    empty_dir(mta.maildir)
    return t


def smtp_reply(f):
    """The last line of one SMTP reply, or b"" at EOF."""
    for _ in range(100):
        line = f.readline()
        if not line or line[3:4] != b"-":
            return line
    return b""


def tls_context():
    """TLS 1.2 for both MTAs (ours offers nothing newer), full handshakes:
    no session is resumed."""
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def tls_open(port, ctx):
    """Connect, EHLO, STARTTLS, handshake, EHLO: the TLS socket."""
    s = socket.create_connection(("127.0.0.1", port), 10)
    try:
        f = s.makefile("rb")
        for cmd, want in ((None, b"220"), (b"EHLO client.test", b"250"), (b"STARTTLS", b"220")):
            if cmd:
                s.sendall(cmd + b"\r\n")
            r = smtp_reply(f)
            if not r.startswith(want):
                raise RuntimeError("STARTTLS session: %r after %r" % (r, cmd))
        t = ctx.wrap_socket(s, server_hostname="mx.bench.test")
    except BaseException:
        s.close()
        raise
    t.sendall(b"EHLO client.test\r\n")
    if not smtp_reply(t.makefile("rb")).startswith(b"250"):
        t.close()
        raise RuntimeError("STARTTLS session: EHLO refused after the handshake")
    return t


def tls_worker(port, n):
    ctx = tls_context()
    for _ in range(n):
        t = tls_open(port, ctx)
        t.sendall(b"QUIT\r\n")
        smtp_reply(t.makefile("rb"))
        t.close()


def tls_rate(mta, clients, n, worker=None, extra=()):
    """STARTTLS sessions per second from `clients` parallel client
    processes (n sessions in all), and the instance's CPU ms per session.
    worker(port, sessions, *extra) runs in each (tls_worker by default)."""
    import multiprocessing
    per = n // clients
    cpu0 = cpu_ticks(mta.roots())
    t0 = time.monotonic()
    ps = [multiprocessing.Process(target=worker or tls_worker, args=(mta.tls_port, per) + tuple(extra))
          for _ in range(clients)]
    for p in ps:
        p.start()
    for p in ps:
        p.join(60 + per)
        if p.is_alive():
            p.kill()
            raise RuntimeError("%s: a TLS client did not finish" % mta.name)
        if p.exitcode != 0:
            raise RuntimeError("%s: a TLS client failed" % mta.name)
    t = time.monotonic() - t0
    time.sleep(0.2)
    cpu = cpu_ticks(mta.roots()) - cpu0
    return per * clients / t, cpu * 1000.0 / TICK / (per * clients)


def tls_resume_worker(port, n, reused):
    """n STARTTLS sessions, each offering the session of the one before (RFC
    5246 session ID or, if the server sends one, a ticket); adds the number
    resumed to reused."""
    ctx = tls_context()
    sess, k = None, 0
    for _ in range(n):
        t = tls_open_session(port, ctx, sess)
        k += t.session_reused
        sess = t.session
        t.sendall(b"QUIT\r\n")
        smtp_reply(t.makefile("rb"))
        t.close()
    with reused.get_lock():
        reused.value += k


def tls_open_session(port, ctx, sess):
    """tls_open, offering sess for resumption."""
    wrap = ctx.wrap_socket

    def with_session(sock, server_hostname):
        return wrap(sock, server_hostname=server_hostname, session=sess)
    ctx.wrap_socket = with_session
    try:
        return tls_open(port, ctx)
    finally:
        del ctx.wrap_socket


def tls_rate_resumed(mta, clients, n):
    """As tls_rate, with clients that resume their sessions: sessions per
    second, CPU ms per session, and the share of sessions resumed."""
    import multiprocessing
    reused = multiprocessing.Value("i", 0)
    rate, cpu = tls_rate(mta, clients, n, tls_resume_worker, (reused,))
    return rate, cpu, reused.value / (n // clients * clients)


# --- outbound over STARTTLS: a TLS sink both MTAs relay to ----------------------
TLSREMOTE = "tls.remote.test"


def tls_sink_serve(port, cert, key, counts):
    """A minimal SMTP sink with STARTTLS (Python ssl, TLS 1.2 at most, a
    thread per connection, no PIPELINING): counts[0] messages, counts[1]
    connections, counts[2] TLS handshakes. Run in its own process."""
    import socketserver, ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)

    def bump(i):
        with counts.get_lock():
            counts[i] += 1

    class H(socketserver.BaseRequestHandler):
        def handle(self):
            s, tls = self.request, False
            bump(1)
            f = s.makefile("rb")
            s.sendall(b"220 sink.test ESMTP\r\n")
            while True:
                line = f.readline()
                if not line:
                    return
                cmd = line[:4].upper()
                if cmd in (b"EHLO", b"HELO"):
                    s.sendall(b"250-sink.test\r\n250-8BITMIME\r\n" +
                              (b"" if tls else b"250-STARTTLS\r\n") + b"250 SIZE 0\r\n")
                elif cmd == b"STAR" and not tls:
                    s.sendall(b"220 go ahead\r\n")
                    try:
                        s = ctx.wrap_socket(s, server_side=True)
                    except (ssl.SSLError, OSError):
                        return
                    tls = True
                    bump(2)
                    f = s.makefile("rb")
                elif cmd == b"DATA":
                    s.sendall(b"354 go\r\n")
                    while True:
                        l = f.readline()
                        if not l:
                            return
                        if l == b".\r\n":
                            break
                    bump(0)
                    s.sendall(b"250 ok\r\n")
                elif cmd == b"QUIT":
                    s.sendall(b"221 bye\r\n")
                    return
                else:
                    s.sendall(b"250 ok\r\n")

    class S(socketserver.ThreadingTCPServer):
        daemon_threads = True
        allow_reuse_address = True
        request_queue_size = 128

    S(("127.0.0.1", port), H).serve_forever()


class TlsSink:
    def __init__(self, cert, key):
        import multiprocessing
        self.port = free_port()
        self.counts = multiprocessing.Array("l", 3)
        self.p = multiprocessing.Process(target=tls_sink_serve, args=(self.port, cert, key, self.counts),
                                         daemon=True)
        self.p.start()
        wait_port(self.port)

    def snapshot(self):
        return list(self.counts[:])

    def stop(self):
        self.p.kill()
        self.p.join(5)


def tls_relay_setup(pair, sink):
    """Routes TLSREMOTE to the TLS sink on this and Postfix (if run),
    STARTTLS when offered (this: control/tlspolicy's default, may; Postfix:
    smtp_tls_security_level = may, its defaults otherwise), and makes them
    read it."""
    for m in pair:
        if m.name == "this":
            with open(m.path("control", "smtproutes"), "a") as f:
                f.write("%s:127.0.0.1:%d\n" % (TLSREMOTE, sink.port))
            m.stop()
            m.start()
            continue
        # After start, which writes main.cf afresh; a reload reads it.
        subprocess.run(["postconf", "-c", m.etc, "-e",
                        "transport_maps=inline:{%s=smtp:[127.0.0.1]:%d}" % (TLSREMOTE, sink.port),
                        "smtp_tls_security_level=may"], check=True)
        subprocess.run(["postfix", "-c", m.etc, "reload"], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, timeout=60)
        time.sleep(1.0)


def run_tls_relay(mta, sink, count, size=2048):
    """count messages of size from 20 smtp-source sessions to the TLS sink
    through mta: msg/s, CPU ms per message, TLS handshakes per message."""
    c0 = sink.snapshot()
    cpu0 = cpu_ticks(mta.roots())
    t0 = time.monotonic()
    limit = 60 + count * 0.1
    smtp_source(mta.port, 20, count, size, "peer@" + TLSREMOTE, limit)
    if not wait_for(lambda: sink.snapshot()[0] - c0[0] >= count, limit, 0.01):
        raise RuntimeError("%s: TLS sink got %d of %d" % (mta.name, sink.snapshot()[0] - c0[0], count))
    t = time.monotonic() - t0
    drain(mta, 60)
    cpu = cpu_ticks(mta.roots()) - cpu0
    c1 = sink.snapshot()
    return count / t, cpu * 1000.0 / TICK / count, (c1[2] - c0[2]) / count


TLS_MORE_NOTE = (
    "- STARTTLS, resuming clients: the same sessions, each client offering the TLS session of "
    "its previous one (this: RFC 5246 session IDs from the listener's shared cache; Postfix: "
    "its defaults, session tickets through tlsmgr). Relay over STARTTLS: %d messages to "
    "peer@tls.remote.test, routed (this: control/smtproutes, tlspolicy's default may; Postfix: "
    "transport_maps, smtp_tls_security_level=may, its defaults otherwise: no TLS connection "
    "reuse, no client session cache) to a Python ssl sink with STARTTLS on loopback (the same "
    "certificate; TLS 1.2; no PIPELINING), the same for both (this and Postfix only); "
    "handshakes per message counted by the sink.")


def tls_more_rows(mtas, n, relay_n, reps, add, alternate, skip, done):
    """The tls phase's rows beyond the first: STARTTLS with a resuming
    client (every peer measured in the tls phase), and relay over STARTTLS
    to a TLS sink (this and Postfix only: their smtp clients)."""
    for i in range(reps):
        for m in alternate(i):
            if skip(m, "tls") or done("share of STARTTLS sessions resumed (resuming clients)", m, i):
                continue
            rate, cpu, share = tls_rate_resumed(m, 4, n)
            add("STARTTLS sessions (per s), 4 resuming clients, %d sessions" % n, m, rate, "tls")
            add("CPU per STARTTLS session (ms), resuming clients, %d sessions" % n, m, cpu, "tls")
            add("share of STARTTLS sessions resumed (resuming clients)", m, share, "tls")
            log("%s tls resumed %.0f/s cpu %.2f ms resumed %.2f" % (m.name, rate, cpu, share))
    pair = [m for m in mtas if m.name in ("this", "Postfix")]
    if all(done("CPU per message relayed over STARTTLS (ms)", m) for m in pair):
        return
    sink = TlsSink(mtas[0].path("control", "tls", "cert.pem"), mtas[0].path("control", "tls", "key.pem"))
    try:
        tls_relay_setup(pair, sink)
        for i in range(reps):
            for m in (pair if i % 2 == 0 else pair[::-1]):
                if done("CPU per message relayed over STARTTLS (ms)", m, i):
                    continue
                rate, cpu, hs = run_tls_relay(m, sink, relay_n)
                add("relay over STARTTLS to a TLS sink (msg/s), 20 sessions, 2 KB, %d msgs" % relay_n, m,
                    rate, "tls")
                add("CPU per message relayed over STARTTLS (ms)", m, cpu, "tls")
                add("TLS handshakes per message relayed over STARTTLS", m, hs, "tls")
                log("%s tls relay %.0f/s cpu %.2f ms handshakes/msg %.3f" % (m.name, rate, cpu, hs))
    finally:
        sink.stop()


def tls_memory(mta):
    """KB: RSS and PSS of the processes of one idle STARTTLS session
    after the handshake and EHLO (the socket's holders and their children)."""
    t = tls_open(mta.tls_port, tls_context())
    try:
        cport = t.getsockname()[1]
        holders = wait_for(lambda: session_procs(mta.roots(), mta.tls_port, cport), 5, 0.02) or []
        procs = tree([st["pid"] for st in holders])
        rss = sum(rss_kb(st["pid"]) for st in procs)
        pss = sum(pss_kb(st["pid"]) for st in procs)
        t.sendall(b"QUIT\r\n")
    finally:
        t.close()
    return rss, pss, sorted(st["comm"] for st in procs)


def memory(mta):
    """KB: RSS of one idle SMTP session's own processes (and their PSS),
    and of every process of the instance when idle."""
    time.sleep(1.0)
    idle = tree(getattr(mta, "mem_roots", mta.roots)())
    idle_rss = sum(rss_kb(st["pid"]) for st in idle)
    s = socket.create_connection(("127.0.0.1", mta.port), 10)
    try:
        f = s.makefile("rb")
        f.readline()
        s.sendall(b"EHLO client.test\r\n")
        while True:
            line = f.readline()
            if not line or line[3:4] != b"-":
                break
        s.sendall(b"MAIL FROM:<%s>\r\n" % SENDER.encode())
        f.readline()
        cport = s.getsockname()[1]
        procs = wait_for(lambda: session_procs(mta.roots(), mta.port, cport), 5, 0.02) or []
        extra_comms = [st["comm"] for st in procs]
        sess = sum(rss_kb(st["pid"]) for st in procs)
        sess_pss = sum(pss_kb(st["pid"]) for st in procs)
        s.sendall(b"QUIT\r\n")
        f.readline()
    finally:
        s.close()
    return sess, sess_pss, idle_rss, sorted(st["comm"] for st in idle) + ["session:"] + extra_comms


def fsync_rate(d, seconds):
    """fsyncs per second of a small new file on d's filesystem."""
    n, t0 = 0, time.monotonic()
    names = []
    while time.monotonic() - t0 < seconds and n < 100000:
        p = os.path.join(d, "fsync.%d" % n)
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.write(fd, b"x" * 2048)
        os.fsync(fd)
        os.close(fd)
        names.append(p)
        n += 1
    rate = n / (time.monotonic() - t0)
    for p in names:
        os.unlink(p)
    return rate


def strace_one(mta, base):
    """Syscall counts over every process of the instance for one message,
    SMTP in to Maildir: fsyncs, process creations, execs."""
    out = os.path.join(base, "strace.%s.out" % mta.name)
    latency_one(mta)   # steady state: resident processes up, workers warm
    pids = [st["pid"] for st in tree(mta.roots())]
    argv = ["strace", "-f", "-c", "-o", out, "-e",
            "trace=fsync,fdatasync,sync_file_range,fork,vfork,clone,clone3,execve"]
    for p in pids:
        argv += ["-p", str(p)]
    st = spawn(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    latency_one(mta)
    time.sleep(0.5)
    try:
        st.send_signal(signal.SIGINT)
        st.wait(20)
    except subprocess.TimeoutExpired:
        pass
    end(st)
    counts = {}
    for line in open(out):
        m = re.match(r"\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)\s*$", line)
        if m:
            counts[m.group(2)] = int(m.group(1))
    # sync_file_range is traced but not counted: qmail-queued only starts
    # writeback with it (SYNC_FILE_RANGE_WRITE) and waits for nothing.
    fs = sum(counts.get(k, 0) for k in ("fsync", "fdatasync"))
    procs = sum(counts.get(k, 0) for k in ("fork", "vfork", "clone", "clone3"))
    return fs, procs, counts.get("execve", 0), counts


# The markers of make bench-scale's section of RESULTS.md (bench/scale.py).
SCALE_BEGIN, SCALE_END = "<!-- bench-scale -->", "<!-- /bench-scale -->"


def scale(mta, n, timeout):
    """Queue n messages to a destination that is down; seconds to queue,
    seconds until the scheduler has taken every one in, and the
    scheduler's RSS in KB then."""
    state = {}
    t0 = time.monotonic()
    smtp_source(mta.port, 20, n, 2048, "peer@" + DOWN, timeout)
    t1 = time.monotonic()
    if mta.taken_in(state) is None:   # a peer with no scheduler to watch
        return t1 - t0, None, None
    # n - 1: the last scan may have found a single message and logged nothing.
    done = wait_for(lambda: mta.taken_in(state) >= n - 1, timeout, 0.2)
    t2 = time.monotonic()
    if not done:
        log("%s: only %d of %d scheduled within %ds" % (mta.name, mta.taken_in(state), n, timeout))
    return t1 - t0, (t2 - t0) if done else None, mta.scheduler_rss()


# --- stats and report ------------------------------------------------------------

def mmm(xs):
    xs = [x for x in xs if x is not None]
    if not xs:
        return None
    return statistics.median(xs), min(xs), max(xs)


def fmt(v, unit=""):
    if v is None:
        return "n/a"
    med, lo, hi = v
    def f(x):
        return ("%.0f" % x) if abs(x) >= 100 else ("%.1f" % x) if abs(x) >= 10 else ("%.2f" % x)
    if lo == hi:
        return "%s%s" % (f(med), unit)
    return "%s%s (%s-%s)" % (f(med), unit, f(lo), f(hi))


def machine():
    cpu = "?"
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = 0
    for line in open("/proc/meminfo"):
        if line.startswith("MemTotal:"):
            mem = int(line.split()[1]) // 1024
    df = subprocess.run(["df", "-T", "/tmp"], stdout=subprocess.PIPE, text=True).stdout.splitlines()[-1].split()
    pv = subprocess.run(["postconf", "-d", "-h", "mail_version"], stdout=subprocess.PIPE,
                        stderr=subprocess.DEVNULL, text=True).stdout.strip()
    disk = "%s (%s)" % (df[0], df[1])
    if df[1] == "ext4":
        # ext4 shows "<none>" here when it runs without a journal: then an
        # fsync writes the file's blocks and inode itself, no commit is
        # shared, and nothing orders one file's metadata after another's.
        try:
            jt = open("/sys/fs/ext4/%s/journal_task" % os.path.basename(df[0])).read().strip()
            disk = "%s (ext4, %s)" % (df[0], "no journal" if jt == "<none>" else "journal")
        except OSError:
            pass
    return {"nproc": os.cpu_count(), "cpu": cpu, "mem_mb": mem, "disk": disk,
            "kernel": platform.release(), "postfix": pv,
            "load": open("/proc/loadavg").read().split()[:3]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--reps", type=int)
    ap.add_argument("--scale")
    ap.add_argument("--only", help="comma list of phases: memory,tls,local,relay,latency,fsync,scale")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "RESULTS.md"))
    ap.add_argument("--shared", action="store_true",
                    help="say in RESULTS.md that the run shared the machine with other jobs")
    ap.add_argument("--peers", default=",".join(PEERS),
                    help="comma list of the peers measured beside this: %s" % ",".join(PEERS))
    ap.add_argument("--report-only", action="store_true",
                    help="rewrite RESULTS.md from BASE/results.json without measuring")
    ap.add_argument("--resume", action="store_true",
                    help="go on with the run BASE/results.json holds: what it measured "
                         "is kept, the rest is measured")
    a = ap.parse_args()
    if a.report_only:
        d = json.load(open(os.path.join(a.base, "results.json")))
        sys.argv = d.get("argv", sys.argv)
        report(a, d["cfg"], d["reps"], d["raw"], d["extra"], d["started"], d["load_before"],
               d["load_after"], d["machine"], d.get("peers", ["Postfix"]), d.get("na", {}),
               d.get("fig_phase", {}))
        return
    q = a.quick
    reps = a.reps or (2 if q else 3)
    cfg = {
        "local": [(20, 2048, 300 if q else 2000, False), (1, 2048, 100 if q else 500, False),
                  (20, 102400, 100 if q else 500, False), (1, 102400, 50 if q else 200, False),
                  (20, 2048, 300 if q else 2000, True)],
        "relay": 300 if q else 2000,
        "latency": 10 if q else 50,
        "tls": 200 if q else 1000,
        "scale": [int(x) for x in (a.scale or ("1000,3000" if q else "10000,100000")).split(",")],
    }
    phases = (a.only or "memory,tls,local,relay,latency,fsync,scale").split(",")
    base = a.base
    load0 = open("/proc/loadavg").read().split()[:3]
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    R = {}  # figure -> {mta name: [values]}
    mtas = []
    peers = [n for n in a.peers.split(",") if n]
    NA = {}         # peer name -> {phase: why it has no figure there}
    FIG_PHASE = {}  # figure -> phase, for the footnotes of n/a cells
    extra = {}
    if a.resume:
        d = json.load(open(os.path.join(a.base, "results.json")))
        R, NA, FIG_PHASE, extra = d["raw"], d.get("na", {}), d.get("fig_phase", {}), d["extra"]
        why = extra.pop("incomplete", "figures taken out of results.json, to be measured again")
        note = "resumed at %s (%s); the figures measured before were kept" % (
            time.strftime("%Y-%m-%d %H:%M:%S %Z"), why)
        extra["resumed"] = extra["resumed"] + "; " + note if "resumed" in extra else note
        started, load0 = d["started"], d["load_before"]
        sys.argv = d.get("argv", sys.argv)   # the report names the run resumed

    def add(fig, mta, v, phase=None):
        FIG_PHASE[fig] = phase or fig.split(":")[0].split(" ")[0]
        R.setdefault(fig, {}).setdefault(mta.name, []).append(v)

    def skip(mta, phase):
        """True (and the reason noted) if mta is not measured in phase."""
        why = getattr(mta, "na", {}).get(phase)
        if why:
            NA.setdefault(mta.name, {})[phase] = why
        return bool(why)

    def alternate(i):
        return mtas if i % 2 == 0 else mtas[::-1]

    def done(fig, m, i=None):
        """True if fig has its (i+1)-th value for m (every value: i None),
        from the run resumed."""
        n = len(R.get(fig, {}).get(m.name, []))
        return n > i if i is not None else n >= reps

    err = None
    try:
        sink = Sink(base)
        down_port = free_port()
        this = This(base, sink.port, down_port)
        mtas.append(this)
        tls_files = this.path("control", "tls", "cert.pem"), this.path("control", "tls", "key.pem")
        for k, name in enumerate(peers):
            try:
                if name == "Postfix":
                    peer = Postfix(base, sink.port, down_port, *this.alias)
                else:
                    peer = PEERS[name](base, sink.port, down_port, *this.alias,
                                       ids=harness.free_ids(2, start=7700 + 100 * k))
            except (RuntimeError, OSError, KeyError) as e:
                log("%s left out: %s" % (name, e))
                NA.setdefault(name, {})["*"] = "not run: %s" % e
                continue
            peer.use_tls_files(*tls_files)
            mtas.append(peer)
        for m in mtas:
            m.start()
        if "memory" in phases:
            for i in range(reps):
                for m in alternate(i):
                    if done("memory: one SMTP session (RSS KB)", m, i):
                        continue
                    sess, sess_pss, idle, comms = memory(m)
                    add("memory: one SMTP session (RSS KB)", m, sess)
                    add("memory: one SMTP session (PSS KB)", m, sess_pss)
                    add("memory: all processes idle (RSS KB)", m, idle)
                    extra["idle processes " + m.name] = comms
            log("memory done")
        if "tls" in phases:
            n = cfg["tls"]
            for i in range(reps):
                for m in alternate(i):
                    if skip(m, "tls") or done("CPU per STARTTLS session (ms), %d sessions" % n, m, i):
                        continue
                    rss, pss, comms = tls_memory(m)
                    add("memory: one STARTTLS session (RSS KB)", m, rss, "tls")
                    add("memory: one STARTTLS session (PSS KB)", m, pss, "tls")
                    extra["STARTTLS session processes " + m.name] = comms
                    rate, cpu = tls_rate(m, 4, n)
                    add("STARTTLS sessions (per s), 4 clients, %d sessions" % n, m, rate, "tls")
                    add("CPU per STARTTLS session (ms), %d sessions" % n, m, cpu, "tls")
                    log("%s tls %.0f/s cpu %.2f ms rss %d KB" % (m.name, rate, cpu, rss))
            tls_more_rows(mtas, n, cfg["relay"] // 2, reps, add, alternate, skip, done)
        if "local" in phases:
            for sessions, size, count, keep in cfg["local"]:
                label = "%d session%s, %s, %d msgs%s" % (
                    sessions, "s" if sessions > 1 else "", "2 KB" if size < 10000 else "100 KB",
                    count, ", kept connections" if keep else "")
                for i in range(reps):
                    for m in alternate(i):
                        if done("CPU per message (ms), end to end, " + label, m, i):
                            continue
                        acc, e2e, cpu = run_local(m, sessions, count, size, keep)
                        add("accept (msg/s), " + label, m, count / acc)
                        add("end-to-end local (msg/s), " + label, m, count / e2e)
                        add("CPU per message (ms), end to end, " + label, m, cpu)
                        log("%s %s: accept %.0f/s e2e %.0f/s cpu %.2f ms" % (
                            m.name, label, count / acc, count / e2e, cpu))
        if "relay" in phases:
            n = cfg["relay"]
            for i in range(reps):
                for m in alternate(i):
                    if done("relay to smtp-sink (msg/s), 20 sessions, 2 KB, %d msgs" % n, m, i):
                        continue
                    t = run_relay(m, sink, n)
                    add("relay to smtp-sink (msg/s), 20 sessions, 2 KB, %d msgs" % n, m, n / t)
                    log("%s relay %.0f/s" % (m.name, n / t))
        lat_fig = "latency (ms), one message, connect to Maildir, median of %d" % cfg["latency"]
        if "latency" in phases and not all(done(lat_fig, m, 0) for m in mtas):
            for m in mtas:   # warm both
                latency_one(m)
            vals = {m.name: [] for m in mtas}
            for i in range(cfg["latency"]):
                for m in alternate(i):
                    vals[m.name].append(latency_one(m) * 1000)
            for m in mtas:
                add(lat_fig, m, statistics.median(vals[m.name]))
            log("latency done")
        if "fsync" in phases and not all(done("fsyncs per message (local delivery)", m, 0)
                                         for m in mtas):
            qfs = this.path("queue")
            rates = [fsync_rate(qfs, 1.0 if q else 3.0) for _ in range(reps)]
            for m in mtas:
                fs, procs, execs, counts = strace_one(m, base)
                extra["strace " + m.name] = counts
                add("fsyncs per message (local delivery)", m, fs)
                add("processes created per message (local delivery)", m, procs)
                add("execs per message (local delivery)", m, execs)
                add("best rate the disk allows (msg/s; fsyncs/s / fsyncs per msg)", m,
                    statistics.median(rates) / fs if fs else None)
            extra["fsyncs/s"] = mmm(rates)
            log("fsync done: %.0f fsyncs/s" % statistics.median(rates))
        if "scale" in phases:
            for n in cfg["scale"]:
                for m in mtas:
                    if done("scale %d: time to queue (s)" % n, m, 0):
                        continue
                    if n > getattr(m, "scale_max", n):
                        NA.setdefault(m.name, {})["scale %d" % n] = (
                            "not run: more than %d messages at its rate here" % m.scale_max)
                        continue
                    m.stop()
                    m.wipe_queue()
                    m.start()
                    tq, ts, rss = scale(m, n, 120 + n * getattr(m, "secs_per_msg", 0.02))
                    add("scale %d: time to queue (s)" % n, m, tq, "scale %d" % n)
                    if not skip(m, "scale-scheduler"):
                        add("scale %d: time until the scheduler has taken in all (s)" % n, m, ts,
                            "scale-scheduler")
                        add("scale %d: scheduler RSS (KB; qmail-send / qmgr)" % n, m, rss,
                            "scale-scheduler")
                    log("%s scale %d: queue %.1fs schedule %s rss %s KB" % (m.name, n, tq, ts, rss))
                    m.stop()
                    m.wipe_queue()
                    m.start()
    except BaseException as e:   # report what was measured, then fail
        err = e
    finally:
        for m in mtas:
            try:
                m.stop()
            except Exception as e:   # cleanup goes on for the others
                log("stop %s: %s" % (m.name, e))
        for p in list(PROCS):
            end(p)
    load1 = open("/proc/loadavg").read().split()[:3]
    if err is not None:
        extra["incomplete"] = "the run stopped early: %r" % (err,)
    if R:
        report(a, cfg, reps, R, extra, started, load0, load1, None, peers, NA, FIG_PHASE)
    if err is not None:
        raise err


def table_rows(R, extra, peers, na, fig_phase):
    """The table's rows (figure, this, each peer, this/each peer) and its
    footnotes: a peer's n/a cell names why, when the peer said why."""
    notes = []

    def cell(name, fig, v):
        if v is not None:
            return fmt(v)
        why = na.get(name, {}).get(fig_phase.get(fig)) or na.get(name, {}).get("*")
        if not why:
            return "n/a"
        note = "%s: %s" % (name, why)
        if note not in notes:
            notes.append(note)
        return "n/a [%d]" % (notes.index(note) + 1)

    rows = []
    for fig, by in R.items():
        t = mmm(by.get("this", []))
        vs = [mmm(by.get(n, [])) for n in peers]
        ratios = ["n/a" if not t or not v or not v[0] else "%.2f" % (t[0] / v[0]) for v in vs]
        rows.append([fig, fmt(t)] + [cell(n, fig, v) for n, v in zip(peers, vs)] + ratios)
    if extra.get("fsyncs/s"):
        f = fmt(extra["fsyncs/s"])
        rows.append(["disk: fsyncs per second on the queue filesystem (2 KB file, write+fsync)"]
                    + [f] * (1 + len(peers)) + ["1.00"] * len(peers))
    return rows, notes


def report(a, cfg, reps, R, extra, started, load0, load1, mach=None, peers=("Postfix",),
           na=None, fig_phase=None):
    mach = mach or machine()
    if "peer_versions" not in mach:
        mach["peer_versions"] = {}
        for cls in PEERS.values():
            try:
                with open(os.path.join(a.base, "pkg", cls.pkg + ".version")) as f:
                    mach["peer_versions"][cls.name] = f.read().strip()
            except (OSError, AttributeError):
                pass
    peers, na, fig_phase = list(peers), na or {}, fig_phase or {}
    rows, notes = table_rows(R, extra, peers, na, fig_phase)
    data = {"argv": sys.argv, "started": started, "machine": mach, "reps": reps, "cfg": cfg,
            "load_before": load0,
            "load_after": load1, "raw": R, "extra": extra, "peers": peers, "na": na,
            "fig_phase": fig_phase}
    with open(os.path.join(a.base, "results.json"), "w") as f:
        json.dump(data, f, indent=1, default=str)
    head = ["figure", "this"] + peers + ["this/" + n for n in peers]
    table = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    table += ["| " + " | ".join(r) + " |" for r in rows]
    if notes:
        table += [""] + ["- [%d] %s" % (i + 1, n) for i, n in enumerate(notes)]
    print("\n".join(table))
    args, skip = [], False
    for x in sys.argv[1:]:
        if x == "--report-only":
            continue
        if skip or x in ("--base", "--out"):
            skip = not skip
            continue
        args.append(x)
    argv = " ".join(["bench/run"] + args)
    out = ["# Benchmark results: this MTA against " + ", ".join(peers), "",
           "Written by `%s` (bench/bench.py); started %s. Each cell is the median of %d runs, "
           "min-max in parentheses; each run takes every MTA in turn, the order reversed every "
           "other run. Rates are "
           "messages per second (higher is better); times, memory, CPU, fsyncs and processes: "
           "lower is better. A ratio is this/peer of the medians." % (argv.strip(), started, reps),
           "",
           "## Machine", "",
           "- %s CPUs: %s; %d MB memory; kernel %s" % (mach["nproc"], mach["cpu"], mach["mem_mb"], mach["kernel"]),
           "- queue filesystem (/tmp): %s" % mach["disk"],
           "- Postfix %s (Debian package), smtp-source and smtp-sink from it" % mach["postfix"]]
    for n, v in sorted(mach.get("peer_versions", {}).items()):
        if n in peers:
            out.append("- %s %s (Debian package, unpacked with dpkg-deb -x)" % (n, v))
    if getattr(a, "shared", False) or mach.get("shared"):
        mach["shared"] = True
        out.append("- this run SHARED THE MACHINE with other jobs (other builds and tests on "
                   "the same 2 CPUs and disk): its rates, times and CPU figures are noisy; "
                   "the counts (fsyncs, processes, execs) and memory are not")
    out += [
           "- load average (1, 5, 15 min) before the run: %s; after: %s" % (
               " ".join(load0), " ".join(load1)),
           "", "## Results", ""] + table + [""]
    out += ["## Set-up and commands", "",
            "- Every MTA delivers `box@local.test` into one Maildir and relays `peer@remote.test` "
            "to one `smtp-sink -c 127.0.0.1:PORT 256`; only loopback, no DNS (this: control/smtproutes; "
            "Postfix: relayhost [127.0.0.1]:PORT, smtp_dns_support_level=disabled, "
            "smtp_host_lookup=native, smtpd_peername_lookup=no; Exim: manualroute to 127.0.0.1 byname, "
            "host_lookup and rfc1413_hosts empty; OpenSMTPD: relay host smtp://127.0.0.1:PORT; both of "
            "these in a name service of files only, their resolv.conf naming a loopback address where "
            "nothing listens). fsync as each does by default.",
            "- this: service/install into %s/this with unused numeric uids; `qmail-start SEND REMOTE ./Maildir/` "
            "and `qmail-queued` (as the queue uid) and `qmail-smtpd-listen -c 100 -x control/tcp.smtp.cdb -u SMTPD -g GID 127.0.0.1 PORT`, "
            "logging to a file; users/assign `=box:alias:...` (plus a `+` catch-all)." % a.base,
            "- Postfix: `postfix -c %s/pf/etc start` with its own queue_directory and data_directory, "
            "master.cf without chroot, `inet_interfaces = 127.0.0.1`, delivery by virtual(8) "
            "(`virtual_mailbox_domains = local.test`, `virtual_mailbox_maps = static:box/`), "
            "logging to a file through postlogd (`maillog_file`)." % a.base,
            "- Exim and OpenSMTPD: `apt-get download` of exim4-daemon-light and opensmtpd, `dpkg-deb -x` "
            "into %s/pkg (bench/unpack-peers), each run by bench/nsrun.py in a mount namespace of its own "
            "(`unshare -m`): a read-only overlay on /etc gives the compiled-in configuration paths and a "
            "passwd naming unused numeric ids (Debian-exim; opensmtpd, opensmtpq; box, the Maildir's owner); "
            "nsrun is a child subreaper, so detached processes' CPU is counted. Exim: `exim4 -bdf -q30m`, "
            "/etc/exim4/exim4.conf (so it keeps root for deliveries, as installed), smtp_accept_max = 100, "
            "smtp_accept_queue_per_connection = 0 (its default, 10, would leave the kept-connection runs' "
            "later messages for the queue runner), delivery by appendfile maildir_format as box. OpenSMTPD: "
            "`smtpd -d -f /etc/smtpd.conf` (logging to a file), its spool on /var/spool/smtpd "
            "(%s/opensmtpd/spool bound there), `action maildir` (mail.maildir as box)." % (a.base, a.base),
            "- accept / end-to-end: `smtp-source -s S -m N -l SIZE -f bench@client.test -t box@local.test "
            "-M client.test 127.0.0.1:PORT` (one message per connection, smtp-source's default; "
            "\"kept connections\" adds `-d`: each session sends its messages over one connection); accept = "
            "N / time until smtp-source exits; end-to-end = N / time from its start until the N-th "
            "file is in Maildir/new. Counts: %s (sessions, bytes, messages, -d)." % (cfg["local"],),
            "- CPU per message: utime+stime+cutime+cstime summed over the live process tree of each "
            "instance (qmail-smtpd-listen, qmail-queued, qmail-start and the STARTTLS qmail-smtpd-listen -t for this; master for Postfix; nsrun for Exim and OpenSMTPD: every child they reaped "
            "is in cutime/cstime), before and after a run, divided by N; the load tools are not counted.",
            "- relay: the same smtp-source, 20 sessions, 2 KB, %d messages to peer@remote.test; "
            "time until smtp-sink has counted them all." % cfg["relay"],
            "- latency: one message per SMTP session (Python smtplib), connect to its file in "
            "Maildir/new, polled every 0.5 ms; median of %d, alternating." % cfg["latency"],
            "- memory: VmRSS (and PSS from smaps_rollup) of the processes that hold the server side "
            "of one idle session after EHLO and MAIL; all processes idle = the instance's process tree "
            "after start, before any mail.",
            "- fsyncs, processes and execs per message: `strace -f -c -e trace=fsync,fdatasync,"
            "sync_file_range,fork,vfork,clone,clone3,execve -p` every process of the instance, around "
            "one message from SMTP to Maildir; fsyncs = fsync + fdatasync (sync_file_range, which "
            "qmail-queued uses only to start writeback, is in the details). The disk's limit: small files written and fsynced in a "
            "loop on the queue's filesystem; best rate = fsyncs/s / fsyncs per message (serial fsyncs; "
            "concurrent ones overlap on the device, and on a journaled file system may share a commit).",
            "- STARTTLS: a port of its own on each (this: qmail-smtpd-listen -t as root, whose "
            "connections drop to the TLS and smtpd ids, as the service with a certificate runs it; Postfix: a second smtpd with smtpd_tls_security_level=may; "
            "Exim: a second daemon_smtp_ports entry, tls_advertise_hosts only on it), "
            "the same self-signed P-256 certificate and key; the client (Python ssl, TLS 1.2 at most, "
            "since ours offers nothing newer; no session resumption) connects, EHLO, STARTTLS, "
            "handshake, EHLO, QUIT; %d sessions from 4 client processes. Memory: RSS and PSS of the "
            "processes holding one idle session after the handshake and EHLO, with their children." % cfg["tls"],
            TLS_MORE_NOTE % (cfg["relay"] // 2),
            "- scale: N messages to peer@down.test, routed to a loopback port where nothing listens; "
            "time to queue = smtp-source's time (20 sessions); taken in = time from the start "
            "until the scheduler knows every message (this: qmail-send's event=scan lines report "
            "queued=N-1 or more; Postfix: N files in active/ and deferred/), whether it was attempted or "
            "parked on the dead destination; scheduler RSS then. Counts: %s." % (cfg["scale"],),
            ""]
    det = []
    for k, v in extra.items():
        if k != "fsyncs/s":
            det.append("- %s: %s" % (k, v))
    if det:
        out += ["## Details", ""] + det + [""]
    # make bench-scale's section (bench/scale.py) is its own run's: kept.
    try:
        old = open(a.out).read()
    except FileNotFoundError:
        old = ""
    if SCALE_BEGIN in old and SCALE_END in old:
        out += [old[old.index(SCALE_BEGIN):old.index(SCALE_END) + len(SCALE_END)], ""]
    notes = os.path.join(ROOT, "bench", "analysis.md")
    if os.path.exists(notes):
        out += [open(notes).read().rstrip(), ""]
    with open(a.out, "w") as f:
        f.write("\n".join(out))
    log("wrote %s; raw results in %s/results.json" % (a.out, a.base))


if __name__ == "__main__":
    def bye(sig, frame):
        raise SystemExit(128 + sig)
    signal.signal(signal.SIGTERM, bye)
    signal.signal(signal.SIGINT, bye)
    signal.signal(signal.SIGHUP, bye)
    main()

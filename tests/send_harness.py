"""Shared setup for the qmail-send tests: local users mapped through
users/assign, starting qmail-start, reading Maildirs and the log."""
import os, re, socket, subprocess, time
from harness import Instance, wait_for

USERS = ["alice", "bob", "carol", "dave", "erin"]
DOMAIN = "mail.example.test"


def run_spawner(inst, argv, log, timeout, **kw):
    """A spawner (qmail-lspawn, qmail-rspawn) on a SOCK_SEQPACKET
    socketpair, as qmail-start makes it (lib/spawnproto.h): our end of the
    pair, with timeout, and the process, its stderr to log."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    p = inst.spawn(argv, stdin=theirs.fileno(), stderr=log, **kw)
    theirs.close()
    ours.settimeout(timeout)
    return ours, p


def spawner_reply(sock):
    """One reply datagram of a spawner: (slot, item, ...), None on
    timeout, ("malformed", data) when it does not end in a NUL."""
    try:
        d = sock.recv(65536)
    except socket.timeout:
        return None
    if not d.endswith(b"\0"):
        return ("malformed", d)
    parts = d.split(b"\0")
    return (parts[0].decode(),) + tuple(x.decode(errors="replace") for x in parts[1:-1])


def make_home(base, name, owner, dotqmail=None):
    """base/name, a home with a Maildir and the given .qmail<ext> files,
    all owned by owner (uid and gid)."""
    h = os.path.join(base, name)
    os.mkdir(h, 0o755)
    for sub in ("", "tmp", "new", "cur"):
        os.mkdir(os.path.join(h, "Maildir", sub), 0o700)
    for k, v in (dotqmail or {}).items():
        with open(os.path.join(h, ".qmail" + k), "w") as f:
            f.write(v)
    for dp, dn, fn in os.walk(h):
        for x in [dp] + [os.path.join(dp, f) for f in fn]:
            os.chown(x, owner, owner)
    return h


def setup(t, control=None):
    c = {"locals": [DOMAIN]}
    c.update(control or {})
    inst = Instance(t, control=c)
    u, g = inst.uid("alias")
    os.makedirs(inst.path("home"), exist_ok=True)
    os.chmod(inst.path("home"), 0o755)
    lines = []
    for name in USERS:
        home = inst.path("home", name)
        os.makedirs(home, exist_ok=True)
        if name not in ("dave", "erin"):   # dave and erin: no Maildir, so deliveries defer
            make_maildir(inst, home)
        os.chown(home, u, g)
        os.chmod(home, 0o700)
        lines.append("=%s:alias:%d:%d:%s:::" % (name, u, g, home))
    # nobox: an extension with no .qmail-nope: a permanent failure.
    lines.append("=nobox:alias:%d:%d:%s:-:nope:" % (u, g, inst.path("home", "alice")))
    lines.append("+:alias:%d:%d:%s:-::" % (u, g, inst.path("alias")))
    with open(inst.path("users", "assign"), "w") as f:
        f.write("\n".join(lines) + "\n.\n")
    dq = inst.path("alias", ".qmail-default")
    with open(dq, "w") as f:
        f.write("./Maildir/\n")
    os.chown(dq, u, g)
    os.chmod(dq, 0o644)
    subprocess.run([inst.bin("qmail-newu")], check=True)
    return inst


def make_maildir(inst, home):
    u, g = inst.uid("alias")
    for sub in ("Maildir", "Maildir/tmp", "Maildir/new", "Maildir/cur"):
        p = os.path.join(home, sub)
        os.makedirs(p, exist_ok=True)
        os.chown(p, u, g)
        os.chmod(p, 0o700)


def start(inst, log):
    """Starts qmail-start (which becomes qmail-send) logging to log."""
    f = open(log, "ab")
    p = inst.spawn([inst.bin("qmail-start"), "%d:%d" % inst.uid("send"),
                    "%d:%d" % inst.uid("remote"), "./Maildir/"],
                   stderr=f, stdout=f)
    f.close()
    return p


def maildir_of(inst, name):
    if name == "postmaster":
        return inst.path("alias", "Maildir")
    return inst.path("home", name, "Maildir")


def messages(inst, name):
    """(filename, bytes) of every message in the user's Maildir new/."""
    d = os.path.join(maildir_of(inst, name), "new")
    out = []
    try:
        names = os.listdir(d)
    except FileNotFoundError:
        return out
    for n in sorted(names):
        try:
            with open(os.path.join(d, n), "rb") as f:
                out.append((n, f.read()))
        except FileNotFoundError:
            pass
    return out


def read_log(log):
    with open(log, "rb") as f:
        return f.read().decode("utf-8", "replace")


def queue_empty(inst):
    return not os.listdir(inst.path("queue", "mess"))


def children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def status_uid(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("Uid:"):
                return int(line.split()[1])
    return None


def comm(pid):
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return ""


def tokens(sink):
    """The TOKEN-<name>-<n>- marks in every message a Sink received."""
    out = []
    for s in list(sink.sessions):
        for d in s.data:
            out += re.findall(rb"TOKEN-[a-z]+-\d+-", d)
    return out


def dest_lines(log, domain):
    """qmail-send's event=dest lines about one domain."""
    return [l for l in read_log(log).splitlines()
            if "event=dest" in l and "domain=%s " % domain in l + " "]

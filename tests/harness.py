"""Shared test harness: counting checks, and a real installed instance.

Every test script does:

    from harness import T, Instance
    t = T()
    ...
    t.check("what is asserted", condition, detail)
    t.done()          # prints "N passed, N failed, N skipped", exits

Instance() installs the build under test ($BUILD) into its prefix ($PREFIX,
compiled into the programs), wiping what a previous test left there. As
root it uses real separate uids, picked from unused numbers; otherwise it
is a single-uid instance, and root-only checks must call t.skip().
"""
import atexit, os, pwd, grp, shutil, signal, socket, subprocess, sys, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, os.environ.get("BUILD", "build-check"))
if os.path.isabs(os.environ.get("BUILD", "")):
    BUILD = os.environ["BUILD"]
PREFIX = os.environ.get("PREFIX", "")
IS_ROOT = os.geteuid() == 0
# Set by make check-asan: programs exec several times slower there, so load
# loops use smaller counts (the same paths, fewer repetitions).
SANITIZED = bool(os.environ.get("SANITIZED"))


class T:
    def __init__(self):
        self.passed = self.failed = self.skipped = 0
        self.cleanups = []
        # A test that dies on an exception must not leave servers running.
        atexit.register(self.cleanup)

    def check(self, name, cond, detail=""):
        if cond:
            self.passed += 1
            print("ok   " + name, flush=True)
        else:
            self.failed += 1
            print("FAIL " + name + (": " + str(detail) if detail != "" else ""), flush=True)
        return cond

    def skip(self, name, why):
        self.skipped += 1
        print("skip " + name + ": " + why, flush=True)

    def cleanup(self):
        while self.cleanups:
            c = self.cleanups.pop()
            try:
                c()
            except Exception as e:  # cleanup must not hide results
                print("cleanup error: %r" % e)

    def done(self):
        self.cleanup()
        print("%d passed, %d failed, %d skipped" % (self.passed, self.failed, self.skipped), flush=True)
        sys.exit(1 if self.failed else 0)


def free_ids(n, start=7000):
    """n numeric ids used by no user and no group. Tests that tests/run runs
    side by side (TESTS_SLOT) get disjoint ranges, 1000 apart."""
    used = {p.pw_uid for p in pwd.getpwall()} | {g.gr_gid for g in grp.getgrall()}
    out, i = [], start + 1000 * int(os.environ.get("TESTS_SLOT", "0"))
    while len(out) < n:
        if i not in used:
            out.append(i)
        i += 1
    return out


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def processes_under(top, cmdline=True):
    """Pids of processes whose program lives under top, or (cmdline) whose
    command line names it, this one excepted. qmail-send's command line is
    only its name; s6-log's names its log directory."""
    found = set()
    if cmdline:
        r = subprocess.run(["pgrep", "-f", "--", top + "/"], stdout=subprocess.PIPE)
        found = {int(p) for p in r.stdout.split()}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if os.readlink("/proc/%s/exe" % d).startswith(top + "/"):
                    found.add(int(d))
            except OSError:
                pass
    return sorted(found - {os.getpid()})


def supervised(svcdir):
    """s6-supervise runs for svcdir and has written its status file: only
    then can s6-svwait read it (s6-svok alone may answer before)."""
    return (os.path.exists(os.path.join(svcdir, "supervise", "status"))
            and subprocess.run(["s6-svok", svcdir], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL).returncode == 0)


def svscan_stops(scan, scandir):
    """s6-svscanctl -t on scandir: whether the s6-svscan exits within 30 s."""
    if scan.poll() is None:
        subprocess.run(["s6-svscanctl", "-t", scandir], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=30)
        try:
            scan.wait(30)
        except subprocess.TimeoutExpired:
            return False
    return True


def stop_svscan(scan, top, scandir):
    """Ends an s6-svscan started on scandir and kills whatever of top's
    processes is left."""
    svscan_stops(scan, scandir)
    for p in processes_under(top):
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass


def wait_for(cond, timeout=30.0, step=0.05):
    end = time.time() + timeout
    while time.time() < end:
        v = cond()
        if v:
            return v
        time.sleep(step)
    return cond()


class Instance:
    """An installed instance under PREFIX, and the processes it runs."""

    def __init__(self, t, control=None, wipe=True):
        if not PREFIX:
            raise SystemExit("PREFIX is not set: run through make check")
        self.t = t
        self.prefix = PREFIX
        self.procs = []
        if wipe and os.path.isdir(PREFIX):
            shutil.rmtree(PREFIX)
        os.makedirs(os.path.dirname(PREFIX), exist_ok=True)
        env = dict(os.environ, PREFIX=PREFIX, BUILD=BUILD, DESTDIR="")
        if IS_ROOT:
            ids = free_ids(15)
            names = ["QMAIL_GROUP", "QMAIL_NOFILES", "QMAIL_QUEUE", "QMAIL_SEND",
                     "QMAIL_REMOTE", "QMAIL_SMTPD", "QMAIL_LOG", "QMAIL_ALIAS", "QMAIL_AUTH",
                     "QMAIL_TLS", "QMAIL_SMTPDGROUP", "QMAIL_LOGGROUP", "QMAIL_DKIM",
                     "QMAIL_STATE", "QMAIL_METRICS"]
            for k, v in zip(names, ids):
                env[k] = str(v)
        subprocess.run(["sh", os.path.join(ROOT, "service", "install")], env=env,
                       check=True, stdout=subprocess.DEVNULL)
        self.ids = {}
        for line in open(self.path("control/ids")):
            k, _, v = line.strip().partition("=")
            self.ids[k] = v
        self.multi = self.ids.get("mode") == "multi"
        self.control("me", "mail.example.test")
        # qmail-smtpd checks SPF at MAIL: never ask the machine's resolver.
        self.control("dnsserver", "127.0.0.1:1")
        for k, v in (control or {}).items():
            self.control(k, v)
        t.cleanups.append(self.stop)

    def path(self, *p):
        return os.path.join(self.prefix, *p)

    def bin(self, name):
        return self.path("bin", name)

    def uid(self, role):
        return tuple(int(x) for x in self.ids[role].split(":"))

    def control(self, name, value):
        """Writes control/name; a list becomes one line per item."""
        if isinstance(value, (list, tuple)):
            value = "\n".join(value)
        with open(self.path("control", name), "w") as f:
            f.write(value + ("\n" if value and not value.endswith("\n") else ""))

    def spawn(self, argv, **kw):
        """Starts a long-running process that stop() ends."""
        kw.setdefault("stdin", subprocess.DEVNULL)
        p = subprocess.Popen(argv, **kw)
        self.procs.append(p)
        return p

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                try:
                    p.send_signal(signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs = []

    def queue_files(self):
        return sorted(os.listdir(self.path("queue", "mess")))

    def maildir(self, path, sub="new"):
        """Names of the messages in a Maildir, sorted."""
        d = os.path.join(path, sub)
        try:
            return sorted(os.listdir(d))
        except FileNotFoundError:
            return []

    def inject(self, sender, rcpts, message, qq=None, env=None):
        """Runs qmail-queue with message on fd 0 and the envelope on fd 1;
        returns its exit code."""
        envelope = b"F" + sender.encode() + b"\0" + b"".join(
            b"T" + r.encode() + b"\0" for r in rcpts) + b"\0"
        if isinstance(message, str):
            message = message.encode()
        r, w = os.pipe()
        p = subprocess.Popen([qq or self.bin("qmail-queue")], stdin=subprocess.PIPE,
                             stdout=r, env=env)
        os.close(r)
        p.stdin.write(message)
        p.stdin.close()
        os.write(w, envelope)
        os.close(w)
        return p.wait()

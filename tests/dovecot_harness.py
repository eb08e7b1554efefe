"""The real Dovecot, started by a test on loopback with a configuration of
its own (in a fresh directory that the cleanup removes): shared by the
IMAP test (t-dovecot.py) and the LMTP test (t-lmtp-dovecot.py). Root
only: Dovecot switches to the mailbox owner's uid."""
import os, shutil, subprocess, tempfile
from harness import IS_ROOT, wait_for

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"

# What every instance says: its own directories, plaintext on loopback, the
# Maildirs of uids an Instance picks (first_valid_uid 1).
COMMON = """base_dir = %(top)s/run
state_dir = %(top)s/state
log_path = %(top)s/dovecot.log
listen = 127.0.0.1
ssl = no
mail_location = maildir:~/Maildir
first_valid_uid = 1
default_internal_user = dovecot
default_login_user = dovenull
service anvil {
  chroot =
}
"""


def require(t, protocol, what):
    """Ends the test with what skipped unless this host can run Dovecot's
    protocol ("imap", "lmtp") as root."""
    if not (IS_ROOT and os.path.exists(DOVECOT) and os.path.exists("/usr/lib/dovecot/" + protocol)):
        t.skip(what, "needs root and dovecot-%sd" % protocol)
        t.done()


class Dovecot:
    """dovecot -F on conf (COMMON, then the test's part, formatted with
    top and the keywords given), in a directory of its own."""

    def __init__(self, t, conf, **kw):
        self.top = tempfile.mkdtemp(prefix="qmdove.")
        os.chmod(self.top, 0o755)
        self.conf = os.path.join(self.top, "dovecot.conf")
        kw["top"] = self.top
        with open(self.conf, "w") as f:
            f.write((COMMON + conf) % kw)
        self.proc = subprocess.Popen([DOVECOT, "-F", "-c", self.conf],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        t.cleanups.append(self.stop)

    def path(self, *p):
        return os.path.join(self.top, *p)

    def log(self):
        try:
            with open(self.path("dovecot.log"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def wait(self, up, timeout=20):
        """Waits until up() (a probe of a listener) holds; its result."""
        return wait_for(up, timeout, 0.1)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.top, ignore_errors=True)

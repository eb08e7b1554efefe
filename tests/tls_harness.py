"""Helpers for the tests/t-tls*.py scripts: a test CA and certificates made
with the openssl command, and qmail-tlsd + qmail-smtpd under tcpserver."""
import os, shutil, subprocess, tempfile
from harness import free_port, wait_for, IS_ROOT
from smtpd_harness import Server


def run(argv, **kw):
    return subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kw)


class CA:
    """A certificate authority in a temporary directory."""

    def __init__(self, t, name="Test CA"):
        self.dir = tempfile.mkdtemp(prefix="tls-ca-")
        t.cleanups.append(lambda: shutil.rmtree(self.dir, ignore_errors=True))
        self.key = self.p("ca.key")
        self.cert = self.p("ca.pem")
        run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
             "-subj", "/CN=" + name, "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             "-keyout", self.key, "-out", self.cert])
        with open(self.p("index.txt"), "w"):
            pass
        with open(self.p("serial"), "w") as f:
            f.write("1000\n")
        with open(self.p("ca.cnf"), "w") as f:
            f.write("""[ca]
default_ca = test
[test]
dir = %s
database = $dir/index.txt
serial = $dir/serial
new_certs_dir = $dir
certificate = $dir/ca.pem
private_key = $dir/ca.key
default_md = sha256
policy = any
unique_subject = no
copy_extensions = copy
[any]
commonName = supplied
""" % self.dir)

    def p(self, name):
        return os.path.join(self.dir, name)

    def issue(self, name, keytype="rsa", start=None, end=None, days=30):
        """(cert path, key path) for DNS name, signed by this CA. start/end
        ("YYYYMMDDHHMMSSZ") make a certificate of another time."""
        base = "%s-%s" % (name, keytype)
        key, csr, crt = self.p(base + ".key"), self.p(base + ".csr"), self.p(base + ".pem")
        newkey = ["-newkey", "rsa:2048"] if keytype == "rsa" else \
            ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
        run(["openssl", "req", "-new"] + newkey + ["-nodes", "-subj", "/CN=" + name,
             "-addext", "subjectAltName=DNS:" + name, "-keyout", key, "-out", csr])
        argv = ["openssl", "ca", "-batch", "-notext", "-config", self.p("ca.cnf"),
                "-in", csr, "-out", crt]
        argv += ["-startdate", start, "-enddate", end] if start else ["-days", str(days)]
        run(argv)
        return crt, key


def self_signed(directory, name, keytype="ec"):
    key, crt = os.path.join(directory, name + "-ss.key"), os.path.join(directory, name + "-ss.pem")
    newkey = ["-newkey", "rsa:2048"] if keytype == "rsa" else \
        ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
    run(["openssl", "req", "-x509"] + newkey + ["-nodes", "-days", "30", "-subj", "/CN=" + name,
         "-addext", "subjectAltName=DNS:" + name, "-keyout", key, "-out", crt])
    return crt, key


def install_cert(inst, cert, key):
    """Puts a certificate and key into control/tls as install would."""
    d = inst.path("control", "tls")
    shutil.copy(cert, os.path.join(d, "cert.pem"))
    shutil.copy(key, os.path.join(d, "key.pem"))
    os.chmod(os.path.join(d, "key.pem"), 0o400)
    os.chmod(os.path.join(d, "cert.pem"), 0o444)


class TlsServer(Server):
    """tcpserver, as root when we are, running qmail-tlsd [-i] tls-ids
    smtpd-ids, which runs qmail-smtpd; or, with front="listen" (by default
    when TLS_FRONT=listen is in the environment, as t-tls-listen.py sets
    it), qmail-smtpd-listen -t tls-ids [-i] -u -g smtpd-ids, the same relay
    and session without tcpserver. The interface of smtpd_harness's
    Server (connect, logtext, port)."""

    def __init__(self, inst, relay=True, implicit=False, env=None, name="tlsd", front=None):
        i = ["-i"] if implicit else []
        tls, smtpd = "%d:%d" % inst.uid("tls"), inst.uid("smtpd")
        if (front or os.environ.get("TLS_FRONT")) == "listen":
            super().__init__(inst, relay, env, name, listener=["-t", tls] + i + [
                "-u", str(smtpd[0]), "-g", str(smtpd[1])])
        else:
            super().__init__(inst, relay, env, name,
                             program=[inst.bin("qmail-tlsd")] + i + [tls, "%d:%d" % smtpd])


def run_remote(inst, domain, rcpt, message, **kw):
    """Runs bin/qmail-remote to rcpt through domain's route with message on
    fd 0: (result letter K/Z/D or "?", its text, stderr). kw goes to
    subprocess.run (e.g. a preexec_fn taking the remote uid)."""
    p = subprocess.run([inst.bin("qmail-remote"), domain, "a@example.test", rcpt],
                       input=message, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=60, **kw)
    parts = p.stdout.split(b"\0")
    if p.returncode != 0 or len(parts) < 3:
        return "?", repr(p), p.stderr.decode()
    last = parts[1].decode("utf-8", "replace")
    return last[:1], last[1:], p.stderr.decode("utf-8", "replace")


def received_header(q):
    """The header of the one message queued since q was last asked, or ""."""
    new = q.new(expect=1)
    if len(new) != 1:
        return ""
    return q.read(new[0])[0].decode("utf-8", "replace").split("\n\n")[0]

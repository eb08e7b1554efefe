#!/usr/bin/env python3
"""TLS session resumption through qmail-smtpd-listen -t: the TLS
processes of one listener share a session cache (RFC 5246 session IDs),
so a client that kept its session resumes it on its next connection;
another listener, an expired entry, a guessed ID or a stolen ID without
the master secret do not; the SMTP session process never maps the
cache."""
import os, re, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import T, Instance, IS_ROOT, wait_for
from smtpd_harness import Client
from tls_harness import CA, TlsServer, install_cert
import ssl

t = T()
inst = Instance(t)
ca = CA(t)
cert, key = ca.issue("mail.example.test", "ec")
install_cert(inst, cert, key)
a = TlsServer(inst, front="listen", name="resa")
b = TlsServer(inst, front="listen", name="resb")
ttl = inst.path("control", "tlssessiontimeout")
with open(ttl, "w") as f:
    f.write("2\n")
short = TlsServer(inst, front="listen", name="resshort")   # reads it at start
os.unlink(ttl)

ctx = ssl.create_default_context(cafile=ca.cert)
ctx.maximum_version = ssl.TLSVersion.TLSv1_2      # session IDs, not TLS 1.3 tickets


def starttls(port, session=None):
    """EHLO, STARTTLS, handshake (offering session), EHLO: (client, tls socket)."""
    c = Client(port)
    c.cmd("EHLO client.test")
    code, _ = c.cmd("STARTTLS")
    if code != 220:
        raise RuntimeError("STARTTLS: %d" % code)
    c.s = ctx.wrap_socket(c.s, server_hostname="mail.example.test", session=session)
    c.buf = b""
    return c


def session_of(port, session=None):
    """(session, reused, EHLO's code) of one STARTTLS connection that QUITs."""
    c = starttls(port, session)
    code = c.cmd("EHLO client.test")[0]
    s, reused = c.s.session, c.s.session_reused
    c.cmd("QUIT")
    c.close()
    return s, reused, code


s1, reused, code = session_of(a.port)
t.check("a full handshake: a new session with a 32-byte ID", not reused and code == 250 and len(s1.id) == 32,
        (reused, code, s1.id))
s2, reused, code = session_of(a.port, s1)
t.check("the next connection resumes it (another TLS process of the same listener)",
        reused and s2.id == s1.id and code == 250, (reused, s2.id, s1.id))
c = starttls(a.port, s1)
codes = c.transaction("a@example.test", ["b@example.test"])
t.check("a resumed session carries a transaction", c.s.session_reused and codes == [250, 250, 250], codes)
c.close()
s3, reused, _ = session_of(a.port)
t.check("each full handshake gets an ID of its own", not reused and s3.id not in (s1.id,), (s3.id, s1.id))
_, reused, code = session_of(b.port, s1)
t.check("another listener does not resume it", not reused and code == 250, (reused, code))

s4, _, _ = session_of(short.port)
_, reused, _ = session_of(short.port, s4)
t.check("before it expires, the short-lived entry resumes", reused)
time.sleep(2.5)
_, reused, code = session_of(short.port, s4)
t.check("after control/tlssessiontimeout, the entry has expired: a full handshake",
        not reused and code == 250, (reused, code))


# --- a hostile client: by ID only, and the ID is not enough --------------
def s_client(port, extra):
    argv = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-CAfile", ca.cert,
            "-servername", "mail.example.test", "-starttls", "smtp", "-tls1_2", "-ign_eof"]
    p = subprocess.run(argv + extra, input=b"EHLO x\r\nQUIT\r\n", stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=30)
    return p.returncode, p.stdout.decode("utf-8", "replace")


sess = inst.path("sess.pem")
rc, out = s_client(a.port, ["-sess_out", sess])
t.check("s_client: a new session saved", rc == 0 and "New, TLSv1.2" in out, out[-400:])
rc, out = s_client(a.port, ["-sess_in", sess])
t.check("s_client resumes it", rc == 0 and "Reused, TLSv1.2" in out, out[-400:])


def tampered(field, name):
    """The saved session with one byte of its field (Session-ID or
    Master-Key) changed, as a file s_client -sess_in reads."""
    text = subprocess.run(["openssl", "sess_id", "-in", sess, "-noout", "-text"], check=True,
                          stdout=subprocess.PIPE).stdout.decode()
    value = bytes.fromhex(re.search(r"%s: ([0-9A-F]+)" % field, text).group(1))
    der = subprocess.run(["openssl", "sess_id", "-in", sess, "-outform", "DER"], check=True,
                         stdout=subprocess.PIPE).stdout
    assert der.count(value) == 1
    der = der.replace(value, bytes([value[0] ^ 1]) + value[1:])
    out = inst.path(name)
    subprocess.run(["openssl", "sess_id", "-inform", "DER", "-out", out], input=der, check=True)
    return out


rc, out = s_client(a.port, ["-sess_in", tampered("Session-ID", "guess.pem")])
t.check("a session ID not in the cache (one bit off): a full handshake",
        rc == 0 and "New, TLSv1.2" in out, out[-400:])
# The ID is public (ServerHello carries it in clear): a client that
# presents another's ID without its master secret gets nothing.
rc, out = s_client(a.port, ["-sess_in", tampered("Master-Key", "stolen.pem")])
# (s_client says "Reused" when the ServerHello echoes the ID, then fails
# on the server's Finished: the keys are not those of the master secret.)
t.check("another client's session ID without its master secret: the handshake fails, no SMTP",
        rc != 0 and "bad record mac" in out and not re.search(r"^250[ -]", out, re.M), (rc, out[-600:]))
rc, out = s_client(a.port, ["-sess_in", sess])
t.check("the rightful client still resumes", rc == 0 and "Reused, TLSv1.2" in out, out[-400:])

# --- the cache is the TLS processes' only ----------------------------------
if IS_ROOT and inst.multi:
    c = starttls(a.port, s1)
    c.cmd("EHLO client.test")

    def shared_rw(name):
        """{pid: its shared writable anonymous mappings} of a's processes
        called name (a file's, such as metrics/, is not the cache)."""
        out = {}
        for p in os.listdir("/proc"):
            try:
                if not p.isdigit() or os.readlink("/proc/%s/exe" % p) != inst.bin("qmail-smtpd-listen") \
                        or open("/proc/%s/comm" % p).read().strip() != name:
                    continue
                out[int(p)] = [x for x in open("/proc/%s/maps" % p).read().splitlines()
                               if x.split()[1] == "rw-s" and " ".join(x.split()[5:]) in ("", "/dev/zero (deleted)")]
            except OSError:
                pass
        return out

    tlsp = wait_for(lambda: shared_rw("qmail-tlsd"), 5) or {}
    smtpdp = shared_rw("qmail-smtpd")
    t.check("the TLS processes map the cache (shared, writable)", tlsp and all(tlsp.values()), tlsp)
    t.check("no SMTP session process maps it", smtpdp and not any(smtpdp.values()), smtpdp)
    c.close()
else:
    t.skip("the cache's mappings", "needs root and a multi-uid instance")

t.done()

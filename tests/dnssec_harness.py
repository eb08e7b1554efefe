"""A DNSSEC test world on loopback for the DANE tests: zones signed here
with ldns-signzone, served by an authoritative unbound (auth-zone), and a
validating unbound that knows only the test's trust anchor and reaches the
zones through stub-zones. Neither ever asks anything outside 127.0.0.1:
every name but the test zones is refused (local-zone "." refuse, the test
zones transparent), and queries leave from 127.0.0.1 only."""
import os, shutil, subprocess, tempfile

from harness import free_port, wait_for
from remote_peers import Dns


def _run(argv, cwd):
    return subprocess.run(argv, cwd=cwd, check=True, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE).stdout.decode()


COMMON = """server:
  port: %(port)d
  interface: 127.0.0.1
  do-ip6: no
  username: ""
  chroot: ""
  directory: "%(dir)s"
  pidfile: ""
  use-syslog: no
  logfile: "%(dir)s/%(name)s.log"
  verbosity: 1
  do-daemonize: no
  num-threads: 1
  so-reuseport: no
  access-control: 127.0.0.0/8 allow
  module-config: "%(modules)s"
  outgoing-interface: 127.0.0.1
  local-zone: "." refuse
"""


class Unbound(Dns):
    """unbound -d on 127.0.0.1:<port> with conf extra (after COMMON); Dns's
    readiness probe (any answer, REFUSED too) and close."""

    def __init__(self, t, d, name, modules, extra):
        self.port = free_port()
        conf = os.path.join(d, name + ".conf")
        with open(conf, "w") as f:
            f.write(COMMON % dict(port=self.port, dir=d, name=name, modules=modules) + extra +
                    "remote-control:\n  control-enable: no\n")
        self.log = os.path.join(d, name + ".log")
        self.proc = subprocess.Popen(["unbound", "-d", "-c", conf], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        t.cleanups.append(self.close)
        self.ok = wait_for(self._answers, timeout=10)


class SignedWorld:
    """zones: {origin: (records, signed, tamper)} with records as zone-file
    lines relative to the origin; signed zones get one ECDSA P-256 key
    (its DNSKEY the validator's trust anchor); tamper: (old, new)
    replacements in the signed text, so that those RRSIGs no longer fit
    (a bogus answer). .port is the validating resolver's."""

    def __init__(self, t, zones):
        self.dir = tempfile.mkdtemp(prefix="dnssec-")
        t.cleanups.append(lambda: shutil.rmtree(self.dir, ignore_errors=True))
        d = self.dir
        transparent, zauth, anchors = "", "", ""
        for origin, (records, signed, tamper) in zones.items():
            path = os.path.join(d, origin + ".zone")
            with open(path, "w") as f:
                f.write("$ORIGIN %s.\n$TTL 300\n" % origin)
                f.write("@ SOA ns.%s. hostmaster.%s. 1 3600 600 86400 300\n@ NS ns.%s.\n" % ((origin,) * 3))
                f.write("ns A 127.0.0.1\n")
                f.write("\n".join(records) + "\n")
            if signed:
                key = _run(["ldns-keygen", "-a", "ECDSAP256SHA256", "-k", origin], d).strip()
                _run(["ldns-signzone", "-o", origin, path, key], d)
                path += ".signed"
                text = open(path).read()
                for old, new in tamper:
                    if old not in text:
                        raise RuntimeError("tamper: %r not in the signed zone" % old)
                    text = text.replace(old, new)
                with open(path, "w") as f:
                    f.write(text)
                anchors += '  trust-anchor-file: "%s"\n' % os.path.join(d, key + ".key")
            transparent += '  local-zone: "%s." transparent\n' % origin
            zauth += 'auth-zone:\n  name: "%s"\n  zonefile: "%s"\n  for-downstream: yes\n' \
                    '  for-upstream: no\n  fallback-enabled: no\n' % (origin, path)
        self.auth = Unbound(t, d, "auth", "iterator", transparent + zauth)
        stubs = "".join('stub-zone:\n  name: "%s"\n  stub-addr: 127.0.0.1@%d\n' % (o, self.auth.port)
                        for o in zones)
        self.resolver = Unbound(t, d, "validator", "validator iterator",
                                "  do-not-query-localhost: no\n  qname-minimisation: no\n"
                                "  val-log-level: 2\n  harden-dnssec-stripped: yes\n" + transparent + anchors + stubs)
        self.ok = self.auth.ok and self.resolver.ok
        self.port = self.resolver.port

    def logs(self):
        out = ""
        for u in (self.auth, self.resolver):
            try:
                out += open(u.log).read()
            except OSError:
                pass
        return out

#!/usr/bin/env python3
"""lib/dmarc against a DNS zone on loopback (dnsmasq, names under .test,
never the machine's resolver): a table of cases built from RFC 7489's own
examples (appendix B.1's alignment cases, B.2's records with p=none,
quarantine and pct=25) adapted to .test names, plus policy discovery at
the organizational domain (sp=), several records, a record that is not
DMARC, records broken in the ways 6.6.3 step 6 and 11.2 distinguish, a
SERVFAIL (temperror), and From: fields 6.6.1 has the receiver reject.
The Public Suffix List is a test file in which "test" and "co.test" are
suffixes, so example.test is an organizational domain as example.com is.

Where OpenDMARC's libopendmarc (Debian's libopendmarc2) can be loaded, the
cases it is meant to agree on (well-formed records, no pct=, one DKIM
result) also go through it by ctypes: it reads the same list and asks the
same dnsmasq (its resolver hook replaces every name server), and must
reach the same verdict."""
import ctypes, ctypes.util, os, socket, struct, subprocess, sys, tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import T, BUILD
from remote_peers import Dns

t = T()
CHECK = os.path.join(BUILD, "testbin", "dmarccheck")
tmp = tempfile.mkdtemp(prefix="t-dmarc.")
t.cleanups.append(lambda: subprocess.run(["rm", "-rf", tmp]))
PSL = os.path.join(tmp, "psl.dat")
with open(PSL, "w") as f:
    f.write("// test list\ntest\nco.test\n*.wild.test\n!www.wild.test\n")


def txt(name, *strings):
    """A TXT record, for dnsmasq's configuration file (where, unlike on
    its command line, quotes delimit strings and may hold commas)."""
    return "txt-record=%s,%s" % (name, ",".join('"%s"' % s for s in strings))


ZONE = [
    # RFC 7489 B.2.1: monitoring only.
    txt("_dmarc.monitor.test", "v=DMARC1; p=none; rua=mailto:dmarc-feedback@monitor.test"),
    # B.2.3: quarantine, with per-message reports to a third party.
    txt("_dmarc.quar.test", "v=DMARC1; p=quarantine; rua=mailto:dmarc-feedback@quar.test; "
        "ruf=mailto:auth-reports@thirdparty.test; fo=1"),
    # B.2.4: sampling, two aggregate URIs, one with a size limit.
    txt("_dmarc.sample.test", "v=DMARC1; p=quarantine; rua=mailto:dmarc-feedback@sample.test, "
        "mailto:tld-test@thirdparty.test!10m; pct=25"),
    txt("_dmarc.example.test", "v=DMARC1; p=reject; sp=quarantine; adkim=r; aspf=r"),
    txt("_dmarc.own.example.test", "v=DMARC1; p=none"),
    txt("_dmarc.strict.test", "v=DMARC1; p=reject; adkim=s; aspf=s"),
    txt("_dmarc.multi.test", "v=DMARC1; p=reject"),
    txt("_dmarc.multi.test", "v=DMARC1; p=none"),
    txt("_dmarc.mixed.test", "v=spf1 -all"),
    txt("_dmarc.mixed.test", "v=DMARC1; p=reject"),
    txt("_dmarc.split.test", "v=DMARC1; ", "p=reject"),
    txt("_dmarc.notfirst.test", "p=reject; v=DMARC1"),
    txt("_dmarc.badp.test", "v=DMARC1; p=bogus"),
    txt("_dmarc.badprua.test", "v=DMARC1; p=bogus; rua=mailto:agg@badprua.test"),
    txt("_dmarc.broken.test", "v=DMARC1; p=reject; pct=200"),
    txt("_dmarc.shop.co.test", "v=DMARC1; p=reject"),
    txt("_dmarc.corp.wild.test", "v=DMARC1; p=reject"),
    txt("_dmarc.a.corp.wild.test", "v=DMARC1; p=quarantine"),
]
with open(os.path.join(tmp, "zone.conf"), "w") as f:
    f.write("\n".join(ZONE) + "\n")
dns = Dns(t, ["--conf-file=" + os.path.join(tmp, "zone.conf")], forward=["tempfail.test"])
t.check("dnsmasq answers", dns.ok)


def run(msg, *args, roll=0):
    p = subprocess.run([CHECK, PSL, "127.0.0.1:%d" % dns.port, str(roll)] + list(args),
                       input=msg.encode(), capture_output=True, timeout=30)
    if p.returncode:
        return {"error": p.stderr.decode()}
    return dict(kv.split("=", 1) for kv in p.stdout.decode().split())


def frm(addr):
    return "From: %s\nTo: rcpt@receiver.test\nSubject: t\n\nbody\n" % addr


# name, message, arguments (spf=D: SPF pass for D; dkim=D / dkimfail=D),
# roll, what must be in the result, whether OpenDMARC is to agree.
CASES = [
    # B.1.1 SPF alignment: the same domain, a child (relaxed only), another.
    ("B.1.1 spf same domain", frm("a@example.test"), ["spf=example.test"], 0,
     dict(result="pass", policy="reject", spf_aligned="1", dkim_aligned="0"), True),
    ("B.1.1 spf child, relaxed", frm("a@example.test"), ["spf=child.example.test"], 0,
     dict(result="pass", spf_aligned="1"), True),
    # Not for OpenDMARC 1.4.2: in strict mode it also accepts a domain whose
    # organizational domain is the From domain, where 3.1.1 wants an exact match.
    ("B.1.1 spf child, strict", frm("a@strict.test"), ["spf=child.strict.test"], 0,
     dict(result="fail", policy="reject", applied="reject", spf_aligned="0"), False),
    ("B.1.1 spf other domain", frm("a@example.test"), ["spf=example.net.test"], 0,
     dict(result="fail", applied="reject"), True),
    ("spf same domain, strict", frm("a@strict.test"), ["spf=STRICT.test"], 0,
     dict(result="pass", spf_aligned="1"), True),
    # B.1.2 DKIM alignment.
    ("B.1.2 dkim same domain", frm("a@example.test"), ["dkim=example.test"], 0,
     dict(result="pass", dkim_aligned="1", spf_aligned="0"), True),
    ("B.1.2 dkim child, relaxed", frm("a@example.test"), ["dkim=child.example.test"], 0,
     dict(result="pass", dkim_aligned="1"), True),
    ("B.1.2 dkim child, strict", frm("a@strict.test"), ["dkim=child.strict.test"], 0,
     dict(result="fail", dkim_aligned="0"), False),
    ("B.1.2 dkim other domain", frm("a@example.test"), ["dkim=example.net.test"], 0,
     dict(result="fail", applied="reject"), True),
    ("B.1.3 dkim parent of a subdomain From", frm("a@sub.example.test"), ["dkim=example.test"], 0,
     dict(result="pass", org="example.test", where="example.test"), True),
    ("dkim signature that failed", frm("a@example.test"), ["dkimfail=example.test"], 0,
     dict(result="fail", dkim_aligned="0"), True),
    ("one aligned pass among others", frm("a@example.test"),
     ["dkim=other.test", "dkimfail=example.test", "dkim=mail.example.test"], 0,
     dict(result="pass", dkim_aligned="1"), False),
    ("nothing authenticated", frm("a@example.test"), [], 0,
     dict(result="fail", applied="reject"), True),
    # B.2: the example records.
    ("B.2.1 p=none fails with nothing to do", frm("a@monitor.test"), [], 0,
     dict(result="fail", policy="none", applied="none"), True),
    ("B.2.3 p=quarantine", frm("a@quar.test"), ["spf=elsewhere.test"], 0,
     dict(result="fail", policy="quarantine", applied="quarantine"), True),
    ("B.2.3 p=quarantine, aligned", frm("a@quar.test"), ["spf=mail.quar.test"], 0,
     dict(result="pass", policy="quarantine", applied="none"), True),
    ("B.2.4 pct=25, sampled", frm("a@sample.test"), [], 24,
     dict(result="fail", policy="quarantine", applied="quarantine"), False),
    ("B.2.4 pct=25, not sampled: one step lower", frm("a@sample.test"), [], 25,
     dict(result="fail", policy="quarantine", applied="none"), False),
    # Policy discovery (6.6.3).
    ("subdomain: sp= of the organizational domain", frm("a@child.example.test"), [], 0,
     dict(result="fail", policy="quarantine", applied="quarantine", where="example.test"), True),
    ("subdomain with its own record: its p=", frm("a@own.example.test"), [], 0,
     dict(result="fail", policy="none", where="own.example.test"), True),
    ("deep subdomain: the organizational domain", frm("a@x.y.z.example.test"), [], 0,
     dict(result="fail", policy="quarantine", org="example.test", where="example.test"), True),
    ("under a two-label suffix", frm("a@mail.shop.co.test"), [], 0,
     dict(result="fail", policy="reject", org="shop.co.test", where="shop.co.test"), True),
    # Not for OpenDMARC 1.4.2 either: it takes corp.wild.test for the
    # organizational domain, where the list's rule *.wild.test makes
    # corp.wild.test a public suffix.
    ("under a wildcard suffix", frm("a@x.a.corp.wild.test"), [], 0,
     dict(result="fail", policy="quarantine", org="a.corp.wild.test", where="a.corp.wild.test"), False),
    ("no record anywhere", frm("a@norecord.test"), ["spf=norecord.test"], 0,
     dict(result="none", policy="none", applied="none", where=""), True),
    ("no record, subdomain", frm("a@sub.norecord.test"), [], 0,
     dict(result="none", where=""), True),
    ("two DMARC records: no DMARC", frm("a@multi.test"), [], 0,
     dict(result="none", where=""), False),
    ("an SPF record beside: ignored", frm("a@mixed.test"), [], 0,
     dict(result="fail", policy="reject"), True),
    ("a record in two strings", frm("a@split.test"), [], 0,
     dict(result="fail", policy="reject"), True),
    ("v= not first: not DMARC", frm("a@notfirst.test"), [], 0,
     dict(result="none"), False),
    ("invalid p=, no rua=: no DMARC", frm("a@badp.test"), [], 0,
     dict(result="none"), False),
    ("invalid p= with rua=: p=none", frm("a@badprua.test"), [], 0,
     dict(result="fail", policy="none", applied="none"), False),
    ("pct=200: permerror", frm("a@broken.test"), ["dkim=broken.test"], 0,
     dict(result="permerror", applied="none", where=""), False),
    ("SERVFAIL: temperror", frm("a@tempfail.test"), ["dkim=tempfail.test"], 0,
     dict(result="temperror", applied="none", where=""), False),
    # The From: field (6.6.1), read with RFC 5322's grammar.
    ("From with comments and a quoted display name",
     'From: "x@attacker.test" (y@attacker.test) <a@example.test>\n\n', ["dkim=example.test"], 0,
     dict(result="pass"), False),
    ("From in upper case", frm("a@EXAMPLE.Test"), [], 0, dict(result="fail", org="example.test"), False),
    ("no From", "To: a@b.test\n\n", [], 0, {"from": "no_from"}, False),
    ("two From fields", "From: a@example.test\nFrom: b@attacker.test\n\n", [], 0,
     {"from": "multiple_from"}, False),
    ("two addresses", frm("a@example.test, b@attacker.test"), [], 0,
     {"from": "multiple_addresses"}, False),
    ("no domain", frm("a"), [], 0, {"from": "bad_from"}, False),
]

for name, msg, args, roll, want, _ in CASES:
    got = run(msg, *args, roll=roll)
    t.check(name, all(got.get(k) == v for k, v in want.items()), "%r, want %r" % (got, want))

# --- the same cases through OpenDMARC ---------------------------------------
lib = None
path = ctypes.util.find_library("opendmarc")
if path:
    try:
        lib = ctypes.CDLL(path)
    except OSError:
        lib = None


class LibInit(ctypes.Structure):
    """OPENDMARC_LIB_T, with glibc's MAXPATHLEN (4096) and MAXNS (3)."""
    _fields_ = [("tld_type", ctypes.c_int), ("tld_source_file", ctypes.c_char * 4096),
                ("nscount", ctypes.c_int), ("nsaddr_list", (ctypes.c_char * 16) * 3)]


OD_ABSENT, OD_PASS, OD_REJECT, OD_QUARANTINE, OD_NONE = 14, 15, 16, 17, 18
OD_NAMES = {OD_ABSENT: "none", OD_PASS: "pass", OD_REJECT: "reject",
            OD_QUARANTINE: "quarantine", OD_NONE: "fail-none"}


def opendmarc(domain, args):
    """OpenDMARC's verdict: none (no record), pass, or the policy of a fail."""
    c = lib.opendmarc_policy_connect_init(b"192.0.2.1", 4)
    try:
        lib.opendmarc_policy_store_from_domain(c, domain.encode())
        for a in args:
            k, d = a.split("=", 1)
            if k == "spf":
                lib.opendmarc_policy_store_spf(c, d.encode(), 1, 1, None)
            else:
                lib.opendmarc_policy_store_dkim(c, d.encode(), b"sel", 1 if k == "dkim" else 2, None)
        lib.opendmarc_policy_query_dmarc(c, domain.encode())
        return OD_NAMES.get(lib.opendmarc_get_policy_to_enforce(c), "?")
    finally:
        lib.opendmarc_policy_connect_shutdown(c)


def ours(got):
    r = got.get("result")
    if r == "fail":
        return got.get("policy") if got.get("policy") != "none" else "fail-none"
    return r


t.check("libopendmarc is installed (Debian libopendmarc2, .ci/install-deps)", lib is not None)
if lib is not None:
    lib.opendmarc_policy_connect_init.restype = ctypes.c_void_p
    lib.opendmarc_policy_connect_init.argtypes = [ctypes.c_char_p, ctypes.c_int]
    lib.opendmarc_policy_connect_shutdown.argtypes = [ctypes.c_void_p]
    for fn in ("opendmarc_policy_store_from_domain", "opendmarc_policy_query_dmarc"):
        getattr(lib, fn).argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.opendmarc_policy_store_spf.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int,
                                               ctypes.c_int, ctypes.c_char_p]
    lib.opendmarc_policy_store_dkim.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p,
                                                ctypes.c_int, ctypes.c_char_p]
    lib.opendmarc_get_policy_to_enforce.argtypes = [ctypes.c_void_p]
    init = LibInit()
    init.tld_type = 1                       # OPENDMARC_TLD_TYPE_MOZILLA
    init.tld_source_file = PSL.encode()
    init.nscount = 1
    init.nsaddr_list[0].raw = struct.pack("=H", socket.AF_INET) + struct.pack(">H", dns.port) + \
        socket.inet_aton("127.0.0.1") + b"\0" * 8
    t.check("OpenDMARC initializes", lib.opendmarc_policy_library_init(ctypes.byref(init)) == 0)
    for name, msg, args, roll, want, od in CASES:
        if not od:
            continue
        got = run(msg, *args, roll=roll)
        domain = msg.split("@", 1)[1].split("\n", 1)[0].strip(">").lower()
        theirs = opendmarc(domain, args)
        t.check("OpenDMARC agrees: " + name, theirs == ours(got), "opendmarc %s, ours %r" % (theirs, got))
    t.check("OpenDMARC found records in the zone (its queries reached dnsmasq)",
            opendmarc("example.test", []) == "reject")
    lib.opendmarc_policy_library_shutdown(ctypes.byref(init))

t.done()

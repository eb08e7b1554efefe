#!/usr/bin/env python3
"""MTA-STS (RFC 8461) in qmail-remote: policies served over HTTPS on
loopback (a test CA given as control/tlsca), names from a dnsmasq zone,
this MTA's own qmail-tlsd + qmail-smtpd as every MX (its certificate for
mx.good.test). Enforce with a matching MX, with a non-matching MX and with
a certificate of another name; testing; a policy change by id; a policy
host gone with a policy cached; then qmail-tlsrpt's report of the day."""
import os, re, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import T, Instance, IS_ROOT
from remote_peers import Dns
from smtpd_harness import Queue
from sts_harness import PolicyServer
from tls_harness import CA, TlsServer, install_cert, run_remote

t = T()
inst = Instance(t)
ca = CA(t)
install_cert(inst, *ca.issue("mx.good.test", "rsa"))
srv = TlsServer(inst)
q = Queue(inst)
domains = ["enforce.test", "nomatch.test", "badcert.test", "testing.test", "redirect.test"]
web = PolicyServer(t, ca, domains)


def policy(mode, mx, age=86400):
    return "version: STSv1\r\nmode: %s\r\n%smax_age: %d\r\n" % (mode, "".join("mx: %s\r\n" % m for m in mx), age)


web.serve("enforce.test", policy("enforce", ["*.good.test"]))
web.serve("nomatch.test", policy("enforce", ["mail.elsewhere.test"]))
web.serve("badcert.test", policy("enforce", ["other.good.test"]))
web.serve("testing.test", policy("testing", ["other.good.test"]))
web.serve("redirect.test", "", status=301)

dns = None


def zone(ids):
    """(Re)starts dnsmasq with the zone, _mta-sts ids as given."""
    global dns
    if dns:
        dns.close()
    rec = ["--host-record=mx.good.test,127.0.0.1", "--host-record=other.good.test,127.0.0.1"]
    mx = {"enforce.test": "mx.good.test", "nomatch.test": "mx.good.test", "badcert.test": "other.good.test",
          "testing.test": "other.good.test", "redirect.test": "mx.good.test"}
    for d in domains:
        rec += ["--mx-host=%s,%s,10" % (d, mx[d]), "--host-record=mta-sts.%s,127.0.0.1" % d,
                "--txt-record=_mta-sts.%s,v=STSv1; id=%s" % (d, ids.get(d, "1")),
                "--txt-record=_smtp._tls.%s,v=TLSRPTv1; rua=mailto:tlsrpt@%s" % (d, d)]
    dns = Dns(t, rec)
    t.check("dnsmasq answers", dns.ok)
    inst.control("dnsserver", "127.0.0.1:%d" % dns.port)


zone({})
inst.control("helohost", "client.example.test")
inst.control("tlsca", open(ca.cert).read())
os.chmod(inst.path("control", "tlsca"), 0o644)
inst.control("smtpport", str(srv.port))
inst.control("mtastsport", str(web.port))
inst.control("dnsloopback", "1")

user = {}
if IS_ROOT and inst.multi:
    uid, gid = inst.uid("remote")
    user = dict(user=uid, group=gid, extra_groups=[])


def remote(domain):
    return run_remote(inst, domain, "rcpt@" + domain, b"Subject: sts\n\nhello\n", **user)


def cache(domain):
    try:
        return open(inst.path("mtasts", domain)).read()
    except OSError:
        return ""


# enforce, the MX matches its pattern: delivered over verified TLS.
code, text, err = remote("enforce.test")
t.check("enforce, matching MX: delivered", code == "K", (code, text, err))
t.check("enforce: logged tls=mta-sts-enforce, policy fetched",
        re.search(r"qmail-remote event=mtasts domain=enforce\.test tls=mta-sts-enforce id=1 policy=fetched", err), err)
t.check("enforce: the session verified the chain and the name",
        "host=mx.good.test policy=verify result=ok" in err and "chain=verified" in err, err)
t.check("enforce: one fetch, cached with its id", web.count("enforce.test") == 1 and cache("enforce.test").startswith("STS1 ")
        and " 1\n" in cache("enforce.test").split("\n")[0] + "\n", (web.count("enforce.test"), cache("enforce.test")))
n = len(q.new(expect=1))
t.check("enforce: the message reached the server", n == 1, n)

code, text, err = remote("enforce.test")
t.check("enforce again: delivered from the cache, no new fetch",
        code == "K" and web.count("enforce.test") == 1 and "policy=cache" in err, (code, err, web.count("enforce.test")))
q.new(expect=1)

# enforce, no MX matches: deferred, the server never contacted.
before = srv.logtext() if hasattr(srv, "logtext") else ""
code, text, err = remote("nomatch.test")
t.check("enforce, non-matching MX: deferred", code == "Z" and "no MX host matches" in text, (code, text, err))
t.check("enforce, non-matching MX: logged as skipped",
        "event=mtasts_mx domain=nomatch.test host=mx.good.test result=skipped" in err, err)
t.check("enforce, non-matching MX: no TLS session attempted", "event=tls " not in err, err)
t.check("enforce, non-matching MX: nothing delivered", q.new() == [])

# enforce, the MX matches but its certificate is for another name.
code, text, err = remote("badcert.test")
t.check("enforce, certificate of another name: deferred", code == "Z", (code, text, err))
t.check("enforce, certificate mismatch: logged",
        "event=mtasts_fail domain=badcert.test host=other.good.test ip=127.0.0.1 "
        "result=certificate-host-mismatch action=deferred" in err, err)
t.check("enforce, certificate mismatch: nothing delivered", q.new() == [])

# testing: the same failure is reported, the mail goes as usual.
code, text, err = remote("testing.test")
t.check("testing, certificate mismatch: delivered", code == "K", (code, text, err))
t.check("testing: logged tls=mta-sts-testing and the failure",
        "tls=mta-sts-testing" in err and "result=certificate-host-mismatch action=delivered-anyway" in err, err)
t.check("testing: delivered once", len(q.new(expect=1)) == 1)

# A policy that cannot be fetched (a redirect is not followed): none.
code, text, err = remote("redirect.test")
t.check("redirect: not followed, no policy, delivered as usual", code == "K" and web.count("redirect.test") == 1
        and "tls=mta-sts-unavailable" in err and "event=fetch domain=redirect.test result=failed" in err, (code, text, err))
t.check("redirect: nothing cached", cache("redirect.test") == "")
q.new(expect=1)

# A new id: fetched again before the cached policy expires.
web.serve("enforce.test", policy("enforce", ["mx.good.test"], 3600))
zone({"enforce.test": "2"})
code, text, err = remote("enforce.test")
t.check("new id: refetched", web.count("enforce.test") == 2 and "id=2 policy=fetched" in err, (web.count("enforce.test"), err))
t.check("new id: the new policy cached", "max_age: 3600" in cache("enforce.test") and " 2\n" in cache("enforce.test"),
        cache("enforce.test"))
t.check("new id: delivered", code == "K", (code, text))
q.new(expect=1)

# The policy host unreachable (its server gone) with a newer id: the
# cached policy stays in force.
web.close()
zone({"enforce.test": "3"})
code, text, err = remote("enforce.test")
t.check("policy host unreachable: the cached policy used", code == "K" and "tls=mta-sts-enforce id=2 policy=\"cache, fetch failed\"" in err
        and "policy=verify result=ok" in err, (code, text, err))
t.check("policy host unreachable: the fetch failure logged",
        "qmail-mtasts event=fetch domain=enforce.test result=failed reason=\"cannot connect" in err, err)
q.new(expect=1)

t.done()

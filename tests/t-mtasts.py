#!/usr/bin/env python3
"""MTA-STS (RFC 8461) in qmail-remote: policies served over HTTPS on
loopback (a test CA given as control/tlsca), names from a dnsmasq zone,
this MTA's own qmail-tlsd + qmail-smtpd as every MX (its certificate for
mx.good.test). Enforce with a matching MX, with a non-matching MX and with
a certificate of another name; testing; a policy change by id; a policy
host gone with a policy cached; then qmail-tlsrpt's report of the day."""
import base64, email, gzip, json, os, re, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import T, IS_ROOT, wait_for
from remote_peers import Dns
from send_harness import messages, setup, start
from smtpd_harness import Queue
from sts_harness import PolicyServer
from tls_harness import CA, TlsServer, install_cert, run_remote

t = T()
inst = setup(t)
ca = CA(t)
install_cert(inst, *ca.issue("mx.good.test", "rsa"))
srv = TlsServer(inst)
q = Queue(inst)
domains = ["enforce.test", "nomatch.test", "badcert.test", "testing.test", "redirect.test"]
# The fetcher's limits: no _smtp._tls record, so no report.
limits = ["ctype.test", "big.test", "missing.test"]
web = PolicyServer(t, ca, domains + limits, untrusted=["webpki.test"])
limits.append("webpki.test")


def policy(mode, mx, age=86400):
    return "version: STSv1\r\nmode: %s\r\n%smax_age: %d\r\n" % (mode, "".join("mx: %s\r\n" % m for m in mx), age)


web.serve("enforce.test", policy("enforce", ["*.good.test"]))
web.serve("nomatch.test", policy("enforce", ["mail.elsewhere.test"]))
web.serve("badcert.test", policy("enforce", ["other.good.test"]))
web.serve("testing.test", policy("testing", ["other.good.test"]))
web.serve("redirect.test", "", status=301)
web.serve("ctype.test", policy("enforce", ["nothing.test"]), ctype="text/html")
web.serve("big.test", policy("enforce", ["nothing.test"]) + "x: " + "y" * 65536 + "\r\n")
web.serve("webpki.test", policy("enforce", ["nothing.test"]))

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
                "--txt-record=_smtp._tls.%s,v=TLSRPTv1; rua=mailto:alice@mail.example.test" % d]
    for d in limits:
        rec += ["--mx-host=%s,mx.good.test,10" % d, "--host-record=mta-sts.%s,127.0.0.1" % d,
                "--txt-record=_mta-sts.%s,v=STSv1; id=1" % d]
    rec.append("--txt-record=_smtp._tls.dane.test,v=TLSRPTv1; rua=mailto:alice@mail.example.test")
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

# RFC 8461 3.3's limits: each of these policies is refused, the mail goes
# as without one (their enforce policies would defer it: no MX matches).
for d, result, why in (("ctype.test", "invalid", "Content-Type is not text/plain"),
                       ("big.test", "invalid", "larger than 64 KiB"),
                       ("missing.test", "failed", "HTTP status is not 200"),
                       ("webpki.test", "webpki", "certificate not trusted")):
    code, text, err = remote(d)
    t.check("%s: refused (%s), delivered without a policy" % (d, why),
            code == "K" and "event=fetch domain=%s result=%s" % (d, result) in err and why in err
            and "tls=mta-sts-unavailable" in err and cache(d) == "", (code, text, err))
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



def age_cache(domain, seconds):
    """Makes the cached policy seconds older, as if fetched then."""
    path = inst.path("mtasts", domain)
    text = open(path).read()
    head, _, rest = text.partition("\n")
    tag, fetched, pid = head.split(" ")
    with open(path, "w") as f:
        f.write("%s %d %s\n%s" % (tag, int(fetched) - seconds, pid, rest))


# Past half its max_age (3600 s), the same id: refreshed before it expires.
age_cache("enforce.test", 2000)
code, text, err = remote("enforce.test")
t.check("past half max_age: refreshed, delivered", code == "K" and web.count("enforce.test") == 3
        and "id=2 policy=fetched" in err, (code, web.count("enforce.test"), err))
q.new(expect=1)

# qmail-mtasts run by hand, without an id: it reads the TXT record.
p = subprocess.run([inst.bin("qmail-mtasts"), "Testing.TEST"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                   timeout=60, **user)
t.check("qmail-mtasts by hand: the TXT id looked up, the policy cached",
        p.returncode == 0 and b"event=fetch domain=testing.test result=ok id=1 mode=testing" in p.stderr
        and web.count("testing.test") == 2 and cache("testing.test").startswith("STS1 "), (p, web.count("testing.test")))

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

# An expired cached policy is not used, even with the policy host gone.
age_cache("enforce.test", 4000)
code, text, err = remote("enforce.test")
t.check("expired cache, policy host unreachable: no policy, delivered under may",
        code == "K" and "tls=mta-sts-unavailable" in err and "policy=may" in err, (code, text, err))
t.check("the failed fetch for the same id not tried again at once",
        "qmail-mtasts event=fetch" not in err and 'policy="none, fetch failed recently"' in err, err)
q.new(expect=1)

# TLS-RPT: the day's report per policy domain, queued by qmail-tlsrpt in
# the remote uid, delivered by qmail-send to alice's Maildir.
inst.stop()
days = sorted(f for f in os.listdir(inst.path("tlsrpt")))
t.check("one day file of sessions", len(days) == 1 and re.match(r"\d{4}-\d\d-\d\d$", days[0]), days)
day = days[0] if days else "1970-01-01"
# A session under DANE, as the DANE check records it (rpt_session).
with open(inst.path("tlsrpt", day), "a") as f:
    f.write("dane.test dane mx.dane.test 127.0.0.1 tlsa-invalid\n")
p = subprocess.run([inst.bin("qmail-tlsrpt"), day], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60, **user)
err = p.stderr.decode()
t.check("qmail-tlsrpt: exit 0, a report queued per policy domain",
        p.returncode == 0 and len(re.findall(r"qmail-tlsrpt event=report domain=\S+ day=%s result=queued" % day, err)) == 6,
        (p.returncode, err))
t.check("qmail-tlsrpt: the day file marked sent", os.listdir(inst.path("tlsrpt")) == [day + ".sent"],
        os.listdir(inst.path("tlsrpt")))
start(inst, inst.path("send.log"))
got = wait_for(lambda: len(messages(inst, "alice")) >= 6 and messages(inst, "alice"), 30) or []
t.check("six reports delivered to the rua Maildir", len(got) == 6, len(got))
reports = {}
for name, raw in got:
    m = email.message_from_bytes(raw)
    dom = m["TLS-Report-Domain"]
    part = [x for x in m.walk() if x.get_content_type() == "application/tlsrpt+gzip"]
    ok = (m.get_content_type() == "multipart/report" and m.get_param("report-type") == "tlsrpt"
          and m["TLS-Report-Submitter"] == "mail.example.test" and len(part) == 1
          and re.match(r"Report Domain: %s Submitter: mail\.example\.test Report-ID: <[^>]+>$" % re.escape(dom or ""),
                       m["Subject"] or "")
          and (part[0].get_filename() or "").startswith("mail.example.test!%s!" % dom)
          and (part[0].get_filename() or "").endswith(".json.gz"))
    t.check("report for %s: RFC 8460 headers and parts" % dom, ok, m.as_string()[:1500])
    if part:
        reports[dom] = json.loads(gzip.decompress(part[0].get_payload(decode=True)))


def required(r):
    """RFC 8460 4.4's required fields (its JSON schema), with their types."""
    try:
        pol = r["policies"][0]
        return (isinstance(r["organization-name"], str) and isinstance(r["contact-info"], str)
                and isinstance(r["report-id"], str)
                and r["date-range"]["start-datetime"] == day + "T00:00:00Z"
                and r["date-range"]["end-datetime"] == day + "T23:59:59Z"
                and pol["policy"]["policy-type"] in ("sts", "tlsa", "no-policy-found")
                and isinstance(pol["policy"]["policy-domain"], str)
                and isinstance(pol["summary"]["total-successful-session-count"], int)
                and isinstance(pol["summary"]["total-failure-session-count"], int)
                and all(isinstance(f["result-type"], str) and isinstance(f["failed-session-count"], int)
                        for f in pol.get("failure-details", [])))
    except (KeyError, IndexError, TypeError):
        return False


t.check("every report has RFC 8460's required fields", len(reports) == 6 and all(required(r) for r in reports.values()),
        reports)


def summary(dom):
    pol = reports.get(dom, {"policies": [{}]})["policies"][0]
    s = pol.get("summary", {})
    det = sorted((f["result-type"], f.get("receiving-mx-hostname"), f.get("receiving-ip"), f["failed-session-count"])
                 for f in pol.get("failure-details", []))
    return pol.get("policy", {}), s.get("total-successful-session-count"), s.get("total-failure-session-count"), det


pol, ok, fail, det = summary("enforce.test")
t.check("enforce.test: 5 sessions ok, the 2 failed refetches reported",
        ok == 5 and fail == 2 and det == [("sts-policy-fetch-error", None, None, 2)], (ok, fail, det))
t.check("enforce.test: the policy as cached (policy-string, mx-host)",
        pol.get("policy-type") == "sts" and "mode: enforce" in pol.get("policy-string", [])
        and pol.get("mx-host") == ["mx.good.test"] and pol.get("policy-domain") == "enforce.test", pol)
t.check("testing.test: the certificate mismatch reported",
        summary("testing.test")[1:] == (0, 1, [("certificate-host-mismatch", "other.good.test", "127.0.0.1", 1)]),
        summary("testing.test"))
t.check("nomatch.test: the MX outside the policy reported",
        summary("nomatch.test")[1:] == (0, 1, [("validation-failure", "mx.good.test", None, 1)]), summary("nomatch.test"))
t.check("badcert.test: the certificate mismatch reported",
        summary("badcert.test")[1:] == (0, 1, [("certificate-host-mismatch", "other.good.test", "127.0.0.1", 1)]),
        summary("badcert.test"))
t.check("redirect.test: no policy found, the fetch error reported",
        summary("redirect.test")[0].get("policy-type") == "no-policy-found"
        and summary("redirect.test")[1:] == (0, 1, [("sts-policy-fetch-error", None, None, 1)]), summary("redirect.test"))
t.check("dane.test: policy-type tlsa, the TLSA failure reported",
        summary("dane.test")[0].get("policy-type") == "tlsa"
        and summary("dane.test")[1:] == (0, 1, [("tlsa-invalid", "mx.dane.test", "127.0.0.1", 1)]), summary("dane.test"))

# Without a day: every day before today is reported, today's is not, a
# day unsent for over 7 days is given up, and .sent files older than 31
# days are removed.
past = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 2 * 86400))
with open(inst.path("tlsrpt", past), "w") as f:
    f.write("enforce.test enforce mx.good.test 127.0.0.1 ok\nbroken line\n")
with open(inst.path("tlsrpt", "2000-01-03"), "w") as f:
    f.write("enforce.test enforce mx.good.test 127.0.0.1 ok\n")
open(inst.path("tlsrpt", "2000-01-01.sent"), "w").close()
with open(inst.path("tlsrpt", day), "w") as f:
    f.write("enforce.test enforce mx.good.test 127.0.0.1 ok\n")
p = subprocess.run([inst.bin("qmail-tlsrpt")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60, **user)
err = p.stderr.decode()
left = sorted(os.listdir(inst.path("tlsrpt")))
t.check("qmail-tlsrpt alone: the past day reported, today's kept, the stale day given up, the old .sent removed",
        p.returncode == 0 and "domain=enforce.test day=%s result=queued" % past in err and "day=%s" % day not in err
        and 'day=2000-01-03 result="given up"' in err and "domain=enforce.test day=2000-01-03" not in err
        and left == sorted([past + ".sent", "2000-01-03.sent", day, day + ".sent"]), (p.returncode, err, left))
t.check("qmail-tlsrpt alone: the past day's report delivered",
        wait_for(lambda: len(messages(inst, "alice")) == 7, 30), len(messages(inst, "alice")))

# A full day file (64 MB; sparse here) takes no more lines.
os.truncate(inst.path("tlsrpt", day), 64 << 20)
code, text, err = remote("nomatch.test")
t.check("a full day file: the session not recorded, said in the log",
        os.path.getsize(inst.path("tlsrpt", day)) == 64 << 20 and 'event=tlsrpt_error' in err
        and 'error="day file full"' in err and "event=mtasts_mx domain=nomatch.test" in err, (code, err))
t.done()

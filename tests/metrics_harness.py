"""Shared by the tests/t-metrics*.py scripts: qmail-metrics run as the
metrics uid, and its exposition parsed by python3-prometheus-client."""
import subprocess, sys
try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:            # Debian's python3-prometheus-client, another python3 first in PATH
    sys.path.append("/usr/lib/python3/dist-packages")
    from prometheus_client.parser import text_string_to_metric_families


def as_metrics(inst, argv, **kw):
    """argv run as the metrics uid and group, no supplementary group."""
    mu, mg = inst.uid("metrics")
    return subprocess.run(["setpriv", "--reuid=%d" % mu, "--regid=%d" % mg, "--clear-groups"] + argv,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def scrape(inst):
    """(exit code, exposition, stderr) of qmail-metrics -o - as the metrics uid."""
    r = as_metrics(inst, [inst.bin("qmail-metrics"), "-o", "-"])
    return r.returncode, r.stdout.decode(), r.stderr.decode()


def values(text):
    """{(name, ((label, value), ...)): value} of every sample."""
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def v(vals, name, **labels):
    """One sample's value, or None."""
    return vals.get((name, tuple(sorted(labels.items()))), None)

"""bench/smoke.py --base BASE: the peers bench/bench.py runs from their
unpacked packages (bench/unpack-peers BASE first) start with the bench's
configuration, deliver one message to box@local.test into their Maildir,
relay one to the smtp-sink and serve one STARTTLS session. No timing:
each check is that the message or session went through."""
import argparse, os, subprocess, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--peers", default="Exim,OpenSMTPD")
    a = ap.parse_args()
    base = a.base
    os.makedirs(base, exist_ok=True)
    os.chmod(base, 0o755)
    cert, key = os.path.join(base, "smoke-cert.pem"), os.path.join(base, "smoke-key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj",
                    "/CN=mx.bench.test", "-keyout", key, "-out", cert],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    uid = bench.harness.free_ids(1, start=7600)[0]
    passed = failed = skipped = 0

    def check(ok, what):
        nonlocal passed, failed
        print("%s: %s" % ("ok" if ok else "FAIL", what), flush=True)
        if ok:
            passed += 1
        else:
            failed += 1

    sink = bench.Sink(base)
    try:
        for k, name in enumerate(a.peers.split(",")):
            m = bench.PEERS[name](base, sink.port, bench.free_port(), uid, uid,
                                  ids=bench.harness.free_ids(2, start=7700 + 100 * k))
            m.use_tls_files(cert, key)
            try:
                m.start()
                check(True, "%s starts" % name)
                for what, f in (("delivers one message to its Maildir", lambda: bench.latency_one(m)),
                                ("relays one message to the sink", lambda: bench.run_relay(m, sink, 1)),
                                ("serves one STARTTLS session",
                                 lambda: bench.tls_open(m.tls_port, bench.tls_context()).close())):
                    if "STARTTLS" in what and "tls" in m.na:
                        print("skipped: %s %s: %s" % (name, what, m.na["tls"]))
                        skipped += 1
                        continue
                    try:
                        f()
                        check(True, "%s %s" % (name, what))
                    except Exception as e:
                        check(False, "%s %s: %s" % (name, what, e))
            except Exception as e:
                check(False, "%s starts: %s (log: %s)" % (name, e, m.logfile))
            finally:
                m.stop()
    finally:
        for p in list(bench.PROCS):
            bench.end(p)
    print("%d passed, %d failed, %d skipped" % (passed, failed, skipped))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()

"""An HTTPS server on loopback for the MTA-STS tests: serves
/.well-known/mta-sts.txt per Host from a dict, with a certificate per
mta-sts.<domain> name (chosen by SNI) from a tls_harness CA, and counts the
requests per host. Standard library only."""
import http.server, ssl, threading
from harness import free_port
from tls_harness import self_signed


class PolicyServer:
    def __init__(self, t, ca, domains, untrusted=()):
        """domains get a certificate of ca; those in untrusted a
        self-signed one (the fetcher must refuse it)."""
        self.policies = {}       # host -> (status, content-type, body)
        self.requests = {}       # host -> count
        self.port = free_port()
        ctxs = {}
        for d in list(domains) + list(untrusted):
            host = "mta-sts." + d
            cert, key = self_signed(ca.dir, host) if d in untrusted else ca.issue(host, "ec")
            c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            c.load_cert_chain(cert, key)
            ctxs[host] = c
        base = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        base.load_cert_chain(*ca.issue("mta-sts.default.test", "ec"))

        def sni(sock, name, _ctx):
            if name in ctxs:
                sock.context = ctxs[name]
        base.sni_callback = sni
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def do_GET(self):
                host = (self.headers.get("Host") or "").split(":")[0]
                outer.requests[host] = outer.requests.get(host, 0) + 1
                status, ctype, body = outer.policies.get(host, (404, "text/plain", "no policy\n"))
                if self.path != "/.well-known/mta-sts.txt":
                    status, body = 404, "wrong path\n"
                b = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(b)))
                if status in (301, 302):
                    self.send_header("Location", "https://elsewhere.test/")
                self.end_headers()
                self.wfile.write(b)

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.httpd.socket = base.wrap_socket(self.httpd.socket, server_side=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        t.cleanups.append(self.close)

    def serve(self, domain, body, status=200, ctype="text/plain"):
        self.policies["mta-sts." + domain] = (status, ctype, body)

    def count(self, domain):
        return self.requests.get("mta-sts." + domain, 0)

    def close(self):
        if self.httpd:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None

/* qmail-metrics: the counters of PREFIX/metrics/ (lib/metrics.h) and a
 * count of the queue, in the Prometheus text format 0.0.4; see
 * qmail-metrics(8).
 *
 *   qmail-metrics -o FILE   writes FILE atomically (node_exporter's
 *                           textfile collector); -o - writes stdout
 *   qmail-metrics           one HTTP request on fds 0/1, as
 *                           tcpserver 127.0.0.1 2590 qmail-metrics runs it
 *
 * Privileges: installed setgid to the queue's group, it counts the queue
 * (read-only: qmail-qstat's count, qtool.h) first, then gives the group
 * up for good (real, effective and saved gid) before it reads a byte of
 * the request or opens the output file. The request parser thus runs
 * with the caller's ids only (tcpserver -u/-g: the metrics uid). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "atomic.h"
#include "buf.h"
#include "control.h"
#include "date.h"
#include "log.h"
#include "metrics.h"
#include "../qmail-send/qtool.h"
#include "str.h"

#define PROG "qmail-metrics"
#define REQ_MAX 4096          /* request line and header fields, in all */
#define REQ_SECONDS 5         /* to read them, in all */
#define WRITE_SECONDS 30

static void oom(void) { log_die(PROG, 111, "out of memory"); }

/* ---- the exposition */

struct sample { enum metrics_file f; unsigned slot; const char *labels; };
struct family {
  const char *name, *type, *help;
  const struct sample *s;
  size_t n;
};

#define N(a) (sizeof (a) / sizeof (a)[0])

static const struct sample deliveries[] = {
  { MF_SEND, MS_DELIVERED + 0, "channel=\"local\",result=\"delivered\"" },
  { MF_SEND, MS_DELIVERED + 1, "channel=\"remote\",result=\"delivered\"" },
  { MF_SEND, MS_FAILED + 0, "channel=\"local\",result=\"failed\"" },
  { MF_SEND, MS_FAILED + 1, "channel=\"remote\",result=\"failed\"" },
  { MF_SEND, MS_DEFERRED + 0, "channel=\"local\",result=\"deferred\"" },
  { MF_SEND, MS_DEFERRED + 1, "channel=\"remote\",result=\"deferred\"" },
};
static const struct sample deferrals[] = {
  { MF_SEND, MS_DEFER_CLASS + MD_CONNECT, "reason=\"connect\"" },
  { MF_SEND, MS_DEFER_CLASS + MD_TLS, "reason=\"tls\"" },
  { MF_SEND, MS_DEFER_CLASS + MD_DNS, "reason=\"dns\"" },
  { MF_SEND, MS_DEFER_CLASS + MD_4XX, "reason=\"4xx\"" },
  { MF_SEND, MS_DEFER_CLASS + MD_LOCAL, "reason=\"local\"" },
  { MF_SEND, MS_DEFER_CLASS + MD_AUTH, "reason=\"auth\"" },
  { MF_SEND, MS_DEFER_CLASS + MD_OTHER, "reason=\"other\"" },
};
static const struct sample bounces[] = { { MF_SEND, MS_BOUNCES, 0 } };
static const struct sample dests[] = {
  { MF_SEND, MS_DEST_HELD, "state=\"held\"" },
  { MF_SEND, MS_DEST_DEAD, "state=\"dead\"" },
};
static const struct sample sessions[] = { { MF_SMTPD, MP_SESSIONS, 0 } };
static const struct sample accepted[] = { { MF_SMTPD, MP_ACCEPTED, 0 } };
static const struct sample refused[] = {
  { MF_SMTPD, MP_REFUSED + MR_RELAY, "reason=\"relay\"" },
  { MF_SMTPD, MP_REFUSED + MR_UNKNOWN, "reason=\"unknown_user\"" },
  { MF_SMTPD, MP_REFUSED + MR_LIMITS, "reason=\"limits\"" },
  { MF_SMTPD, MP_REFUSED + MR_DNSBL, "reason=\"dnsbl\"" },
  { MF_SMTPD, MP_REFUSED + MR_SPF, "reason=\"spf\"" },
  { MF_SMTPD, MP_REFUSED + MR_DMARC, "reason=\"dmarc\"" },
  { MF_SMTPD, MP_REFUSED + MR_GREYLIST, "reason=\"greylist\"" },
  { MF_SMTPD, MP_REFUSED + MR_CONTENT, "reason=\"content\"" },
  { MF_SMTPD, MP_REFUSED + MR_AUTH, "reason=\"auth\"" },
  { MF_SMTPD, MP_REFUSED + MR_PREGREET, "reason=\"pregreet\"" },
  { MF_SMTPD, MP_REFUSED + MR_OTHER, "reason=\"other\"" },
};
static const struct sample tls_in[] = {
  { MF_SMTPD, MP_TLS_IN + MT_STARTTLS_OK, "mode=\"starttls\",result=\"ok\"" },
  { MF_SMTPD, MP_TLS_IN + MT_STARTTLS_FAILED, "mode=\"starttls\",result=\"failed\"" },
  { MF_SMTPD, MP_TLS_IN + MT_IMPLICIT_OK, "mode=\"implicit\",result=\"ok\"" },
  { MF_SMTPD, MP_TLS_IN + MT_IMPLICIT_FAILED, "mode=\"implicit\",result=\"failed\"" },
};
/* Policies as remote.h numbers them (TLS_NONE .. TLS_DANE_ONLY). */
#define OUT(p, name, o, res) { MF_REMOTE, MX_TLS_OUT + (p) * MO_N + (o), "policy=\"" name "\",result=\"" res "\"" }
static const struct sample tls_out[] = {
  OUT(0, "none", MO_PLAIN, "plaintext"),
  OUT(1, "may", MO_OK, "ok"), OUT(1, "may", MO_FAILED, "failed"), OUT(1, "may", MO_PLAIN, "plaintext"),
  OUT(2, "encrypt", MO_OK, "ok"), OUT(2, "encrypt", MO_FAILED, "failed"),
  OUT(3, "verify", MO_OK, "ok"), OUT(3, "verify", MO_FAILED, "failed"),
  OUT(4, "dane", MO_OK, "ok"), OUT(4, "dane", MO_FAILED, "failed"),
};

static const struct family families[] = {
  { "qmail_deliveries_total", "counter", "Delivery attempts' results by channel (qmail-send).", deliveries, N(deliveries) },
  { "qmail_deferrals_total", "counter", "Temporary delivery failures by reason class (qmail-send).", deferrals, N(deferrals) },
  { "qmail_bounces_total", "counter", "Failure reports (bounces, double bounces) queued by qmail-send.", bounces, N(bounces) },
  { "qmail_destinations", "gauge", "Remote destinations held back after connection failures, and those marked dead.", dests, N(dests) },
  { "qmail_smtp_sessions_total", "counter", "SMTP sessions started by qmail-smtpd.", sessions, N(sessions) },
  { "qmail_smtp_messages_accepted_total", "counter", "Messages accepted and queued by qmail-smtpd.", accepted, N(accepted) },
  { "qmail_smtp_refused_total", "counter", "SMTP refusals (connections, senders, recipients, messages; temporary ones too) by reason class.", refused, N(refused) },
  { "qmail_tls_in_sessions_total", "counter", "Inbound TLS handshakes by mode and result.", tls_in, N(tls_in) },
  { "qmail_tls_out_sessions_total", "counter", "Outbound SMTP sessions by TLS policy and outcome (qmail-remote).", tls_out, N(tls_out) },
};

static void put(str *o, const char *s) { if (str_cats(o, s) < 0) oom(); }
static void putu(str *o, unsigned long long u) { if (str_catu(o, u) < 0) oom(); }

static void head(str *o, const char *name, const char *type, const char *help)
{
  put(o, "# HELP "); put(o, name); put(o, " "); put(o, help); put(o, "\n");
  put(o, "# TYPE "); put(o, name); put(o, " "); put(o, type); put(o, "\n");
}

static void sample(str *o, const char *name, const char *labels, unsigned long long v)
{
  put(o, name);
  if (labels) { put(o, "{"); put(o, labels); put(o, "}"); }
  put(o, " ");
  putu(o, v);
  put(o, "\n");
}

/* Families whose file could be read; a missing file leaves its families
 * out (and says so in qmail_metrics_source_up), rather than claiming
 * zeros. */
static void counters(str *o, uint64_t slots[MF_N][METRICS_SLOTS], const int *up)
{
  size_t i, k;
  for (i = 0; i < N(families); i++) {
    const struct family *f = families + i;
    if (!up[f->s[0].f]) continue;
    head(o, f->name, f->type, f->help);
    for (k = 0; k < f->n; k++) sample(o, f->name, f->s[k].labels, slots[f->s[k].f][f->s[k].slot]);
  }
}

static void queue(str *o, const struct qtool_stat *q, unsigned long long now)
{
  head(o, "qmail_queue_messages", "gauge", "Messages in queue/mess that qmail-send can use.");
  sample(o, "qmail_queue_messages", 0, q->msgs);
  head(o, "qmail_queue_recipients", "gauge", "Recipients of queued messages by state.");
  sample(o, "qmail_queue_recipients", "state=\"pending_local\"", q->local);
  sample(o, "qmail_queue_recipients", "state=\"pending_remote\"", q->remote);
  sample(o, "qmail_queue_recipients", "state=\"failed_awaiting_bounce\"", q->failed);
  sample(o, "qmail_queue_recipients", "state=\"done_awaiting_removal\"", q->done);
  head(o, "qmail_queue_tmp_files", "gauge", "Messages being written (queue/tmp).");
  sample(o, "qmail_queue_tmp_files", 0, q->tmp);
  head(o, "qmail_queue_damaged_files", "gauge", "Queue files qmail-send cannot use (qmail-qfix -n names them).");
  sample(o, "qmail_queue_damaged_files", 0, q->damaged);
  head(o, "qmail_queue_oldest_message_age_seconds", "gauge", "Age of the oldest queued message, 0 when the queue is empty.");
  sample(o, "qmail_queue_oldest_message_age_seconds", 0, q->msgs && now > q->oldest ? now - q->oldest : 0);
}

/* The whole exposition into o. The queue is counted before this is
 * called (privileged); the counter files are read here. */
static void expose(str *o, const struct qtool_stat *q, int qok)
{
  static uint64_t slots[MF_N][METRICS_SLOTS];
  int up[MF_N];
  size_t f;

  for (f = 0; f < MF_N; f++) up[f] = metrics_read((enum metrics_file)f, slots[f]) == 0;
  counters(o, slots, up);
  if (qok) queue(o, q, (unsigned long long)time(0));
  head(o, "qmail_metrics_source_up", "gauge", "1 when the source could be read: a counter file, or the queue.");
  for (f = 0; f < MF_N; f++) {
    static str l;
    l.len = 0;
    if (str_cats(&l, "source=\"") < 0 || str_cats(&l, metrics_names[f]) < 0 || str_cats(&l, "\"") < 0 ||
        str_0(&l) < 0)
      oom();
    sample(o, "qmail_metrics_source_up", l.s, (unsigned long long)up[f]);
  }
  sample(o, "qmail_metrics_source_up", "source=\"queue\"", (unsigned long long)qok);
}

/* ---- privileges */

/* Counts the queue with the queue's group, if this process has it, then
 * takes the real gid for good; exits when the drop does not stick. */
static int count_then_drop(struct qtool_stat *q)
{
  const char *why = 0;
  gid_t g = getgid();
  int here = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  int ok = prefix_chdir() == 0 && qtool_stat(q, &why) == 0;

  if (!ok) {
    log_begin(PROG, "error");
    log_kv("op", "queue");
    log_kv("msg", why ? why : "cannot chdir to the prefix");
    log_kv("error", strerror(errno));
    log_end();
  }
  if (setresgid(g, g, g) < 0 || getegid() != g) log_fatal(PROG, 111, "cannot give up the queue's group");
  /* Back where the caller stands: -o names its file from there. */
  if (here >= 0 && (fchdir(here) < 0 || close(here) < 0)) log_fatal(PROG, 111, "cannot chdir back");
  return ok;
}

/* ---- HTTP */

static void respond(const char *status, const char *version, const char *extra, const char *body, size_t n)
{
  str h = STR_INIT;
  put(&h, version); put(&h, " "); put(&h, status); put(&h, "\r\n");
  put(&h, extra);
  put(&h, "Content-Length: "); putu(&h, n); put(&h, "\r\nConnection: close\r\n\r\n");
  /* A client gone or stalled costs nothing to anyone but this process. */
  if (fd_write_all(1, h.s, h.len, WRITE_SECONDS) == 0 && n) (void)!fd_write_all(1, body, n, WRITE_SECONDS);
  str_free(&h);
}

static void plain(const char *status, const char *version, const char *extra)
{
  str b = STR_INIT;
  put(&b, status); put(&b, "\n");
  respond(status, version, extra, b.s, b.len);
  str_free(&b);
}

/* Reads the request head (up to the empty line) into r; 0, or -1 when it
 * is over REQ_MAX, the client is slower than REQ_SECONDS in all, or the
 * connection ends first. */
static int read_head(char *r, size_t *len)
{
  unsigned long long until = mono_ms() + REQ_SECONDS * 1000ULL;
  size_t n = 0;

  for (;;) {
    unsigned long long t = mono_ms();
    ssize_t k;
    if (t >= until || fd_wait(0, 0, (int)((until - t + 999) / 1000)) < 0) return -1;
    k = read(0, r + n, REQ_MAX - n);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return -1;
    n += (size_t)k;
    r[n] = 0;
    if (strstr(r, "\r\n\r\n") || strstr(r, "\n\n")) break;
    if (n == REQ_MAX) return -1;
  }
  *len = n;
  return 0;
}

/* One request: GET /metrics (a query string is ignored) answers the
 * exposition; any other path 404, any other method 405, anything
 * unparsable 400. Always Connection: close. */
static void http(const struct qtool_stat *q, int qok)
{
  static char r[REQ_MAX + 1];
  const char *version = "HTTP/1.1";
  char *sp1, *sp2, *eol;
  size_t n, mlen, plen;

  if (read_head(r, &n) < 0) { plain("400 Bad Request", version, ""); return; }
  eol = strpbrk(r, "\r\n");
  *eol = 0;
  sp1 = strchr(r, ' ');
  sp2 = sp1 ? strchr(sp1 + 1, ' ') : 0;
  if (!sp1 || !sp2 || strchr(sp2 + 1, ' ') ||
      (strcmp(sp2 + 1, "HTTP/1.0") && strcmp(sp2 + 1, "HTTP/1.1"))) {
    plain("400 Bad Request", version, "");
    return;
  }
  if (!strcmp(sp2 + 1, "HTTP/1.0")) version = "HTTP/1.0";
  mlen = (size_t)(sp1 - r);
  plen = (size_t)(sp2 - sp1 - 1);
  if (mlen != 3 || memcmp(r, "GET", 3)) { plain("405 Method Not Allowed", version, "Allow: GET\r\n"); return; }
  if (plen < 8 || memcmp(sp1 + 1, "/metrics", 8) || (plen > 8 && sp1[9] != '?')) {
    plain("404 Not Found", version, "");
    return;
  }
  {
    str body = STR_INIT;
    expose(&body, q, qok);
    respond("200 OK", version, "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n", body.s, body.len);
    str_free(&body);
  }
}

int main(int argc, char **argv)
{
  struct qtool_stat q;
  const char *out = 0;
  int opt, qok;

  while ((opt = getopt(argc, argv, "o:")) != -1) {
    if (opt == 'o') out = optarg;
    else log_usage(PROG, "usage: qmail-metrics [-o FILE|-]");
  }
  if (optind != argc) log_usage(PROG, "usage: qmail-metrics [-o FILE|-]");
  signal(SIGPIPE, SIG_IGN);
  qok = count_then_drop(&q);
  if (!out) { http(&q, qok); return 0; }
  {
    str body = STR_INIT;
    expose(&body, &q, qok);
    if (!strcmp(out, "-")) {
      if (fd_write_all(1, body.s, body.len, 0) < 0) log_fatal(PROG, 111, "cannot write to stdout");
    } else {
      /* The file is named from where the caller stands, not the prefix. */
      str dir = STR_INIT;
      const char *slash = strrchr(out, '/');
      if (str_copyb(&dir, out, slash ? (size_t)(slash - out) + (slash == out) : 0) < 0 ||
          (!slash && str_copys(&dir, ".") < 0) || str_0(&dir) < 0)
        oom();
      if (atomic_write(dir.s, slash ? slash + 1 : out, body.s, body.len, 0644) < 0)
        log_fatal(PROG, 111, "cannot write the output file");
      str_free(&dir);
    }
    str_free(&body);
  }
  return 0;
}

/* MTA-STS for a delivery (mtasts.h): the policy from the cache or a
 * fetch, the MX check, and the TLS-RPT day file.
 *
 * The fetch runs synchronously, in a child (qmail-mtasts) bounded by its
 * own alarm, and only when the cache cannot serve: qmail-remote and
 * qmail-rspawn's workers already wait on the network for each delivery,
 * qmail-send never does, so a slow policy host delays only deliveries to
 * its own domain, as a slow MX would. A periodic refresher would need a
 * list of domains to watch and would fetch for domains no longer mailed. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "atomic.h"
#include "buf.h"
#include "control.h"
#include "dns.h"
#include "log.h"
#include "mtasts.h"
#include "tlsio.h"

static const char *const modes[] = { "-", "none", "testing", "enforce" };

/* Runs PREFIX/bin/qmail-mtasts domain id with /dev/null as fd 0 and 1
 * (qmail-remote's stdout carries its reports) and stderr shared, for its
 * log lines; its exit code (STS_FETCH_*), or STS_FETCH_ERROR. */
static int fetch(const char *domain, const char *id)
{
  str path = STR_INIT;
  int status, fd;
  pid_t pid;

  if (str_copys(&path, auto_prefix) < 0 || str_cats(&path, "/bin/qmail-mtasts") < 0 || str_0(&path) < 0) {
    str_free(&path);
    return STS_FETCH_ERROR;
  }
  pid = fork();
  if (pid == 0) {
    sigset_t none;
    char *argv[4];
    argv[0] = path.s;
    argv[1] = (char *)domain;
    argv[2] = (char *)id;
    argv[3] = 0;
    fd = open("/dev/null", O_RDWR);
    if (fd < 0 || dup2(fd, 0) < 0 || dup2(fd, 1) < 0) _exit(STS_FETCH_ERROR);
    close_range(3, ~0u, 0);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, 0);
    signal(SIGPIPE, SIG_DFL);
    signal(SIGALRM, SIG_DFL);
    execv(path.s, argv);
    _exit(STS_FETCH_ERROR);
  }
  str_free(&path);
  if (pid < 0) return STS_FETCH_ERROR;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return STS_FETCH_ERROR;
  return WIFEXITED(status) && WEXITSTATUS(status) <= STS_FETCH_WEBPKI ? WEXITSTATUS(status) : STS_FETCH_ERROR;
}

/* Appends one line to today's TLS-RPT day file; mode "-": no policy. */
void rpt_session(const char *domain, const char *mode, const char *host, const char *ip, const char *result,
                 const char *tlsa)
{
  static int full;
  char day[11];
  str line = STR_INIT, path = STR_INIT;
  struct stat st;
  int fd;

  rpt_day(day, (unsigned long long)time(0));
  if (str_copys(&path, RPT_DIR "/") < 0 || str_cats(&path, day) < 0 || str_0(&path) < 0 ||
      str_copys(&line, domain) < 0 || str_catc(&line, ' ') < 0 || str_cats(&line, mode) < 0 ||
      str_catc(&line, ' ') < 0 || str_cats(&line, host) < 0 || str_catc(&line, ' ') < 0 ||
      str_cats(&line, ip) < 0 || str_catc(&line, ' ') < 0 || str_cats(&line, result) < 0 ||
      (tlsa && (str_catc(&line, ' ') < 0 || str_cats(&line, tlsa) < 0)) || str_catc(&line, '\n') < 0)
    goto out;
  /* One write with O_APPEND: lines from concurrent workers never mix.
   * A full day file takes no more lines (the day's report counts what it
   * holds), and says so once per process. */
  fd = open(path.s, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0640);
  if (fd >= 0 && fstat(fd, &st) == 0 && (unsigned long long)st.st_size + line.len > RPT_DAYMAX) {
    if (!full) {
      log_begin("qmail-remote", "tlsrpt_error");
      log_kv("file", path.s);
      log_kv("error", "day file full");
      log_end();
    }
    full = 1;
  } else if (fd < 0 || write(fd, line.s, line.len) != (ssize_t)line.len) {
    log_begin("qmail-remote", "tlsrpt_error");
    log_kv("file", path.s);
    log_kv("error", strerror(errno));
    log_end();
  }
  if (fd >= 0) close(fd);
out:
  str_free(&line);
  str_free(&path);
}

/* A failed fetch for one id is not tried again for this long: each try
 * holds a delivery for up to the fetcher's alarm, and a policy host that
 * is down stays down for a while. A new id is fetched at once. */
#define FETCH_RETRY 600

/* The marker of a failed fetch, STS_CACHEDIR/!<domain> ('!' never begins
 * a domain sts_domain_ok passes): "<code> <id>\n", its mtime the time of
 * the failure. */
static int marker_path(str *path, const char *domain)
{
  return str_copys(path, STS_CACHEDIR "/!") < 0 || str_cats(path, domain) < 0 || str_0(path) < 0 ? -1 : 0;
}

/* The code of a fetch for domain and id that failed less than FETCH_RETRY
 * seconds before now, or -1. */
static int failed_recently(const char *domain, const char *id, unsigned long long now)
{
  str path = STR_INIT, m = STR_INIT;
  struct stat st;
  int code = -1;

  if (marker_path(&path, domain) == 0 && stat(path.s, &st) == 0 &&
      (unsigned long long)st.st_mtime <= now && now - (unsigned long long)st.st_mtime < FETCH_RETRY &&
      file_read(path.s, &m, 2 * STS_IDMAX) == 0 && m.len == strlen(id) + 3 && m.s[1] == ' ' &&
      m.s[0] >= '0' + STS_FETCH_ERROR && m.s[0] <= '0' + STS_FETCH_WEBPKI &&
      !memcmp(m.s + 2, id, strlen(id)) && m.s[m.len - 1] == '\n')
    code = m.s[0] - '0';
  str_free(&path);
  str_free(&m);
  return code;
}

/* Remembers the failed fetch (code > 0) or forgets one (code 0). */
static void note_fetch(const char *domain, const char *id, int code)
{
  str path = STR_INIT, m = STR_INIT;

  if (marker_path(&path, domain) == 0) {
    if (code == STS_FETCH_OK) unlink(path.s);
    else if (str_catc(&m, (char)('0' + code)) == 0 && str_catc(&m, ' ') == 0 && str_cats(&m, id) == 0 &&
             str_catc(&m, '\n') == 0)
      (void)atomic_write(STS_CACHEDIR, path.s + sizeof STS_CACHEDIR, m.s, m.len, 0640);
  }
  str_free(&path);
  str_free(&m);
}

static const char *const fetch_types[] = { "ok", "sts-policy-fetch-error", "sts-policy-invalid", "sts-webpki-invalid" };

void sts_lookup(const char *domain, struct sts *s)
{
  char name[STS_HOSTMAX + 16], id[STS_IDMAX] = "";
  unsigned long on;
  unsigned long long now = (unsigned long long)time(0), age;
  int r, cached, valid, code = -1;
  const char *source = "cache";

  s->mode = 0;
  if (control_ulong(&on, "control/mtasts", 1) < 0 || !on) return;
  if (!sts_domain_ok(domain, s->domain)) return;
  memcpy(name, "_mta-sts.", 9);
  memcpy(name + 9, s->domain, strlen(s->domain) + 1);
  r = dns_txt(name, sts_txt_collect, id);
  if (r < 0 || id[0] == 1) id[0] = 0;
  cached = sts_cache_read(s->domain, &s->c);
  age = cached == 1 && now > s->c.fetched ? now - s->c.fetched : 0;
  valid = cached == 1 && age < s->c.p.max_age;
  /* RFC 8461 3.3 and 5.1: fetch when the TXT id is new, and refresh well
   * before the cached policy expires (here past half its max_age). */
  if (id[0] && (!valid || strcmp(id, s->c.id) || age >= s->c.p.max_age / 2)) {
    int earlier = failed_recently(s->domain, id, now);
    code = earlier > 0 ? earlier : fetch(s->domain, id);
    if (earlier <= 0) note_fetch(s->domain, id, code);
    if (code == STS_FETCH_OK) {
      cached = sts_cache_read(s->domain, &s->c);
      valid = cached == 1;
      source = "fetched";
    } else {
      source = earlier > 0 ? (valid ? "cache, fetch failed recently" : "none, fetch failed recently")
             : valid ? "cache, fetch failed" : "none, fetch failed";
      rpt_session(s->domain, valid ? modes[s->c.p.mode] : "-", "-", "-", fetch_types[code], 0);
    }
  }
  if (valid) s->mode = s->c.p.mode;
  if (!valid && code <= 0) return;      /* no policy: nothing to say */
  log_begin("qmail-remote", "mtasts");
  log_kv("domain", s->domain);
  log_kv("tls", !valid ? "mta-sts-unavailable" : s->mode == STS_MODE_ENFORCE ? "mta-sts-enforce"
                : s->mode == STS_MODE_TESTING ? "mta-sts-testing" : "mta-sts-none");
  if (valid) log_kv("id", s->c.id);
  log_kv("policy", source);
  log_end();
}

int sts_mx_allowed(struct sts *s, const char *host)
{
  if (s->mode != STS_MODE_ENFORCE && s->mode != STS_MODE_TESTING) return 1;
  if (sts_mx_match(&s->c.p, host)) return 1;
  log_begin("qmail-remote", "mtasts_mx");
  log_kv("domain", s->domain);
  log_kv("host", host);
  log_kv("result", s->mode == STS_MODE_ENFORCE ? "skipped" : "reported");
  log_end();
  rpt_session(s->domain, modes[s->mode], host, "-", "validation-failure", 0);
  return s->mode != STS_MODE_ENFORCE;
}

const char *sts_failure_type(const char *why)
{
  static const struct { int code; const char *type; } x[] = {
    { BR_ERR_X509_BAD_SERVER_NAME, "certificate-host-mismatch" },
    { BR_ERR_X509_EXPIRED, "certificate-expired" },
    { BR_ERR_X509_NOT_TRUSTED, "certificate-not-trusted" },
  };
  size_t i;
  if (strstr(why, "STARTTLS not offered")) return "starttls-not-supported";
  for (i = 0; i < sizeof x / sizeof x[0]; i++)
    if (strstr(why, tls_error_text(x[i].code))) return x[i].type;
  if (strstr(why, "TLS")) return "validation-failure";
  return 0;
}

void sts_record(const struct sts *s, const char *host, const char *ip, const char *result)
{
  if (s->mode == STS_MODE_ENFORCE || s->mode == STS_MODE_TESTING)
    rpt_session(s->domain, modes[s->mode], host, ip, result, 0);
}

void sts_free(struct sts *s)
{
  str_free(&s->c.body);
  s->mode = 0;
}

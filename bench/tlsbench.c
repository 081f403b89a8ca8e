/*
 * bench/tlsbench.c: sluice-tlsbench, TLS handshakes per second against a
 * listener, full or resumed, TLS 1.3 or 1.2.
 *
 * Why not only `openssl s_time`: its -reuse mode closes each connection as
 * soon as the handshake is done, before a TLS 1.3 server's NewSessionTicket
 * (sent after the client's Finished) has arrived, so it never has a ticket
 * and never resumes TLS 1.3. This client waits for the ticket (at most
 * --ticket-wait) before closing when resuming, then offers the newest one on
 * the next connection, as a browser or any ticket-caching client does.
 *
 * One connection at a time, blocking, like s_time. Each connection: TCP
 * connect, handshake, (resuming: wait up to --ticket-wait for a new ticket),
 * close_notify, close. A failed handshake is counted, never retried. The
 * rate is handshakes per second of the time spent outside those waits (a
 * server that sends no new ticket after a resumption would otherwise be
 * timed on the client's patience); `new_tickets` says how many connections
 * brought one. The proxy's CPU per handshake is read around the run by the
 * caller (bench/run.py).
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

static const char usage_text[] =
    "usage: sluice-tlsbench --connect IP:PORT [options]\n"
    "\n"
    "TLS handshakes per second, one connection at a time (like openssl s_time),\n"
    "but a resuming client waits for TLS 1.3 session tickets and uses them.\n"
    "\n"
    "  --connect IP:PORT    target (IPv4 literal)\n"
    "  --tls VERSION        1.3 or 1.2 (default 1.3)\n"
    "  --resume             offer the last session received (default: full handshakes)\n"
    "  --time D             seconds to run (default 5)\n"
    "  --ticket-wait MS     resuming: how long to wait for a ticket (default 100)\n"
    "  --sni NAME           server name to send (default none)\n"
    "  --json               one JSON object on stdout (default text)\n"
    "\n"
    "Exit status: 0 when at least one handshake succeeded, 1 when none did, 2 on usage.\n";

typedef struct {
    struct sockaddr_in addr;
    int version;
    bool resume, json;
    double seconds;
    int ticket_wait_ms;
    const char *sni;
} opts_t;

typedef struct {
    uint64_t handshakes, resumed, failures, new_tickets;
    double waited_s;
} counts_t;

/* The session to offer next: the last connection's, taken once it is over
   (SSL_get1_session: under TLS 1.3 the one holding the newest ticket). The
   new-session callback only says that the current connection brought a
   ticket; the session it is handed can be one the handshake has not finished
   with yet (a TLS 1.2 ticket renewed in an abbreviated handshake), and offering
   that one fails to resume. */
static SSL_SESSION *newest;
static bool got_ticket;

static int on_new_session(SSL *ssl, SSL_SESSION *sess)
{
    (void)ssl;
    (void)sess;
    got_ticket = true;
    return 0;   /* not kept */
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int usage_error(const char *msg)
{
    fprintf(stderr, "sluice-tlsbench: %s\n\n%s", msg, usage_text);
    return 2;
}

static int parse_target(const char *s, struct sockaddr_in *a)
{
    const char *colon = strrchr(s, ':');
    if (colon == NULL || colon == s)
        return -1;
    char host[64];
    size_t hl = (size_t)(colon - s);
    if (hl >= sizeof host)
        return -1;
    memcpy(host, s, hl);
    host[hl] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end != '\0' || port < 1 || port > 65535)
        return -1;
    memset(a, 0, sizeof *a);
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    return inet_pton(AF_INET, host, &a->sin_addr) == 1 ? 0 : -1;
}

static int parse_args(int argc, char **argv, opts_t *o)
{
    enum { O_CONNECT = 1, O_TLS, O_RESUME, O_TIME, O_TICKET, O_SNI, O_JSON, O_HELP };
    static const struct option longopts[] = {
        { "connect", required_argument, NULL, O_CONNECT },
        { "tls", required_argument, NULL, O_TLS },
        { "resume", no_argument, NULL, O_RESUME },
        { "time", required_argument, NULL, O_TIME },
        { "ticket-wait", required_argument, NULL, O_TICKET },
        { "sni", required_argument, NULL, O_SNI },
        { "json", no_argument, NULL, O_JSON },
        { "help", no_argument, NULL, O_HELP },
        { NULL, 0, NULL, 0 },
    };
    *o = (opts_t){ .version = TLS1_3_VERSION, .seconds = 5, .ticket_wait_ms = 100 };
    bool have_target = false;
    int c;
    char *end;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case O_CONNECT:
            if (parse_target(optarg, &o->addr) != 0)
                return usage_error("--connect wants IPv4:PORT, e.g. 127.0.0.1:8443");
            have_target = true;
            break;
        case O_TLS:
            if (strcmp(optarg, "1.3") == 0)
                o->version = TLS1_3_VERSION;
            else if (strcmp(optarg, "1.2") == 0)
                o->version = TLS1_2_VERSION;
            else
                return usage_error("--tls wants 1.3 or 1.2");
            break;
        case O_RESUME:
            o->resume = true;
            break;
        case O_TIME:
            o->seconds = strtod(optarg, &end);
            if (*end != '\0' || !(o->seconds > 0 && o->seconds <= 3600))
                return usage_error("--time wants seconds, more than 0 and at most 3600");
            break;
        case O_TICKET:
            o->ticket_wait_ms = (int)strtol(optarg, &end, 10);
            if (*end != '\0' || o->ticket_wait_ms < 1 || o->ticket_wait_ms > 10000)
                return usage_error("--ticket-wait wants milliseconds, 1 to 10000");
            break;
        case O_SNI:
            o->sni = optarg;
            break;
        case O_JSON:
            o->json = true;
            break;
        case O_HELP:
            fputs(usage_text, stdout);
            exit(0);
        default:
            return usage_error("unknown option");
        }
    }
    if (optind < argc)
        return usage_error("unexpected argument");
    if (!have_target)
        return usage_error("--connect is required");
    return -1;
}

/* Read what the server sends after the handshake (TLS 1.3: its tickets)
   until a ticket has come or wait_ms has passed; the socket is non-blocking. */
static void wait_ticket(SSL *ssl, int fd, int wait_ms)
{
    char byte;
    double deadline = now_s() + wait_ms / 1e3;
    while (!got_ticket) {
        int left = (int)((deadline - now_s()) * 1e3 + 0.999);
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (left <= 0 || poll(&p, 1, left) <= 0)
            return;
        int r = SSL_read(ssl, &byte, 1);
        if (r > 0 || SSL_get_error(ssl, r) != SSL_ERROR_WANT_READ)
            return;   /* application data or a close: no ticket is coming */
    }
}

/* One connection; a socket, connect or handshake that fails counts as a failure. */
static void one(const opts_t *o, SSL_CTX *ctx, counts_t *n)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        n->failures++;
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    bool ok = false;
    SSL *ssl = NULL;
    if (connect(fd, (const struct sockaddr *)&o->addr, sizeof o->addr) != 0)
        goto out;
    ssl = SSL_new(ctx);
    if (ssl == NULL || SSL_set_fd(ssl, fd) != 1)
        goto out;
    if (o->sni)
        SSL_set_tlsext_host_name(ssl, o->sni);
    if (o->resume && newest)
        SSL_set_session(ssl, newest);
    got_ticket = false;
    if (SSL_connect(ssl) != 1)
        goto out;
    ok = true;
    n->handshakes++;
    if (SSL_session_reused(ssl))
        n->resumed++;
    if (o->resume) {
        double t0 = now_s();
        int fl = fcntl(fd, F_GETFL);
        if (o->version == TLS1_3_VERSION && fl >= 0 && fcntl(fd, F_SETFL, fl | O_NONBLOCK) == 0)
            wait_ticket(ssl, fd, o->ticket_wait_ms);
        n->waited_s += now_s() - t0;
        n->new_tickets += got_ticket;
        SSL_SESSION *sess = SSL_get1_session(ssl);
        if (sess != NULL && SSL_SESSION_is_resumable(sess)) {
            SSL_SESSION_free(newest);
            newest = sess;
        } else {
            SSL_SESSION_free(sess);
        }
    }
    SSL_shutdown(ssl);
out:
    if (!ok) {
        n->failures++;
        ERR_clear_error();
    }
    SSL_free(ssl);
    close(fd);
}

int main(int argc, char **argv)
{
    opts_t o;
    int rc = parse_args(argc, argv, &o);
    if (rc >= 0)
        return rc;
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL || SSL_CTX_set_min_proto_version(ctx, o.version) != 1 ||
        SSL_CTX_set_max_proto_version(ctx, o.version) != 1) {
        fprintf(stderr, "sluice-tlsbench: cannot make a TLS client context\n");
        return 1;
    }
    /* A benchmark client: the certificate is made on the spot and not checked. */
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    /* Sessions are kept here (`newest`), not in OpenSSL's client cache. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, on_new_session);
    counts_t n = {0};
    double t0 = now_s(), t = t0;
    while (t - t0 < o.seconds) {
        one(&o, ctx, &n);
        t = now_s();
    }
    double secs = t - t0 - n.waited_s;
    SSL_SESSION_free(newest);
    SSL_CTX_free(ctx);
    if (o.json)
        printf("{\"tls\":\"%s\",\"resume\":%s,\"seconds\":%.3f,\"ticket_wait_s\":%.3f,"
               "\"handshakes\":%llu,\"per_s\":%.1f,\"resumed\":%llu,\"new_tickets\":%llu,"
               "\"failures\":%llu}\n",
               o.version == TLS1_3_VERSION ? "1.3" : "1.2", o.resume ? "true" : "false", secs,
               n.waited_s, (unsigned long long)n.handshakes, (double)n.handshakes / secs,
               (unsigned long long)n.resumed, (unsigned long long)n.new_tickets,
               (unsigned long long)n.failures);
    else
        printf("TLS %s %s: %llu handshakes in %.2f s (%.1f/s; %.2f s more waiting for tickets), "
               "%llu resumed, %llu new tickets, %llu failed\n",
               o.version == TLS1_3_VERSION ? "1.3" : "1.2", o.resume ? "resuming" : "full",
               (unsigned long long)n.handshakes, secs, (double)n.handshakes / secs, n.waited_s,
               (unsigned long long)n.resumed, (unsigned long long)n.new_tickets,
               (unsigned long long)n.failures);
    return n.handshakes > 0 ? 0 : 1;
}

/*
 * bench/backend.c: sluice-backend, the demo and test backend.
 *
 * Why it exists: every integration test and benchmark of the gateway needs a
 * backend that behaves like an application instance and tells the truth about
 * what it saw: exactly when each handshake was accepted, every text message
 * it received, and what happens when it is pushed past its capacity (503, or
 * falling over). It must be cheap enough that 10,000 connections and a
 * reconnect storm measure the gateway, not the backend.
 *
 * This file holds the command line, the listeners, the signals and a 100 ms
 * tick (close deadlines). One loop, one thread, so the backend never needs
 * more than one core to outrun a test; the --record and --log-messages files
 * are written by a thread each (appender.h), so a slow disk cannot hold the
 * loop up and bunch the handshakes it records.
 */
#include "backend.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

be_server_t be_srv;

static const char usage[] =
    "usage: sluice-backend [options]\n"
    "\n"
    "A WebSocket echo backend and small HTTP responder for sluice's demos, tests\n"
    "and benchmarks.\n"
    "\n"
    "  --listen ADDR          address to listen on: 127.0.0.1:9001, [::1]:9001,\n"
    "                         *:9001 (all IPv4); repeat for several (max 8);\n"
    "                         port 0 picks a free port (printed on stdout).\n"
    "                         Default 127.0.0.1:9001\n"
    "  --name NAME            name used in the hello message, HTTP bodies and\n"
    "                         /stats (1..200 printable ASCII characters, no\n"
    "                         spaces). Default \"backend\"\n"
    "  --capacity RATE        WebSocket handshakes per second it accepts (token\n"
    "                         bucket); beyond it see --overload. 0 = unlimited\n"
    "                         (default)\n"
    "  --burst B              bucket size in handshakes. Default RATE/10, at least 1\n"
    "  --overload MODE        over capacity: 'reject' answers 503 (default), 'exit'\n"
    "                         exits with status 3, like a backend that falls over\n"
    "  --record FILE          append one line <unix_ms> per accepted handshake\n"
    "                         (written every 100 ms and at exit)\n"
    "  --log-messages FILE    append every received text message, one per line\n"
    "                         (lines over 64 KiB are cut; written every 100 ms)\n"
    "  --close-after-hello CODE  close each WebSocket with CODE right after hello\n"
    "  --send BYTES           after hello, send BYTES of binary data (as 64 KiB\n"
    "                         messages, bytes 0..255 repeating) as fast as the\n"
    "                         peer reads; suffixes K, M, G (powers of 1024)\n"
    "  --http-delay MS        delay every plain HTTP response by MS milliseconds\n"
    "  --backlog N            listen backlog. Default 4096\n"
    "  --quiet                no start-up line on stdout\n"
    "  --help                 this text\n"
    "  --version              the version\n"
    "\n"
    "WebSocket: sends 'hello NAME', echoes data frames as they come (opcode and\n"
    "bytes kept), answers pings, echoes a close's code and closes TCP.\n"
    "HTTP: GET /healthz -> 200 ok; GET /stats -> JSON counters and exact peak\n"
    "handshakes in any 100 ms and 1 s window; anything else -> 200\n"
    "'hello NAME METHOD PATH' with X-Body-Bytes when the request had a body.\n"
    "Request header 'X-Backend-Status: N' makes the answer status N.\n"
    "SIGTERM / SIGINT: close everything, flush files, exit 0.\n";

static int parse_u64(const char *s, uint64_t *out, bool units)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *s == '-')
        return SL_EINVAL;
    uint64_t mul = 1;
    if (units && *end) {
        switch (*end) {
        case 'k': case 'K': mul = 1024; break;
        case 'm': case 'M': mul = 1024 * 1024; break;
        case 'g': case 'G': mul = 1024ull * 1024 * 1024; break;
        default: return SL_EINVAL;
        }
        end++;
        if (*end == 'i' || *end == 'I')
            end++;
        if (*end == 'b' || *end == 'B')
            end++;
    }
    if (*end || v > UINT64_MAX / mul)
        return SL_EINVAL;
    *out = v * mul;
    return 0;
}

static int parse_double(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= 0) || v > 1e9)
        return SL_EINVAL;
    *out = v;
    return 0;
}

enum {
    OPT_LISTEN = 256, OPT_NAME, OPT_CAPACITY, OPT_BURST, OPT_OVERLOAD, OPT_RECORD,
    OPT_LOG_MESSAGES, OPT_CLOSE_AFTER_HELLO, OPT_SEND, OPT_HTTP_DELAY, OPT_BACKLOG,
    OPT_QUIET, OPT_HELP, OPT_VERSION,
};

static const struct option long_opts[] = {
    { "listen", required_argument, NULL, OPT_LISTEN },
    { "name", required_argument, NULL, OPT_NAME },
    { "capacity", required_argument, NULL, OPT_CAPACITY },
    { "burst", required_argument, NULL, OPT_BURST },
    { "overload", required_argument, NULL, OPT_OVERLOAD },
    { "record", required_argument, NULL, OPT_RECORD },
    { "log-messages", required_argument, NULL, OPT_LOG_MESSAGES },
    { "close-after-hello", required_argument, NULL, OPT_CLOSE_AFTER_HELLO },
    { "send", required_argument, NULL, OPT_SEND },
    { "http-delay", required_argument, NULL, OPT_HTTP_DELAY },
    { "backlog", required_argument, NULL, OPT_BACKLOG },
    { "quiet", no_argument, NULL, OPT_QUIET },
    { "help", no_argument, NULL, OPT_HELP },
    { "version", no_argument, NULL, OPT_VERSION },
    { NULL, 0, NULL, 0 },
};

/* One option's value; false (with a message) when it is bad. */
static bool apply_option(be_options_t *o, int opt, const char *arg)
{
    uint64_t u = 0;
    switch (opt) {
    case OPT_LISTEN:
        if (o->n_listen == BE_MAX_LISTEN)
            return fprintf(stderr, "sluice-backend: at most %d --listen\n", BE_MAX_LISTEN), false;
        o->listen[o->n_listen++] = arg;
        return true;
    case OPT_NAME:
        /* It goes into a header line and a JSON string: printable ASCII only. */
        o->name = arg;
        for (const char *p = arg; *p; p++)
            if (*p < 0x21 || *p > 0x7e)
                return false;
        return strlen(arg) > 0 && strlen(arg) <= 200;
    case OPT_CAPACITY:
        return parse_double(arg, &o->capacity) == 0;
    case OPT_BURST:
        return parse_double(arg, &o->burst) == 0;
    case OPT_OVERLOAD:
        if (strcmp(arg, "reject") == 0)
            o->overload = BE_OVERLOAD_REJECT;
        else if (strcmp(arg, "exit") == 0)
            o->overload = BE_OVERLOAD_EXIT;
        else
            return false;
        return true;
    case OPT_RECORD:
        o->record_path = arg;
        return true;
    case OPT_LOG_MESSAGES:
        o->log_messages_path = arg;
        return true;
    case OPT_CLOSE_AFTER_HELLO:
        if (parse_u64(arg, &u, false) < 0 || !sl_ws_close_code_valid((uint16_t)u) || u > 4999)
            return false;
        o->close_after_hello = (int)u;
        return true;
    case OPT_SEND:
        return parse_u64(arg, &o->send_bytes, true) == 0;
    case OPT_HTTP_DELAY:
        return parse_u64(arg, &o->http_delay_ms, false) == 0 && o->http_delay_ms <= 3600000;
    case OPT_BACKLOG:
        if (parse_u64(arg, &u, false) < 0 || u == 0 || u > 65535)
            return false;
        o->backlog = (int)u;
        return true;
    case OPT_QUIET:
        o->quiet = true;
        return true;
    default:
        return false;
    }
}

/* Returns -1 to go on, or the exit status. */
static int parse_args(be_options_t *o, int argc, char **argv)
{
    memset(o, 0, sizeof(*o));
    o->name = "backend";
    o->backlog = 4096;
    int opt;
    while ((opt = getopt_long(argc, argv, "", long_opts, NULL)) != -1) {
        if (opt == OPT_HELP) {
            fputs(usage, stdout);
            return 0;
        }
        if (opt == OPT_VERSION) {
            printf("sluice-backend %s\n", SLUICE_VERSION);
            return 0;
        }
        if (opt == '?')
            return fputs("try sluice-backend --help\n", stderr), 2;
        if (!apply_option(o, opt, optarg)) {
            fprintf(stderr, "sluice-backend: bad value for --%s: '%s'\n",
                    long_opts[opt - OPT_LISTEN].name, optarg);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "sluice-backend: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (o->n_listen == 0)
        o->listen[o->n_listen++] = "127.0.0.1:9001";
    return -1;
}

/* "127.0.0.1:9001", "[::1]:9001", "*:9001", ":9001" into a sockaddr. */
static int parse_addr(const char *s, struct sockaddr_storage *ss)
{
    char host[64];
    const char *port;
    bool v6 = s[0] == '[';
    if (v6) {
        const char *e = strchr(s, ']');
        if (!e || e[1] != ':' || (size_t)(e - s - 1) >= sizeof(host))
            return SL_EINVAL;
        memcpy(host, s + 1, (size_t)(e - s - 1));
        host[e - s - 1] = 0;
        port = e + 2;
    } else {
        const char *e = strrchr(s, ':');
        if (!e || (size_t)(e - s) >= sizeof(host) || memchr(s, ':', (size_t)(e - s)))
            return SL_EINVAL;
        memcpy(host, s, (size_t)(e - s));
        host[e - s] = 0;
        port = e + 1;
        if (host[0] == 0 || strcmp(host, "*") == 0)
            strcpy(host, "0.0.0.0");
    }
    uint64_t p;
    if (parse_u64(port, &p, false) < 0 || p > 65535)
        return SL_EINVAL;
    if (v6)
        return uv_ip6_addr(host, (int)p, (struct sockaddr_in6 *)ss) < 0 ? SL_EINVAL : 0;
    return uv_ip4_addr(host, (int)p, (struct sockaddr_in *)ss) < 0 ? SL_EINVAL : 0;
}

static void on_connection(uv_stream_t *server, int status)
{
    if (status < 0 || be_srv.stopping)
        return;
    be_conn_t *c = be_conn_new();
    if (!c)
        return;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0 || be_conn_start(c) < 0)
        be_conn_close(c);
}

static int start_listener(int i, const char *addr)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    if (parse_addr(addr, &ss) < 0) {
        fprintf(stderr, "sluice-backend: bad --listen address '%s'\n", addr);
        return 2;
    }
    uv_tcp_t *t = &be_srv.listeners[i];
    uv_tcp_init(be_srv.loop, t);
    be_srv.n_listeners = i + 1;
    int err = uv_tcp_bind(t, (const struct sockaddr *)&ss,
                          ss.ss_family == AF_INET6 ? UV_TCP_IPV6ONLY : 0);
    if (err == 0)
        err = uv_listen((uv_stream_t *)t, be_srv.opt.backlog, on_connection);
    if (err < 0) {
        fprintf(stderr, "sluice-backend: listen on %s: %s\n", addr, uv_strerror(err));
        return 1;
    }
    if (!be_srv.opt.quiet) {
        struct sockaddr_storage got;
        int len = sizeof(got);
        char ip[64] = "?";
        uv_tcp_getsockname(t, (struct sockaddr *)&got, &len);
        int port;
        if (got.ss_family == AF_INET6) {
            uv_ip6_name((struct sockaddr_in6 *)&got, ip, sizeof(ip));
            port = ntohs(((struct sockaddr_in6 *)&got)->sin6_port);
            printf("sluice-backend %s listening on [%s]:%d\n", be_srv.opt.name, ip, port);
        } else {
            uv_ip4_name((struct sockaddr_in *)&got, ip, sizeof(ip));
            port = ntohs(((struct sockaddr_in *)&got)->sin_port);
            printf("sluice-backend %s listening on %s:%d\n", be_srv.opt.name, ip, port);
        }
        fflush(stdout);
    }
    return 0;
}

static void on_tick(uv_timer_t *t)
{
    sl_msec_t now = uv_now(be_srv.loop);
    be_link_t *l = be_srv.conns.next;
    while (l != &be_srv.conns) {
        be_conn_t *c = sl_container_of(l, be_conn_t, link);
        l = l->next;   /* closing unlinks c */
        if (c->deadline && now >= c->deadline)
            be_conn_close(c);
    }
}

/* Close every handle; uv_run then returns. */
static void stop_all(void)
{
    if (be_srv.stopping)
        return;
    be_srv.stopping = true;
    for (int i = 0; i < be_srv.n_listeners; i++)
        uv_close((uv_handle_t *)&be_srv.listeners[i], NULL);
    while (be_srv.conns.next != &be_srv.conns)
        be_conn_close(sl_container_of(be_srv.conns.next, be_conn_t, link));
    uv_close((uv_handle_t *)&be_srv.tick, NULL);
    uv_close((uv_handle_t *)&be_srv.sig_term, NULL);
    uv_close((uv_handle_t *)&be_srv.sig_int, NULL);
}

static void on_signal(uv_signal_t *s, int signum)
{
    stop_all();
}

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static void free_pools(void)
{
    while (be_srv.free_rbufs) {
        be_rbuf_t *rb = be_srv.free_rbufs;
        be_srv.free_rbufs = rb->next;
        free(rb);
    }
    be_srv.n_free_rbufs = 0;
    be_record_free(&be_srv.record);
}

int main(int argc, char **argv)
{
    int rc = parse_args(&be_srv.opt, argc, argv);
    if (rc >= 0)
        return rc;
    signal(SIGPIPE, SIG_IGN);
    raise_nofile();

    be_srv.loop = uv_default_loop();
    be_srv.conns.next = be_srv.conns.prev = &be_srv.conns;
    be_bucket_init(&be_srv.bucket, be_srv.opt.capacity, be_srv.opt.burst, uv_hrtime() / 1000u);
    be_record_init(&be_srv.record, 0);
    int err = be_files_open(&be_srv);
    if (err < 0) {
        fprintf(stderr, "sluice-backend: cannot open output file: %s\n", strerror(-err));
        return 1;
    }

    uv_signal_init(be_srv.loop, &be_srv.sig_term);
    uv_signal_init(be_srv.loop, &be_srv.sig_int);
    uv_signal_start(&be_srv.sig_term, on_signal, SIGTERM);
    uv_signal_start(&be_srv.sig_int, on_signal, SIGINT);
    uv_timer_init(be_srv.loop, &be_srv.tick);
    uv_timer_start(&be_srv.tick, on_tick, BE_TICK_MS, BE_TICK_MS);

    rc = 0;
    for (int i = 0; i < be_srv.opt.n_listen && rc == 0; i++)
        rc = start_listener(i, be_srv.opt.listen[i]);
    if (rc != 0)
        stop_all();

    uv_run(be_srv.loop, UV_RUN_DEFAULT);
    be_files_flush(&be_srv);
    be_files_close(&be_srv);
    free_pools();
    err = uv_loop_close(be_srv.loop);
    if (err != 0) {
        fprintf(stderr, "sluice-backend: loop not closed cleanly: %s\n", uv_strerror(err));
        return rc ? rc : 1;
    }
    return rc;
}

/*
 * bench/loadgen_opts.c: the command line of sluice-loadgen.
 *
 * Every value is checked here, before a thread starts, so a typo is a usage
 * error (exit 2) and never a run that measures the wrong thing. Durations
 * take units like the gateway's config (`100ms`, `2s`, `5m`; a bare number
 * is seconds). The target is resolved once; source addresses are expanded
 * into a flat array that the threads index round robin.
 */
#include "loadgen.h"

#include <arpa/inet.h>
#include <getopt.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>

lg_options_t lg_opt;

static const char usage_text[] =
    "usage: sluice-loadgen --url ws://HOST:PORT/PATH [options]\n"
    "\n"
    "WebSocket load generator for sluice (and any RFC 6455 server).\n"
    "\n"
    "  --url URL            target, ws://host[:port]/path (host: IPv4, [IPv6] or a name)\n"
    "  -n, --connections N  connections to open and hold (default 1)\n"
    "  --mode MODE          connect | echo | storm | deploy (default connect)\n"
    "  --rate R             connection opens per second, in total (default: as fast as\n"
    "                       --max-pending allows)\n"
    "  --max-pending K      handshakes in flight during the ramp without --rate (default 1000)\n"
    "  --threads T          threads, one libuv loop each (default 1)\n"
    "  --source SPEC        source addresses, round robin; bind before connect:\n"
    "                       127.0.0.2-127.0.0.9 (IPv4 range) and/or a comma list\n"
    "  --duration D         run time from start, ramp included (default 10s); then every\n"
    "                       connection is closed with 1000, and at most 5 s later cut\n"
    "  --timeout D          connect + handshake timeout (default 10s)\n"
    "  --window W           echo: messages outstanding per connection (default 1)\n"
    "  --size B             echo: binary message size in bytes (default 64, max 16M)\n"
    "  --msg-rate M         echo: open loop, M messages per second in total, round robin\n"
    "                       over open connections, at most W outstanding on each,\n"
    "                       from the end of the ramp (default: closed loop)\n"
    "  --backoff SPEC       storm/deploy reconnects: none (at once) or exp:BASE:MAX,\n"
    "                       exponential with equal jitter (default none)\n"
    "  --retry-delay D      with --backoff none: wait after a failed attempt (default 10ms)\n"
    "  --interval D         deploy: one message per connection every D (default 100ms)\n"
    "  --sent-log FILE      deploy: write `ID.GEN LAST_SEQ HOW BACKEND` per generation\n"
    "  --timeline FILE      per-second CSV: second,connected,upgrades,closes,failures,\n"
    "                       messages,p99_us\n"
    "  --json               summary as one JSON object on stdout (default: text)\n"
    "  --seed S             random seed (keys, masks, jitter; default from the clock)\n"
    "  -h, --help           this text\n"
    "  --version            print the version\n"
    "\n"
    "Durations: 250ms, 2s, 1.5s, 5m, 1h; a bare number is seconds.\n"
    "A 503/429 Retry-After and a 1013 close reason `retry-after=N` are honoured.\n"
    "Exit status: 0 when the run happened, 1 on a setup error, 2 on a usage error.\n";

/* "250ms", "2s", "1.5", "5m", "1h" -> milliseconds. */
static int parse_ms(const char *s, uint64_t *out)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || v < 0)
        return SL_EINVAL;
    double mul = 1000;
    if (strcmp(end, "ms") == 0)
        mul = 1;
    else if (strcmp(end, "s") == 0 || *end == '\0')
        mul = 1000;
    else if (strcmp(end, "m") == 0)
        mul = 60000;
    else if (strcmp(end, "h") == 0)
        mul = 3600000;
    else
        return SL_EINVAL;
    double ms = v * mul;
    if (ms > 1e12)
        return SL_EINVAL;
    *out = (uint64_t)(ms + 0.5);
    return 0;
}

static int parse_u32(const char *s, uint32_t lo, uint32_t hi, uint32_t *out)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || *end || s[0] == '-' || v < lo || v > hi)
        return SL_EINVAL;
    *out = (uint32_t)v;
    return 0;
}

static int parse_rate(const char *s, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || (*end && strcmp(end, "/s") != 0) || !(v >= 0) || v > 1e9)
        return SL_EINVAL;
    *out = v;
    return 0;
}

static int parse_backoff(const char *s)
{
    if (strcmp(s, "none") == 0) {
        lg_opt.backoff_exp = false;
        return 0;
    }
    if (strncmp(s, "exp:", 4) != 0)
        return SL_EINVAL;
    char buf[64];
    snprintf(buf, sizeof(buf), "%s", s + 4);
    char *colon = strchr(buf, ':');
    if (!colon)
        return SL_EINVAL;
    *colon = '\0';
    if (parse_ms(buf, &lg_opt.backoff_base_ms) < 0 || parse_ms(colon + 1, &lg_opt.backoff_max_ms) < 0 ||
        lg_opt.backoff_base_ms == 0 || lg_opt.backoff_max_ms < lg_opt.backoff_base_ms)
        return SL_EINVAL;
    lg_opt.backoff_exp = true;
    return 0;
}

static int add_source(const struct sockaddr_storage *ss)
{
    if (lg_opt.n_sources >= LG_MAX_SOURCES)
        return SL_ELIMIT;
    if (lg_opt.n_sources % 256 == 0) {
        void *p = realloc(lg_opt.sources, (lg_opt.n_sources + 256) * sizeof(*ss));
        if (!p)
            return SL_ENOMEM;
        lg_opt.sources = p;
    }
    lg_opt.sources[lg_opt.n_sources++] = *ss;
    return 0;
}

static int parse_addr(const char *s, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, s, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        return 0;
    }
    if (inet_pton(AF_INET6, s, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        return 0;
    }
    return SL_EINVAL;
}

/* "127.0.0.2-127.0.0.9,10.0.0.5,::1" */
static int parse_sources(const char *spec)
{
    char buf[4096];
    if (snprintf(buf, sizeof(buf), "%s", spec) >= (int)sizeof(buf))
        return SL_EINVAL;
    char *save = NULL;
    for (char *item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        struct sockaddr_storage a, b;
        char *dash = strchr(item, '-');
        if (!dash) {
            if (parse_addr(item, &a) < 0 || add_source(&a) < 0)
                return SL_EINVAL;
            continue;
        }
        *dash = '\0';
        if (parse_addr(item, &a) < 0 || parse_addr(dash + 1, &b) < 0 ||
            a.ss_family != AF_INET || b.ss_family != AF_INET)
            return SL_EINVAL;
        uint32_t lo = ntohl(((struct sockaddr_in *)&a)->sin_addr.s_addr);
        uint32_t hi = ntohl(((struct sockaddr_in *)&b)->sin_addr.s_addr);
        if (hi < lo || hi - lo >= LG_MAX_SOURCES)
            return SL_EINVAL;
        for (uint64_t ip = lo; ip <= hi; ip++) {
            ((struct sockaddr_in *)&a)->sin_addr.s_addr = htonl((uint32_t)ip);
            if (add_source(&a) < 0)
                return SL_EINVAL;
        }
    }
    return lg_opt.n_sources > 0 ? 0 : SL_EINVAL;
}

/* ws://host[:port]/path: fills host (Host header), path and dst. */
static int parse_url(const char *url, char *err, size_t errlen)
{
    if (strncmp(url, "ws://", 5) != 0) {
        snprintf(err, errlen, "--url must start with ws:// (no TLS here)");
        return SL_EINVAL;
    }
    const char *hp = url + 5;
    const char *slash = strchr(hp, '/');
    size_t hlen = slash ? (size_t)(slash - hp) : strlen(hp);
    snprintf(lg_opt.path, sizeof(lg_opt.path), "%s", slash ? slash : "/");
    if (hlen == 0 || hlen >= sizeof(lg_opt.host)) {
        snprintf(err, errlen, "--url: bad host");
        return SL_EINVAL;
    }
    memcpy(lg_opt.host, hp, hlen);
    lg_opt.host[hlen] = '\0';
    char name[256];
    const char *port = "80";
    if (lg_opt.host[0] == '[') {
        const char *rb = strchr(lg_opt.host, ']');
        if (!rb) {
            snprintf(err, errlen, "--url: unclosed [");
            return SL_EINVAL;
        }
        snprintf(name, sizeof(name), "%.*s", (int)(rb - lg_opt.host - 1), lg_opt.host + 1);
        if (rb[1] == ':')
            port = rb + 2;
    } else {
        snprintf(name, sizeof(name), "%s", lg_opt.host);
        char *colon = strchr(name, ':');
        if (colon) {
            *colon = '\0';
            port = strchr(lg_opt.host, ':') + 1;
        }
    }
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV };
    struct addrinfo *res = NULL;
    int r = getaddrinfo(name, port, &hints, &res);
    if (r != 0 || !res) {
        snprintf(err, errlen, "--url: cannot resolve %s port %s: %s", name, port,
                 gai_strerror(r));
        return SL_EINVAL;
    }
    memcpy(&lg_opt.dst, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return 0;
}

static int parse_mode(const char *s)
{
    static const char *names[] = { "connect", "echo", "storm", "deploy" };
    for (size_t i = 0; i < SL_ARRAY_SIZE(names); i++) {
        if (strcmp(s, names[i]) == 0) {
            lg_opt.mode = (lg_mode_t)i;
            return 0;
        }
    }
    return SL_EINVAL;
}

enum {
    O_URL = 256, O_MODE, O_RATE, O_MAXPEND, O_THREADS, O_SOURCE, O_DURATION, O_TIMEOUT,
    O_WINDOW, O_SIZE, O_MSGRATE, O_BACKOFF, O_RETRY, O_INTERVAL, O_SENTLOG, O_TIMELINE,
    O_JSON, O_SEED, O_VERSION,
};

static const struct option long_opts[] = {
    { "url", required_argument, NULL, O_URL },
    { "connections", required_argument, NULL, 'n' },
    { "mode", required_argument, NULL, O_MODE },
    { "rate", required_argument, NULL, O_RATE },
    { "max-pending", required_argument, NULL, O_MAXPEND },
    { "threads", required_argument, NULL, O_THREADS },
    { "source", required_argument, NULL, O_SOURCE },
    { "duration", required_argument, NULL, O_DURATION },
    { "timeout", required_argument, NULL, O_TIMEOUT },
    { "window", required_argument, NULL, O_WINDOW },
    { "size", required_argument, NULL, O_SIZE },
    { "msg-rate", required_argument, NULL, O_MSGRATE },
    { "backoff", required_argument, NULL, O_BACKOFF },
    { "retry-delay", required_argument, NULL, O_RETRY },
    { "interval", required_argument, NULL, O_INTERVAL },
    { "sent-log", required_argument, NULL, O_SENTLOG },
    { "timeline", required_argument, NULL, O_TIMELINE },
    { "json", no_argument, NULL, O_JSON },
    { "seed", required_argument, NULL, O_SEED },
    { "help", no_argument, NULL, 'h' },
    { "version", no_argument, NULL, O_VERSION },
    { NULL, 0, NULL, 0 },
};

/* One option; returns 0, or SL_EINVAL (the caller names the option). */
static int apply(int o, const char *a)
{
    switch (o) {
    case 'n': return parse_u32(a, 1, 10000000, &lg_opt.conns);
    case O_MODE: return parse_mode(a);
    case O_RATE: return parse_rate(a, &lg_opt.rate);
    case O_MAXPEND: return parse_u32(a, 1, 10000000, &lg_opt.max_pending);
    case O_THREADS: return parse_u32(a, 1, 256, &lg_opt.threads);
    case O_SOURCE: return parse_sources(a);
    case O_DURATION: return parse_ms(a, &lg_opt.duration_ms);
    case O_TIMEOUT: return parse_ms(a, &lg_opt.timeout_ms);
    case O_WINDOW: return parse_u32(a, 1, 1000000, &lg_opt.window);
    case O_SIZE: return parse_u32(a, 0, 16u << 20, &lg_opt.size);
    case O_MSGRATE: return parse_rate(a, &lg_opt.msg_rate);
    case O_BACKOFF: return parse_backoff(a);
    case O_RETRY: return parse_ms(a, &lg_opt.retry_delay_ms);
    case O_INTERVAL: return parse_ms(a, &lg_opt.interval_ms);
    case O_SENTLOG: lg_opt.sent_log = a; return 0;
    case O_TIMELINE: lg_opt.timeline = a; return 0;
    case O_JSON: lg_opt.json = true; return 0;
    case O_SEED: lg_opt.seed = strtoull(a, NULL, 0); return 0;
    default: return SL_EINVAL;
    }
}

static const char *opt_name(int o)
{
    for (const struct option *l = long_opts; l->name; l++) {
        if (l->val == o)
            return l->name;
    }
    return "?";
}

static int usage_error(const char *msg)
{
    fprintf(stderr, "sluice-loadgen: %s\n(see --help)\n", msg);
    return 2;
}

int lg_parse_args(int argc, char **argv)
{
    memset(&lg_opt, 0, sizeof(lg_opt));
    lg_opt.conns = 1;
    lg_opt.threads = 1;
    lg_opt.max_pending = 1000;
    lg_opt.duration_ms = 10000;
    lg_opt.timeout_ms = 10000;
    lg_opt.window = 1;
    lg_opt.size = 64;
    lg_opt.retry_delay_ms = 10;
    lg_opt.interval_ms = 100;
    lg_opt.seed = uv_hrtime();
    const char *url = NULL;
    int o;
    opterr = 0;
    while ((o = getopt_long(argc, argv, "n:h", long_opts, NULL)) != -1) {
        if (o == 'h') {
            fputs(usage_text, stdout);
            return 0;
        }
        if (o == O_VERSION) {
            printf("sluice-loadgen %s\n", SLUICE_VERSION);
            return 0;
        }
        if (o == O_URL) {
            url = optarg;
            continue;
        }
        char msg[160];
        if (o == '?' || o == ':') {
            snprintf(msg, sizeof(msg), "unknown option or missing value: %s",
                     argv[optind - 1]);
            return usage_error(msg);
        }
        if (apply(o, optarg) < 0) {
            snprintf(msg, sizeof(msg), "bad value for --%s: '%s'", opt_name(o), optarg);
            return usage_error(msg);
        }
    }
    if (optind < argc)
        return usage_error("unexpected argument");
    if (!url)
        return usage_error("--url is required");
    char err[300];
    if (parse_url(url, err, sizeof(err)) < 0)
        return usage_error(err);
    for (uint32_t i = 0; i < lg_opt.n_sources; i++) {
        if (lg_opt.sources[i].ss_family != lg_opt.dst.ss_family)
            return usage_error("--source addresses must be of the target's family");
    }
    if (lg_opt.timeout_ms == 0 || lg_opt.interval_ms == 0)
        return usage_error("--timeout and --interval must be > 0");
    if (lg_opt.threads > lg_opt.conns)
        lg_opt.threads = lg_opt.conns;
    if (lg_opt.sent_log && lg_opt.mode != LG_MODE_DEPLOY)
        return usage_error("--sent-log is for --mode deploy");
    return -1;
}

void lg_free_options(void)
{
    free(lg_opt.sources);
    lg_opt.sources = NULL;
    lg_opt.n_sources = 0;
}

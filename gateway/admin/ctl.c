/*
 * ctl.c: `sluice ctl`, the admin API from the command line.
 *
 * Why a built-in client: operators run deploys from shells and scripts, and
 * a subcommand that knows the routes, builds the JSON bodies, sends the
 * token and pretty-prints the answer is less error-prone than curl lines.
 * It is deliberately plain: one blocking HTTP/1.1 request per run with
 * Connection: close, a timeout on every socket call, the response read with
 * the project's own HTTP parser. Exit codes follow main.c: 0 when the server
 * answered 2xx; 1 when it answered anything else (its error goes to stderr)
 * or could not be asked (token file, name lookup, connect, no or broken
 * answer); 2 on usage, which includes an --admin that is not HOST:PORT: a
 * script can tell a command it must fix from a gateway it may retry.
 */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "sluice/config.h"
#include "sluice/http.h"
#include "admin.h"

#define DEFAULT_ADMIN "127.0.0.1:9900"
#define TIMEOUT_S 10
#define MAX_RESPONSE (64 * 1024 * 1024)

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

typedef struct request {
    const char *method;
    char path[1024];
    sl_buf_t body;            /* JSON, empty for none */
} request_t;

static void usage(FILE *out)
{
    fprintf(out,
            "usage: sluice ctl [--admin HOST:PORT] [--token-file FILE] COMMAND\n"
            "\n"
            "commands:\n"
            "  status                          gateway status (JSON)\n"
            "  pools                           pools and backends\n"
            "  metrics                         Prometheus metrics (text)\n"
            "  reload                          reload the config file\n"
            "  admission get SERVICE           admission limits of a service\n"
            "  admission set SERVICE KEY=VALUE...   change them, e.g. rate=300/s burst=50\n"
            "  deploy start SERVICE --from POOL --to POOL [--ramp 30s] [--drain-rate 400/s]\n"
            "  deploy status SERVICE           progress of the current deploy\n"
            "  deploy pause|resume|abort SERVICE\n"
            "\n"
            "--admin defaults to $SLUICE_ADMIN or " DEFAULT_ADMIN "; --token-file to\n"
            "$SLUICE_TOKEN_FILE (the file holds the bearer token).\n"
            "exit codes: 0 the server answered 2xx, 1 it did not (or cannot be reached),\n"
            "2 usage (bad options or words, --admin not HOST:PORT).\n");
}

/* ---- building the request ------------------------------------------------------- */

/* Append one path segment, percent-encoding all but unreserved characters. */
static void segment(char *path, size_t cap, const char *seg)
{
    size_t n = strlen(path);
    for (const unsigned char *s = (const unsigned char *)seg; *s && n + 4 < cap; s++) {
        if ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
            strchr("-._~:", *s) != NULL)
            path[n++] = (char)*s;
        else
            n += (size_t)snprintf(path + n, cap - n, "%%%02X", *s);
    }
    path[n] = '\0';
}

static void service_path(request_t *r, const char *service, const char *rest)
{
    snprintf(r->path, sizeof r->path, "/api/v1/services/");
    segment(r->path, sizeof r->path, service);
    strncat(r->path, rest, sizeof r->path - strlen(r->path) - 1);
}

/*
 * A KEY=VALUE value as JSON: a number when the config file would read it as
 * a plain decimal ("50", "1.5": digits, then at most six after a point; the
 * rate notation's number, as the config's own NUMBER keys read it), a
 * boolean for true/false, else a string. strtod once typed "1." and ".5" as
 * numbers, forms the config refuses, and ".5" as max_wait became 0 ms;
 * "1e2", "+3", "0x10" or " 3" go as strings now, and the server refuses
 * them naming the field, as the config would.
 */
static void typed_value(sl_jw_t *w, const char *v)
{
    double d;
    if (sl_parse_number(v, &d) == SL_OK)
        sl_jw_num(w, d);
    else if (strcmp(v, "true") == 0 || strcmp(v, "false") == 0)
        sl_jw_bool(w, v[0] == 't');
    else
        sl_jw_str(w, v);
}

static int admission_cmd(int argc, char **argv, request_t *r)
{
    if (argc < 3)
        return EXIT_USAGE;
    if (strcmp(argv[1], "get") == 0 && argc == 3) {
        r->method = "GET";
        service_path(r, argv[2], "/admission");
        return 0;
    }
    if (strcmp(argv[1], "set") != 0 || argc < 4)
        return EXIT_USAGE;
    r->method = "PUT";
    service_path(r, argv[2], "/admission");
    sl_jw_t w;
    sl_jw_init(&w, &r->body, false);
    sl_jw_obj(&w);
    for (int i = 3; i < argc; i++) {
        char *eq = strchr(argv[i], '=');
        if (eq == NULL || eq == argv[i]) {
            fprintf(stderr, "sluice ctl: \"%s\": expected KEY=VALUE\n", argv[i]);
            return EXIT_USAGE;
        }
        *eq = '\0';
        sl_jw_key(&w, argv[i]);
        if (strcmp(argv[i], "pool") == 0)
            sl_jw_str(&w, eq + 1);   /* a name, whatever it looks like: pool=2024 */
        else
            typed_value(&w, eq + 1);
    }
    sl_jw_end(&w);
    return 0;
}

static int deploy_start(int argc, char **argv, request_t *r)
{
    static const struct { const char *opt; const char *key; } opts[] = {
        {"--from", "from"}, {"--to", "to"}, {"--ramp", "ramp"}, {"--drain-rate", "drain_rate"},
    };
    const char *vals[SL_ARRAY_SIZE(opts)] = {0};
    for (int i = 3; i < argc; i++) {
        size_t k = 0;
        while (k < SL_ARRAY_SIZE(opts) && strcmp(argv[i], opts[k].opt) != 0)
            k++;
        if (k == SL_ARRAY_SIZE(opts) || i + 1 >= argc) {
            fprintf(stderr, "sluice ctl: deploy start: unexpected \"%s\"\n", argv[i]);
            return EXIT_USAGE;
        }
        vals[k] = argv[++i];
    }
    if (vals[0] == NULL || vals[1] == NULL) {
        fprintf(stderr, "sluice ctl: deploy start needs --from POOL and --to POOL\n");
        return EXIT_USAGE;
    }
    r->method = "POST";
    service_path(r, argv[2], "/deploys");
    sl_jw_t w;
    sl_jw_init(&w, &r->body, false);
    sl_jw_obj(&w);
    for (size_t k = 0; k < SL_ARRAY_SIZE(opts); k++)
        if (vals[k] != NULL)
            sl_jw_kstr(&w, opts[k].key, vals[k]);
    sl_jw_end(&w);
    return 0;
}

static int deploy_cmd(int argc, char **argv, request_t *r)
{
    if (argc < 3)
        return EXIT_USAGE;
    const char *verb = argv[1];
    if (strcmp(verb, "start") == 0)
        return deploy_start(argc, argv, r);
    if (argc != 3)
        return EXIT_USAGE;
    if (strcmp(verb, "status") == 0) {
        r->method = "GET";
        service_path(r, argv[2], "/deploys/current");
        return 0;
    }
    if (strcmp(verb, "pause") == 0 || strcmp(verb, "resume") == 0 || strcmp(verb, "abort") == 0) {
        char rest[64];
        snprintf(rest, sizeof rest, "/deploys/current/%s", verb);
        r->method = "POST";
        service_path(r, argv[2], rest);
        return 0;
    }
    return EXIT_USAGE;
}

/* Fill r from the command words; returns 0 or EXIT_USAGE. */
static int build_request(int argc, char **argv, request_t *r)
{
    static const struct { const char *cmd; const char *method; const char *path; } simple[] = {
        {"status", "GET", "/api/v1/status"},
        {"pools", "GET", "/api/v1/pools"},
        {"metrics", "GET", "/metrics"},
        {"reload", "POST", "/api/v1/reload"},
    };
    for (size_t i = 0; i < SL_ARRAY_SIZE(simple); i++) {
        if (strcmp(argv[0], simple[i].cmd) == 0) {
            if (argc != 1)
                return EXIT_USAGE;
            r->method = simple[i].method;
            snprintf(r->path, sizeof r->path, "%s", simple[i].path);
            return 0;
        }
    }
    if (strcmp(argv[0], "admission") == 0)
        return admission_cmd(argc, argv, r);
    if (strcmp(argv[0], "deploy") == 0)
        return deploy_cmd(argc, argv, r);
    return EXIT_USAGE;
}

/* ---- talking to the server ------------------------------------------------------------ */

/*
 * The admin address as HOST:PORT, checked before anything is sent: a
 * malformed one is the command's fault (exit 2), where a name that does not
 * resolve or a port nobody listens on is the gateway's side (exit 1).
 */
static bool parse_admin(const char *addr, char **host, uint16_t *port)
{
    *host = NULL;
    if (sl_parse_hostport(addr, host, port) == SL_OK && *port != 0)
        return true;
    free(*host);
    *host = NULL;
    return false;
}

static int connect_to(const char *addr, const char *host, uint16_t port)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char portstr[8];
    snprintf(portstr, sizeof portstr, "%u", port);
    int rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "sluice ctl: %s: %s\n", addr, gai_strerror(rc));
        return -1;
    }
    int fd = -1, err = 0;
    for (struct addrinfo *ai = res; ai != NULL && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0)
            continue;
        struct timeval tv = {.tv_sec = TIMEOUT_S};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
            err = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0)
        fprintf(stderr, "sluice ctl: cannot connect to the admin API at %s: %s\n", addr,
                strerror(err));
    return fd;
}

static bool send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return false;
        p += k;
        n -= (size_t)k;
    }
    return true;
}

static bool read_all(int fd, sl_buf_t *out)
{
    char chunk[16384];
    for (;;) {
        ssize_t k = recv(fd, chunk, sizeof chunk, 0);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return false;
        if (k == 0)
            return !out->oom;
        if (out->len + (size_t)k > MAX_RESPONSE)
            return false;
        sl_buf_append(out, chunk, (size_t)k);
    }
}

static bool load_token(const char *file, char *tok, size_t cap)
{
    char err[512];
    if (sl_admin_token_read(file, tok, cap, err, sizeof err) < 0) {
        fprintf(stderr, "sluice ctl: --token-file: %s\n", err);
        return false;
    }
    return true;
}

/*
 * A refusal's reasons ("errors": a refused reload's FILE:LINE:COL lines, a
 * refused backend list's entries), one a line on stderr: the one-line
 * "reload refused; the running config is unchanged" alone left the operator
 * to guess what was wrong with the file.
 */
static void print_reasons(const sl_json_t *errors)
{
    if (errors == NULL || errors->type != SL_JSON_ARRAY)
        return;
    for (const sl_json_t *l = errors->child; l != NULL; l = l->next)
        if (l->type == SL_JSON_STRING)
            fprintf(stderr, "%s\n", l->str);
}

/* Print the answer: JSON pretty on stdout (2xx) or its error on stderr. */
static int report(const sl_http_head_t *h, const char *base, const char *body, size_t len)
{
    bool ok = h->status >= 200 && h->status < 300;
    const sl_http_header_t *ct = sl_http_find(h, base, "content-type");
    bool json = ct != NULL && ct->value.len >= 16 &&
                strncmp(base + ct->value.off, "application/json", 16) == 0;
    sl_json_doc_t doc = {0};
    /* Our own server's answer: as many values as it may hold (a status of
       many pools of 256 backends is more than the default for a body). */
    const sl_json_limits_t lim = {.max_nodes = MAX_RESPONSE / 2 + 1};
    if (!json || sl_json_parse(&doc, body, len, &lim, NULL) != 0) {
        if (!ok)
            fprintf(stderr, "sluice ctl: HTTP %d %s\n", h->status, sl_http_status_text(h->status));
        fwrite(body, 1, len, ok ? stdout : stderr);
        return ok ? EXIT_OK : EXIT_FAIL;
    }
    const sl_json_t *e = sl_json_get(doc.root, "error");
    if (!ok && e != NULL && e->type == SL_JSON_STRING) {
        fprintf(stderr, "sluice ctl: HTTP %d %s: %s\n", h->status,
                sl_http_status_text(h->status), e->str);
        print_reasons(sl_json_get(doc.root, "errors"));
    } else {
        sl_buf_t out = {0};
        sl_jw_t w;
        sl_jw_init(&w, &out, true);
        sl_jw_value(&w, doc.root);
        sl_buf_append(&out, "\n", 1);
        if (!ok)
            fprintf(stderr, "sluice ctl: HTTP %d %s\n", h->status, sl_http_status_text(h->status));
        fputs(out.data ? out.data : "", ok ? stdout : stderr);
        sl_buf_free(&out);
    }
    sl_json_doc_free(&doc);
    return ok ? EXIT_OK : EXIT_FAIL;
}

static int exchange(const char *addr, const char *host, uint16_t port, const char *token,
                    const request_t *r)
{
    int fd = connect_to(addr, host, port);
    if (fd < 0)
        return EXIT_FAIL;
    sl_buf_t req = {0}, resp = {0};
    sl_buf_printf(&req, "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: sluice-ctl/%s\r\n"
                  "Accept: application/json\r\nConnection: close\r\n",
                  r->method, r->path, addr, SLUICE_VERSION);
    if (token != NULL)
        sl_buf_printf(&req, "Authorization: Bearer %s\r\n", token);
    if (r->body.len > 0 || strcmp(r->method, "GET") != 0)
        sl_buf_printf(&req, "Content-Type: application/json\r\nContent-Length: %zu\r\n",
                      r->body.len);
    sl_buf_append(&req, "\r\n", 2);
    sl_buf_append(&req, r->body.data, r->body.len);
    int rc = EXIT_FAIL;
    errno = 0;
    if (req.oom || !send_all(fd, req.data, req.len) || !read_all(fd, &resp)) {
        /* The socket timeouts end a silent exchange with EAGAIN, which would
           read "Resource temporarily unavailable": say what happened. */
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            fprintf(stderr, "sluice ctl: %s: no answer within %d s\n", addr, TIMEOUT_S);
        else
            fprintf(stderr, "sluice ctl: %s: %s\n", addr, errno ? strerror(errno) : "I/O error");
        goto out;
    }
    static sl_http_parser_t p;
    sl_http_parser_init(&p, SL_HTTP_RESPONSE, strcmp(r->method, "GET") == 0 ? HTTP_GET : HTTP_POST);
    int hl = resp.len ? sl_http_parse_head(&p, resp.data, resp.len) : SL_NEED_MORE;
    if (hl < 0) {
        fprintf(stderr, "sluice ctl: %s: not an HTTP response\n", addr);
        goto out;
    }
    size_t blen = resp.len - (size_t)hl;
    if (p.head.content_length >= 0 && (uint64_t)p.head.content_length < blen)
        blen = (size_t)p.head.content_length;
    /* A connection that ended early (the server died, a reset) left a part
       of the answer: printed with exit 0, a script took it for the whole. */
    if (p.head.content_length >= 0 && blen < (uint64_t)p.head.content_length) {
        fprintf(stderr, "sluice ctl: %s: the answer was cut short (%zu of %lld bytes)\n", addr,
                blen, (long long)p.head.content_length);
        goto out;
    }
    rc = report(&p.head, resp.data, resp.data + hl, blen);
out:
    close(fd);
    sl_buf_free(&req);
    sl_buf_free(&resp);
    return rc;
}

int sl_ctl_main(int argc, char **argv)
{
    const char *addr = getenv("SLUICE_ADMIN");
    const char *addr_from = "$SLUICE_ADMIN";
    const char *token_file = getenv("SLUICE_TOKEN_FILE");
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return EXIT_OK;
        }
        bool known = strcmp(argv[i], "--admin") == 0 || strcmp(argv[i], "--token-file") == 0;
        if (!known || i + 1 >= argc) {
            if (known)
                fprintf(stderr, "sluice ctl: %s: expected a value after it\n", argv[i]);
            else
                fprintf(stderr, "sluice ctl: unknown option \"%s\"\n", argv[i]);
            usage(stderr);
            return EXIT_USAGE;
        }
        /* Empty given on the command line is a mistake ("--admin $ADDR" with
           ADDR unset), not the default: that could be another gateway. */
        if (argv[i + 1][0] == '\0') {
            fprintf(stderr, "sluice ctl: %s: expected a value, got \"\"\n", argv[i]);
            return EXIT_USAGE;
        }
        if (strcmp(argv[i], "--admin") == 0) {
            addr = argv[++i];
            addr_from = "--admin";
        } else {
            token_file = argv[++i];
        }
    }
    if (addr == NULL || *addr == '\0')
        addr = DEFAULT_ADMIN;
    char *host = NULL;
    uint16_t port = 0;
    if (!parse_admin(addr, &host, &port)) {
        fprintf(stderr, "sluice ctl: %s \"%s\": expected HOST:PORT (a port from 1 to 65535; "
                "brackets around an IPv6 address)\n", addr_from, addr);
        return EXIT_USAGE;
    }
    request_t r = {0};
    int rc = i < argc ? build_request(argc - i, argv + i, &r) : EXIT_USAGE;
    if (rc != 0) {
        if (i < argc) {
            /* The whole command: "admission set" without its words is not a bad "admission". */
            fprintf(stderr, "sluice ctl: bad command:");
            for (int k = i; k < argc; k++)
                fprintf(stderr, " %s", argv[k]);
            fprintf(stderr, "\n");
        }
        usage(stderr);
        sl_buf_free(&r.body);
        free(host);
        return EXIT_USAGE;
    }
    char token[SL_ADMIN_MAX_TOKEN + 1];
    bool have_token = token_file != NULL && *token_file != '\0';
    if (have_token && !load_token(token_file, token, sizeof token))
        rc = EXIT_FAIL;
    else
        rc = exchange(addr, host, port, have_token ? token : NULL, &r);
    sl_buf_free(&r.body);
    free(host);
    return rc;
}

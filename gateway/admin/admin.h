/*
 * admin.h: the admin API (HTTP/1.1 + JSON on the control loop) and
 * `sluice ctl`, its command-line client.
 *
 * The server runs on the control thread's loop, so a handler may read and
 * change control-thread state directly (the runtime, policy objects) with
 * no locks, and must not block: it answers from what is in memory.
 *
 * Writing a handler
 * -----------------
 * A handler is `void fn(sl_admin_req_t *req, sl_admin_resp_t *resp)`. It
 * reads the request (path parameters in req->params, in the order of the
 * {names} in the pattern; the body in req->body) and writes one JSON value
 * with the writer resp->jw, which is ready on resp->body:
 *
 *     static void get_thing(sl_admin_req_t *req, sl_admin_resp_t *resp)
 *     {
 *         sl_jw_obj(&resp->jw);
 *         sl_jw_kstr(&resp->jw, "name", req->params[0]);
 *         sl_jw_end(&resp->jw);
 *     }
 *
 * resp->status starts at 200; for an error call sl_admin_error(resp, 404,
 * "no pool \"%s\"", name), which replaces the body with {"error": "..."}.
 * A request body is parsed by the server before the handler runs (400 with
 * the parser's byte offset and message when it is not JSON): the handler
 * finds it in req->json (NULL when the body was empty). Then add one line to
 * the route table in api.c: { "POST", "/api/v1/things/{thing}", post_thing }.
 * The server does the rest: routing (404, 405 with Allow), the bearer token
 * (401), body limits (413), Content-Length, keep-alive.
 */
#ifndef SLUICE_ADMIN_ADMIN_H
#define SLUICE_ADMIN_ADMIN_H

#include <stdbool.h>
#include <stddef.h>

#include "sluice/json.h"
#include "../net/gateway.h"
#include "json_out.h"

/* Returned by sl_admin_start when the address cannot be listened on (exit 1). */
#define SL_ADMIN_ELISTEN (-1001)

#define SL_ADMIN_MAX_PARAMS 4
#define SL_ADMIN_MAX_BODY (1024 * 1024)

typedef struct sl_admin_req {
    sl_gateway_t *gw;
    const char *method;          /* "GET", "PUT", ... */
    const char *path;            /* without the query, as sent (NUL-terminated) */
    const char *query;           /* after '?', or "" */
    const char *params[SL_ADMIN_MAX_PARAMS];   /* {name} segments, percent-decoded */
    size_t n_params;
    const char *body;            /* the request body (NUL-terminated), len body_len */
    size_t body_len;
    const sl_json_t *json;       /* the body parsed, or NULL when it is empty */
    sl_msec_t now;               /* uv_now() of the control loop */
} sl_admin_req_t;

typedef struct sl_admin_resp {
    int status;                  /* 200 unless the handler sets it */
    const char *content_type;    /* NULL: application/json */
    const char *extra_headers;   /* static text of whole header lines, or NULL */
    sl_buf_t body;               /* owned by the server */
    sl_jw_t jw;                  /* a writer on body */
} sl_admin_resp_t;

typedef void sl_admin_handler_t(sl_admin_req_t *req, sl_admin_resp_t *resp);

enum { SL_ADMIN_PUBLIC = 1 };    /* no bearer token needed (liveness probes) */

typedef struct sl_admin_route {
    const char *method;
    const char *pattern;         /* "/api/v1/pools/{pool}": a {name} matches one segment */
    sl_admin_handler_t *handler;
    unsigned flags;
} sl_admin_route_t;

/* The route table (api.c), in match order. */
extern const sl_admin_route_t sl_admin_routes[];
extern const size_t sl_admin_n_routes;

/*
 * Start the admin server when cfg->admin is enabled (otherwise returns 0 and
 * does nothing): read the token file, bind, listen on gw->loop. Call after
 * sl_control_start(). Returns 0; SL_EINVAL when sluice must refuse to start
 * (a non-loopback address without admin.token_file, an unreadable or empty
 * token file: exit 2); SL_ADMIN_ELISTEN when the address cannot be bound
 * (exit 1). On error `err` holds one line for the log and nothing is left open.
 */
int sl_admin_start(sl_gateway_t *gw, char *err, size_t errlen);

/*
 * Close the listener and every admin connection (their handles close on the
 * next loop iteration, so the loop can end). Idempotent; call it when the
 * control loop shuts down, after the drain (so /readyz answers 503 during it).
 */
void sl_admin_stop(sl_gateway_t *gw);

/*
 * Check what the admin settings need from the system, for --check and before
 * a start (main.c), so a config --check passes is one sluice starts with:
 * admin.address resolves, and is loopback unless a token_file is given; the
 * token file holds a token (sl_admin_token_read); the state file's directory
 * exists and is writable. Returns 0, or SL_EINVAL with one line per problem
 * in `diag` ("FILE:LINE:COL: admin.token_file: ..."). No-op without admin.
 */
int sl_admin_check(const sl_config_t *cfg, sl_diag_t *diag);

/*
 * The bearer token (token.c). A token file holds one line of 1 to
 * SL_ADMIN_MAX_TOKEN bytes; line ends after it (any number of CR and LF) are
 * not part of it; a header must carry it whole (no space or tab at its ends,
 * no control character). sl_admin_token_read puts it in tok (cap at least
 * SL_ADMIN_MAX_TOKEN + 1, NUL-terminated) and returns its length, or -1 with
 * `err` saying why (cannot read, empty, longer, more than one line, not
 * sendable); the
 * server and `sluice ctl` both use it. sl_admin_token_load reads it and keeps
 * only its SHA-256 digest (SL_EINVAL with `err`). sl_admin_token_ok checks an
 * Authorization header value ("Bearer <token>") against the digest in
 * constant time.
 */
#define SL_ADMIN_TOKEN_DIGEST 32
#define SL_ADMIN_MAX_TOKEN 4096
long sl_admin_token_read(const char *file, char *tok, size_t cap, char *err, size_t errlen);
int sl_admin_token_load(const char *file, unsigned char digest[SL_ADMIN_TOKEN_DIGEST],
                        char *err, size_t errlen);
bool sl_admin_token_ok(const unsigned char digest[SL_ADMIN_TOKEN_DIGEST],
                       const char *authorization, size_t len);

/*
 * For a reload: does `file` still hold the token the running server checks
 * (read at start, only its digest kept)? 0 yes (or no token is in force),
 * 1 it holds another token, -1 it cannot be read as a token (`why` says why).
 */
int sl_admin_token_changed(const char *file, char *why, size_t len);

/* Replace the response with {"error": "<message>"} and the given status. */
void sl_admin_error(sl_admin_resp_t *resp, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * `sluice ctl ...`: the admin API from the command line (see ctl.c for the
 * commands). argv[0] is "ctl". Prints the response (JSON pretty-printed) and
 * returns the exit code: 0 on a 2xx answer, 1 otherwise, 2 on usage errors.
 */
int sl_ctl_main(int argc, char **argv);

/* Internals shared by the admin modules. */
/* admin.address resolved into ss; SL_EINVAL with `err` (no key, no position)
   when it does not resolve, or is not loopback and no token_file is given. */
int sl__admin_address(const sl_cfg_admin_t *a, struct sockaddr_storage *ss, socklen_t *len,
                      char *err, size_t errlen);
void sl__admin_metrics(sl_admin_req_t *req, sl_admin_resp_t *resp);
/* api_policy.c: admission, deploys, reload, and their metric families. */
sl_admin_handler_t sl__admin_get_admission, sl__admin_put_admission, sl__admin_get_deploy,
    sl__admin_post_deploy, sl__admin_post_pause, sl__admin_post_resume, sl__admin_post_abort,
    sl__admin_post_reload, sl__admin_put_backends, sl__admin_post_backend_drain;
void sl__admin_policy_metrics(sl_gateway_t *gw, sl_buf_t *b);
/* One label of /metrics, key="value", the value escaped per the text format
   0.0.4 (backslash, double quote, line feed); every label goes through it. */
void sl__admin_label(sl_buf_t *b, const char *key, const char *value);
void sl__admin_sum_counters(sl_gateway_t *gw, uint64_t out[SL_CTR__COUNT]);

#endif

/*
 * check.c: what the admin settings need from the system, checked where
 * --check sees it.
 *
 * The config loader does no I/O, so it cannot tell that a token file is
 * missing or that a state file's directory is not there. These checks used
 * to live in the admin server's start alone: `sluice --check` then passed a
 * config that sluice refused to start with (exit 2), and a state file that
 * could not be written failed only when the API first tried to keep a
 * change. main.c runs sl_admin_check for --check and before every start;
 * the server's start uses sl__admin_address too, so the loopback rule is
 * written once and the two cannot disagree.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "admin.h"
#include "../net/files.h"

static bool is_loopback(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (ss->ss_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)ss)->sin6_addr;
        if (IN6_IS_ADDR_LOOPBACK(a))
            return true;
        return IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127;
    }
    return false;
}

int sl__admin_address(const sl_cfg_admin_t *a, struct sockaddr_storage *ss, socklen_t *len,
                      char *err, size_t errlen)
{
    char why[256];
    if (sl_resolve(a->address.host, a->address.port, ss, len, why, sizeof why) != 0) {
        snprintf(err, errlen, "%s", why);
        return SL_EINVAL;
    }
    /* Anyone who can reach a non-loopback address could drive deploys. */
    if (!is_loopback(ss) && a->token_file == NULL) {
        snprintf(err, errlen, "%s is not a loopback address: refusing to expose the admin API "
                 "without admin.token_file (a bearer token)", a->address.text);
        return SL_EINVAL;
    }
    return 0;
}

/*
 * The admin address, resolved, on a listener's port: a name ("localhost")
 * that the loader could not compare with a listener's IP literal. The admin
 * socket is bound first, and the listener's bind then failed, blaming
 * "another process". Same address, or the listener's wildcard of its
 * family; returns the listener's index, or -1.
 */
static long listener_clash(const sl_config_t *cfg, const struct sockaddr_storage *ss)
{
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        const sl_cfg_addr_t *l = &cfg->listeners[i].address;
        unsigned char b[16];
        if (l->host == NULL || l->port != cfg->admin.address.port)
            continue;
        if (ss->ss_family == AF_INET && inet_pton(AF_INET, l->host, b) == 1) {
            const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
            static const unsigned char any[4];
            if (memcmp(b, &in->sin_addr, 4) == 0 || memcmp(b, any, 4) == 0)
                return (long)i;
        } else if (ss->ss_family == AF_INET6 && inet_pton(AF_INET6, l->host, b) == 1) {
            const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
            static const unsigned char any[16];
            if (memcmp(b, &in6->sin6_addr, 16) == 0 || memcmp(b, any, 16) == 0)
                return (long)i;
        }
    }
    return -1;
}

/* One problem at a key: "FILE:LINE:COL: admin.KEY: message". */
static void problem(sl_diag_t *diag, const sl_config_t *cfg, sl_cfg_pos_t pos, const char *key,
                    const char *msg)
{
    char line[1024];
    snprintf(line, sizeof line, "%s:%u:%u: admin.%s: %s", cfg->file ? cfg->file : "config",
             pos.line, pos.col, key, msg);
    sl_diag_add(diag, line);
}

int sl_admin_check(const sl_config_t *cfg, sl_diag_t *diag)
{
    const sl_cfg_admin_t *a = &cfg->admin;
    if (!a->enabled)
        return 0;
    bool ok = true;
    char err[768];
    struct sockaddr_storage ss;
    socklen_t sslen;
    long clash;
    if (sl__admin_address(a, &ss, &sslen, err, sizeof err) != 0) {
        problem(diag, cfg, a->address.pos, "address", err);
        ok = false;
    } else if ((clash = listener_clash(cfg, &ss)) >= 0) {
        sl_cfg_pos_t lp = cfg->listeners[clash].address.pos;
        snprintf(err, sizeof err, "%s is also listeners[%ld] (at %u:%u); expected a port of its "
                 "own", a->address.text, clash, lp.line, lp.col);
        problem(diag, cfg, a->address.pos, "address", err);
        ok = false;
    }
    if (a->token_file != NULL) {
        char tok[SL_ADMIN_MAX_TOKEN + 1];
        if (sl_admin_token_read(a->token_file, tok, sizeof tok, err, sizeof err) < 0) {
            problem(diag, cfg, a->token_file_pos, "token_file", err);
            ok = false;
        }
        OPENSSL_cleanse(tok, sizeof tok);
    }
    /* Written as "<path>.tmp" and renamed over <path>: its directory must take
       new files, or every change the API makes would be answered as kept and
       be gone at the next restart. */
    if (a->state_file != NULL && !sl_file_writable(a->state_file, false, err, sizeof err)) {
        problem(diag, cfg, a->state_file_pos, "state_file", err);
        ok = false;
    }
    return ok ? 0 : SL_EINVAL;
}

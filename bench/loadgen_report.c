/*
 * bench/loadgen_report.c: what the run leaves behind, written by the main
 * thread once every worker has joined (so it reads their counters freely):
 * the summary (JSON with --json, else a few lines of text), the per-second
 * CSV timeline and the deploy sent log.
 *
 * Names and close codes are merged by value, because each thread numbered
 * them in the order it met them.
 */
#include "loadgen.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static const char *mode_name(lg_mode_t m)
{
    static const char *names[] = { "connect", "echo", "storm", "deploy" };
    return names[m];
}

static void merge_counts(lg_count_t *dst, uint32_t *n, const lg_count_t *src, uint32_t sn,
                         bool by_name)
{
    for (uint32_t i = 0; i < sn; i++) {
        uint32_t j = 0;
        while (j < *n && (by_name ? strcmp(dst[j].name, src[i].name) != 0
                                  : dst[j].code != src[i].code))
            j++;
        if (j == *n) {
            if (*n >= (by_name ? LG_MAX_NAMES : LG_MAX_CODES))
                continue;
            dst[j] = src[i];
            dst[j].n = 0;
            (*n)++;
        }
        dst[j].n += src[i].n;
    }
}

#define ADD(f) t->f += s->f
static void merge_stats(lg_stats_t *t, const lg_stats_t *s)
{
    ADD(attempts); ADD(upgrades); ADD(reconnects); ADD(closes);
    ADD(fail_connect); ADD(fail_status); ADD(fail_timeout); ADD(fail_closed);
    ADD(fail_protocol); ADD(msgs_sent); ADD(msgs_recv); ADD(bytes_sent); ADD(bytes_recv);
    ADD(mismatches); ADD(other_msgs); ADD(skipped); ADD(pings); ADD(closes_no_frame);
    for (size_t i = 0; i < SL_ARRAY_SIZE(t->status); i++)
        ADD(status[i]);
    merge_counts(t->codes, &t->n_codes, s->codes, s->n_codes, false);
    merge_counts(t->names, &t->n_names, s->names, s->n_names, true);
    if (s->first_attempt_ns && (!t->first_attempt_ns || s->first_attempt_ns < t->first_attempt_ns))
        t->first_attempt_ns = s->first_attempt_ns;
    if (s->first_send_ns && (!t->first_send_ns || s->first_send_ns < t->first_send_ns))
        t->first_send_ns = s->first_send_ns;
    t->last_upgrade_ns = SL_MAX(t->last_upgrade_ns, s->last_upgrade_ns);
    t->last_recv_ns = SL_MAX(t->last_recv_ns, s->last_recv_ns);
    lg_hist_merge(&t->handshake, &s->handshake);
    lg_hist_merge(&t->rtt, &s->rtt);
}
#undef ADD

static double per_s(uint64_t n, uint64_t from_ns, uint64_t to_ns)
{
    if (n == 0 || to_ns <= from_ns)
        return 0;
    return (double)n * 1e9 / (double)(to_ns - from_ns);
}

static void json_hist(FILE *f, const char *name, const lg_hist_t *h)
{
    fprintf(f, "\"%s\":{\"count\":%" PRIu64 ",\"p50\":%" PRIu64 ",\"p90\":%" PRIu64
               ",\"p99\":%" PRIu64 ",\"p999\":%" PRIu64 ",\"max\":%" PRIu64 "}",
            name, h->count, lg_hist_quantile(h, 0.5), lg_hist_quantile(h, 0.9),
            lg_hist_quantile(h, 0.99), lg_hist_quantile(h, 0.999), h->max);
}

static uint64_t failures(const lg_stats_t *s)
{
    return s->fail_connect + s->fail_status + s->fail_timeout + s->fail_closed +
           s->fail_protocol;
}

static void print_json(FILE *f, const lg_stats_t *s, uint64_t end_ns)
{
    uint64_t full = atomic_load(&lg_shared.full_ns);
    fprintf(f, "{\"mode\":\"%s\",\"connections\":%u,\"threads\":%u,\"elapsed_s\":%.3f,",
            mode_name(lg_opt.mode), lg_opt.conns, lg_opt.threads,
            (double)(end_ns - lg_shared.t0_ns) / 1e9);
    fprintf(f, "\"attempts\":%" PRIu64 ",\"upgrades\":%" PRIu64 ",\"upgrades_per_s\":%.1f,"
               "\"reconnects\":%" PRIu64 ",\"closes\":%" PRIu64 ",\"closes_without_frame\":%"
               PRIu64 ",",
            s->attempts, s->upgrades, per_s(s->upgrades, s->first_attempt_ns, s->last_upgrade_ns),
            s->reconnects, s->closes, s->closes_no_frame);
    fprintf(f, "\"failures\":{\"total\":%" PRIu64 ",\"connect\":%" PRIu64 ",\"http_status\":%"
               PRIu64 ",\"timeout\":%" PRIu64 ",\"closed\":%" PRIu64 ",\"protocol\":%" PRIu64 "},",
            failures(s), s->fail_connect, s->fail_status, s->fail_timeout, s->fail_closed,
            s->fail_protocol);
    fprintf(f, "\"http_statuses\":{");
    const char *sep = "";
    for (size_t i = 0; i < SL_ARRAY_SIZE(s->status); i++) {
        if (s->status[i]) {
            fprintf(f, "%s\"%zu\":%" PRIu64, sep, i, s->status[i]);
            sep = ",";
        }
    }
    fprintf(f, "},\"close_codes\":{");
    sep = "";
    for (uint32_t i = 0; i < s->n_codes; i++) {
        fprintf(f, "%s\"%u\":%" PRIu64, sep, s->codes[i].code, s->codes[i].n);
        sep = ",";
    }
    fprintf(f, "},\"backends\":{");
    sep = "";
    for (uint32_t i = 0; i < s->n_names; i++) {
        fprintf(f, "%s\"%s\":%" PRIu64, sep, s->names[i].name, s->names[i].n);
        sep = ",";
    }
    fprintf(f, "},");
    json_hist(f, "handshake_us", &s->handshake);
    fprintf(f, ",\"messages_sent\":%" PRIu64 ",\"messages_received\":%" PRIu64
               ",\"messages_per_s\":%.1f,\"bytes_sent\":%" PRIu64 ",\"bytes_received\":%"
               PRIu64 ",\"mismatches\":%" PRIu64 ",\"other_messages\":%" PRIu64
               ",\"skipped_sends\":%" PRIu64 ",\"pings\":%" PRIu64 ",",
            s->msgs_sent, s->msgs_recv, per_s(s->msgs_recv, s->first_send_ns, s->last_recv_ns),
            s->bytes_sent, s->bytes_recv, s->mismatches, s->other_msgs, s->skipped, s->pings);
    json_hist(f, "rtt_us", &s->rtt);
    fprintf(f, ",\"connected_peak\":%" PRIu64 ",\"all_connected_ms\":%.1f,",
            atomic_load(&lg_shared.peak),
            full ? (double)(full - lg_shared.t0_ns) / 1e6 : -1.0);
    fprintf(f, "\"recoveries\":%" PRIu64 ",\"recovery_last_ms\":%.1f,\"recovery_max_ms\":%.1f,"
               "\"unrecovered\":%s}\n",
            atomic_load(&lg_shared.episodes),
            (double)atomic_load(&lg_shared.recovery_last_us) / 1e3,
            (double)atomic_load(&lg_shared.recovery_max_us) / 1e3,
            atomic_load(&lg_shared.drop_ns) ? "true" : "false");
}

static void print_text(FILE *f, const lg_stats_t *s)
{
    fprintf(f, "mode %s: %u connections, %" PRIu64 " attempts, %" PRIu64 " upgrades "
               "(%.1f/s), %" PRIu64 " reconnects, %" PRIu64 " closes\n",
            mode_name(lg_opt.mode), lg_opt.conns, s->attempts, s->upgrades,
            per_s(s->upgrades, s->first_attempt_ns, s->last_upgrade_ns), s->reconnects,
            s->closes);
    fprintf(f, "failures %" PRIu64 ": connect %" PRIu64 ", http status %" PRIu64
               ", timeout %" PRIu64 ", closed %" PRIu64 ", protocol %" PRIu64 "\n",
            failures(s), s->fail_connect, s->fail_status, s->fail_timeout, s->fail_closed,
            s->fail_protocol);
    const lg_hist_t *h = &s->handshake;
    fprintf(f, "handshake us: p50 %" PRIu64 " p90 %" PRIu64 " p99 %" PRIu64 " max %" PRIu64 "\n",
            lg_hist_quantile(h, 0.5), lg_hist_quantile(h, 0.9), lg_hist_quantile(h, 0.99),
            h->max);
    if (lg_opt.mode == LG_MODE_ECHO) {
        h = &s->rtt;
        fprintf(f, "echo: %" PRIu64 " messages (%.1f/s), %" PRIu64 " mismatches; rtt us: p50 %"
                   PRIu64 " p90 %" PRIu64 " p99 %" PRIu64 " p999 %" PRIu64 " max %" PRIu64 "\n",
                s->msgs_recv, per_s(s->msgs_recv, s->first_send_ns, s->last_recv_ns),
                s->mismatches, lg_hist_quantile(h, 0.5), lg_hist_quantile(h, 0.9),
                lg_hist_quantile(h, 0.99), lg_hist_quantile(h, 0.999), h->max);
    }
    if (lg_opt.mode == LG_MODE_STORM || lg_opt.mode == LG_MODE_DEPLOY)
        fprintf(f, "recoveries to %u connected: %" PRIu64 ", last %.1f ms, max %.1f ms\n",
                lg_opt.conns, atomic_load(&lg_shared.episodes),
                (double)atomic_load(&lg_shared.recovery_last_us) / 1e3,
                (double)atomic_load(&lg_shared.recovery_max_us) / 1e3);
}

static int write_timeline(lg_worker_t *ws, uint32_t nw, uint64_t end_ns)
{
    FILE *f = fopen(lg_opt.timeline, "w");
    if (!f)
        return -1;
    fprintf(f, "second,connected,upgrades,closes,failures,messages,p99_us\n");
    uint64_t secs = (end_ns - lg_shared.t0_ns + 999999999u) / 1000000000u;
    lg_tl_t *sum = calloc(1, sizeof(*sum));
    for (uint64_t s = 0; sum && s < secs && s < ws[0].n_tl; s++) {
        memset(sum, 0, sizeof(*sum));
        for (uint32_t i = 0; i < nw; i++) {
            const lg_tl_t *t = &ws[i].tl[s];
            sum->connected += t->connected;
            sum->upgrades += t->upgrades;
            sum->closes += t->closes;
            sum->failures += t->failures;
            sum->messages += t->messages;
            lg_hist_merge(&sum->lat, &t->lat);
        }
        fprintf(f, "%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64
                   ",%" PRIu64 "\n",
                s + 1, sum->connected, sum->upgrades, sum->closes, sum->failures, sum->messages,
                lg_hist_quantile(&sum->lat, 0.99));
    }
    free(sum);
    return fclose(f) == 0 ? 0 : -1;
}

static int write_sent_log(lg_worker_t *ws, uint32_t nw)
{
    FILE *f = fopen(lg_opt.sent_log, "w");
    if (!f)
        return -1;
    for (uint32_t i = 0; i < nw; i++) {
        for (size_t k = 0; k < ws[i].n_gens; k++) {
            const lg_gen_rec_t *g = &ws[i].gens[k];
            char how[16];
            if (g->how > 0)
                snprintf(how, sizeof(how), "%d", (int)g->how);
            else
                snprintf(how, sizeof(how), "%s", g->how < 0 ? "local" : "dropped");
            fprintf(f, "%u.%u %" PRIu64 " %s %s\n", g->id, g->gen, g->last_seq, how,
                    g->name >= 0 ? ws[i].st.names[g->name].name : "-");
        }
    }
    return fclose(f) == 0 ? 0 : -1;
}

void lg_report(lg_worker_t *ws, uint32_t nw, uint64_t end_ns)
{
    lg_stats_t *tot = calloc(1, sizeof(*tot));
    if (!tot) {
        fprintf(stderr, "sluice-loadgen: out of memory for the summary\n");
        return;
    }
    for (uint32_t i = 0; i < nw; i++)
        merge_stats(tot, &ws[i].st);
    if (lg_opt.json)
        print_json(stdout, tot, end_ns);
    else
        print_text(stdout, tot);
    fflush(stdout);
    if (lg_opt.timeline && write_timeline(ws, nw, end_ns) < 0)
        fprintf(stderr, "sluice-loadgen: cannot write %s\n", lg_opt.timeline);
    if (lg_opt.sent_log && write_sent_log(ws, nw) < 0)
        fprintf(stderr, "sluice-loadgen: cannot write %s\n", lg_opt.sent_log);
    free(tot);
}

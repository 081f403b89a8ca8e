/*
 * bench/loadgen.c: sluice-loadgen's threads, ramp, end of run and main().
 *
 * Why one loop per thread with a fixed slice of slots: a load generator that
 * shares state between threads measures its own locks. Each worker owns
 * connection ids [i*N/T, (i+1)*N/T), opens them at its share of --rate (or
 * with at most its share of --max-pending handshakes in flight), and stops
 * at the same moment as the others because they all count from one start
 * time. The main thread only waits (and forwards SIGINT/SIGTERM as an early
 * stop), then merges the counters once every worker has joined.
 *
 * A run always ends by itself: at --duration every open connection sends a
 * 1000 close and waits for the peer's reply and TCP close; LG_STOP_CAP_MS
 * later whatever is left is cut. Every handle is closed and each loop must
 * close with uv_loop_close() == 0.
 */
#include "loadgen.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

lg_shared_t lg_shared;

static uv_loop_t main_loop;
static uv_async_t main_done;
static uv_signal_t sig_int, sig_term;
static lg_worker_t *workers;
static _Atomic uint32_t workers_done;

static bool any_pacing(const lg_worker_t *w)
{
    return w->started < w->n || (lg_opt.mode == LG_MODE_ECHO && lg_opt.msg_rate > 0);
}

/* Start as many ramp slots as the rate (or the pending cap) allows now. */
static void ramp(lg_worker_t *w, uint64_t now)
{
    uint64_t allowed = w->n;
    if (lg_opt.rate > 0) {
        double rate_w = lg_opt.rate / lg_opt.threads;
        allowed = (uint64_t)((double)(now - w->pace_start_ns) / 1e9 * rate_w) + 1;
    }
    uint32_t cap = SL_MAX(lg_opt.max_pending / lg_opt.threads, 1u);
    while (w->started < w->n && w->started < allowed && !w->stopping) {
        if (lg_opt.rate <= 0 && w->pending >= cap)
            break;
        lg_conn_t *c = &w->conns[w->started++];
        c->ramp = true;
        w->pending++;
        lg_conn_start(c);
    }
}

/* Open loop: sends due by now, round robin over open connections. The clock
   starts once the ramp is over (every slot tried, none pending): sent during
   the ramp, the whole rate would land on the first few connections, fill
   their windows and measure the ramp instead of a steady rate. */
static void pace_messages(lg_worker_t *w, uint64_t now)
{
    if (w->started < w->n || w->pending > 0) {
        w->msg_start_ns = now;
        return;
    }
    double rate_w = lg_opt.msg_rate / lg_opt.threads;
    uint64_t due = (uint64_t)((double)(now - w->msg_start_ns) / 1e9 * rate_w);
    while (w->msg_due < due && !w->stopping) {
        lg_conn_t *c = NULL;
        for (uint32_t k = 0; k < w->n && !c; k++) {
            lg_conn_t *x = &w->conns[w->rr];
            w->rr = (w->rr + 1) % w->n;
            if (x->state == LG_OPEN)
                c = x;
        }
        if (!c) {
            w->msg_due = due;   /* nobody to send on: those sends never were */
            break;
        }
        if (c->outstanding < lg_opt.window) {
            lg_ws_send_echo(c);
            lg_out_flush(c);
        } else {
            w->st.skipped++;
        }
        w->msg_due++;
    }
}

static void on_pace(uv_timer_t *t)
{
    lg_worker_t *w = sl_container_of(t, lg_worker_t, pace);
    uint64_t now = lg_now_ns();
    ramp(w, now);
    if (lg_opt.mode == LG_MODE_ECHO && lg_opt.msg_rate > 0)
        pace_messages(w, now);
    if (!any_pacing(w))
        uv_timer_stop(&w->pace);
}

static void on_tick(uv_timer_t *t)
{
    lg_worker_t *w = sl_container_of(t, lg_worker_t, tick);
    lg_tl_t *tl = lg_tl_at(w, lg_now_ns());
    if (tl)
        tl->connected = w->connected;
}

static void finish(lg_worker_t *w)
{
    if (w->finished)
        return;
    w->finished = true;
    uv_close((uv_handle_t *)&w->pace, NULL);
    uv_close((uv_handle_t *)&w->tick, NULL);
    uv_close((uv_handle_t *)&w->stop_timer, NULL);
    for (uint32_t i = 0; i < w->n; i++)
        lg_conn_close_handles(&w->conns[i]);
}

void lg_worker_slot_done(lg_worker_t *w)
{
    if (w->stopping && w->live == 0)
        finish(w);
}

/* LG_STOP_CAP_MS after the stop: cut whatever did not close politely. */
static void on_hard_cap(uv_timer_t *t)
{
    lg_worker_t *w = sl_container_of(t, lg_worker_t, stop_timer);
    w->forced = true;
    for (uint32_t i = 0; i < w->n && !w->finished; i++) {
        lg_conn_t *c = &w->conns[i];
        if (c->state == LG_IDLE)
            lg_conn_stop(c);
        else
            lg_conn_drop(c);
    }
}

static void begin_stop(lg_worker_t *w)
{
    if (w->stopping)
        return;
    w->stopping = true;
    uv_timer_stop(&w->pace);
    uv_timer_start(&w->stop_timer, on_hard_cap, LG_STOP_CAP_MS, 0);
    for (uint32_t i = 0; i < w->n && !w->finished; i++)
        lg_conn_stop(&w->conns[i]);
    if (w->live == 0)
        finish(w);
}

static void on_duration(uv_timer_t *t)
{
    begin_stop(sl_container_of(t, lg_worker_t, stop_timer));
}

static void on_stop_async(uv_async_t *a)
{
    begin_stop(sl_container_of(a, lg_worker_t, stop_async));
}

static void worker_main(void *arg)
{
    lg_worker_t *w = arg;
    uv_update_time(&w->loop);
    uint64_t now = lg_now_ns();
    uint64_t ran_ms = (now - lg_shared.t0_ns) / 1000000u;
    w->pace_start_ns = w->msg_start_ns = now;
    uv_timer_start(&w->stop_timer, on_duration,
                   lg_opt.duration_ms > ran_ms ? lg_opt.duration_ms - ran_ms : 0, 0);
    uv_timer_start(&w->tick, on_tick, 0, LG_TICK_MS);
    ramp(w, now);
    if (any_pacing(w))
        uv_timer_start(&w->pace, on_pace, 1, 1);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    atomic_fetch_add(&workers_done, 1);
    uv_async_send(&main_done);
}

static int worker_init(lg_worker_t *w, uint32_t idx)
{
    w->idx = idx;
    w->rng.state = lg_opt.seed ^ (0x9e3779b97f4a7c15ULL * (idx + 1));
    uint32_t first = (uint32_t)((uint64_t)lg_opt.conns * idx / lg_opt.threads);
    uint32_t last = (uint32_t)((uint64_t)lg_opt.conns * (idx + 1) / lg_opt.threads);
    w->n = last - first;
    w->live = w->n;
    if (uv_loop_init(&w->loop) < 0)
        return SL_ENOMEM;
    w->loop.data = w;   /* marks the loop initialised, for worker_free() */
    uv_async_init(&w->loop, &w->stop_async, on_stop_async);
    uv_unref((uv_handle_t *)&w->stop_async);
    uv_timer_init(&w->loop, &w->pace);
    uv_timer_init(&w->loop, &w->tick);
    uv_timer_init(&w->loop, &w->stop_timer);
    w->conns = calloc(w->n, sizeof(*w->conns));
    if (!w->conns)
        return SL_ENOMEM;
    for (uint32_t i = 0; i < w->n; i++) {
        lg_conn_init(w, &w->conns[i], first + i);
        if (lg_opt.mode == LG_MODE_ECHO &&
            !(w->conns[i].sent_ns = calloc(lg_opt.window, sizeof(uint64_t))))
            return SL_ENOMEM;
    }
    if (lg_opt.timeline) {
        w->n_tl = (lg_opt.duration_ms + LG_STOP_CAP_MS) / 1000 + 3;
        if (!(w->tl = calloc(w->n_tl, sizeof(*w->tl))))
            return SL_ENOMEM;
    }
    return 0;
}

static void worker_free(lg_worker_t *w)
{
    if (w->loop.data == w) {   /* the loop was initialised */
        uv_close((uv_handle_t *)&w->stop_async, NULL);
        uv_run(&w->loop, UV_RUN_NOWAIT);
        int r = uv_loop_close(&w->loop);
        if (r != 0)
            fprintf(stderr, "sluice-loadgen: thread %u: loop not closed cleanly: %s\n",
                    w->idx, uv_strerror(r));
    }
    free(w->conns);
    free(w->tl);
    free(w->gens);
}

static void on_main_done(uv_async_t *a)
{
    if (atomic_load(&workers_done) < lg_opt.threads)
        return;
    uv_close((uv_handle_t *)&main_done, NULL);
    uv_close((uv_handle_t *)&sig_int, NULL);
    uv_close((uv_handle_t *)&sig_term, NULL);
}

static void on_signal(uv_signal_t *s, int signum)
{
    for (uint32_t i = 0; i < lg_opt.threads; i++)
        uv_async_send(&workers[i].stop_async);
}

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int main(int argc, char **argv)
{
    int rc = lg_parse_args(argc, argv);
    if (rc >= 0)
        return rc;
    signal(SIGPIPE, SIG_IGN);
    raise_nofile();
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)lg_opt.conns + 64)
        fprintf(stderr, "sluice-loadgen: warning: RLIMIT_NOFILE %llu is below %u connections\n",
                (unsigned long long)rl.rlim_cur, lg_opt.conns);

    workers = calloc(lg_opt.threads, sizeof(*workers));
    rc = workers ? 0 : SL_ENOMEM;
    for (uint32_t i = 0; i < lg_opt.threads && rc == 0; i++) {
        rc = worker_init(&workers[i], i);
    }
    if (rc == 0 && uv_loop_init(&main_loop) < 0)
        rc = SL_ENOMEM;
    uint32_t started = 0;
    if (rc == 0) {
        uv_async_init(&main_loop, &main_done, on_main_done);
        uv_signal_init(&main_loop, &sig_int);
        uv_signal_init(&main_loop, &sig_term);
        uv_signal_start(&sig_int, on_signal, SIGINT);
        uv_signal_start(&sig_term, on_signal, SIGTERM);
        lg_shared.t0_ns = lg_now_ns();
        for (; started < lg_opt.threads; started++) {
            if (uv_thread_create(&workers[started].thread, worker_main, &workers[started]) < 0)
                break;
        }
        if (started < lg_opt.threads) {
            fprintf(stderr, "sluice-loadgen: cannot start thread %u\n", started);
            rc = 1;
            for (uint32_t i = 0; i < started; i++)
                uv_async_send(&workers[i].stop_async);
            atomic_fetch_add(&workers_done, lg_opt.threads - started);
            uv_async_send(&main_done);
        }
        uv_run(&main_loop, UV_RUN_DEFAULT);
        for (uint32_t i = 0; i < started; i++)
            uv_thread_join(&workers[i].thread);
        uv_loop_close(&main_loop);
        if (rc == 0)
            lg_report(workers, lg_opt.threads, lg_now_ns());
    } else {
        fprintf(stderr, "sluice-loadgen: setup failed: out of memory or loop init\n");
        rc = 1;
    }
    for (uint32_t i = 0; workers && i < lg_opt.threads; i++)
        worker_free(&workers[i]);
    free(workers);
    lg_free_options();
    return rc;
}

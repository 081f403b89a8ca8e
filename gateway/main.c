/*
 * main.c: the command line, and the process from start to exit.
 *
 * Exit codes: 0 clean exit (or a valid config with --check), 2 a bad config
 * or bad usage, 1 a failure at run time (a port in use, no memory).
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "sluice/config.h"
#include "sluice/log.h"
#include "admin/admin.h"
#include "net/control.h"
#include "net/ctl.h"
#include "net/tls.h"
#include "net/accesslog.h"
#include "net/gateway.h"

enum { EXIT_OK = 0, EXIT_RUNTIME = 1, EXIT_CONFIG = 2 };

static void usage(FILE *out)
{
    fprintf(out,
            "usage: sluice -c FILE            run the gateway\n"
            "       sluice --check -c FILE    validate FILE, print a summary, and exit\n"
            "       sluice ctl COMMAND ...    drive a running sluice through its admin API\n"
            "                                 (sluice ctl --help)\n"
            "       sluice --version | --help\n"
            "\n"
            "options:\n"
            "  -c, --config FILE   the YAML configuration (see config/sluice.yaml)\n"
            "      --check         validate only: exit 0 when valid, 2 with every error\n"
            "  -V, --version       print the version\n"
            "  -h, --help          this text\n"
            "\n"
            "signals: SIGTERM/SIGINT drain connections (close 1001 at shutdown.drain_rate)\n"
            "         and exit; at shutdown.timeout what is left is closed at once\n"
            "         (a WebSocket still gets its close frame when it can take it)\n"
            "         and the process exits, in about 1 s more. A second one closes\n"
            "         everything at once the same way. SIGHUP reloads the config.\n"
            "exit codes: 0 ok, 1 runtime failure, 2 bad config or usage.\n");
}

/* Every error line, then the count, whichever check refused the file (frees d). */
static void print_diags(const char *path, sl_diag_t *d)
{
    for (size_t i = 0; i < d->n; i++)
        fprintf(stderr, "%s\n", d->lines[i]);
    fprintf(stderr, "sluice: %s: %zu error%s\n", path, d->n, d->n == 1 ? "" : "s");
    sl_diag_free(d);
}

/* A process with thousands of sockets needs its descriptor limit raised to the hard cap. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static void close_any(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

/* A start that fails before the workers run: release everything, so even
   this path exits with nothing leaked (the sanitizer build checks). */
static int fail_early(sl_gateway_t *gw, int code)
{
    sl_admin_stop(gw);
    if (gw->ctl) {
        sl_ctl_close(gw->ctl);
        gw->ctl = NULL;
    }
    uv_walk(gw->loop, close_any, NULL);
    uv_run(gw->loop, UV_RUN_DEFAULT);
    uv_loop_close(gw->loop);
    for (size_t i = 0; i < gw->n_listen_fds; i++)
        close(gw->listen_fds[i]);
    free(gw->listen_fds);
    free(gw->workers);
    sl_access_log_close();
    sl_runtime_unref(gw->boot_rt);
    sl_runtime_unref(gw->rt);
    uv_mutex_destroy(&gw->rt_lock);
    return code;
}

static int run(const char *path, sl_runtime_t *rt)
{
    sl_gateway_t gw;
    memset(&gw, 0, sizeof gw);
    gw.loop = uv_default_loop();
    gw.config_path = (char *)path;
    gw.rt = rt;
    gw.boot_rt = sl_runtime_ref(rt);
    uv_mutex_init(&gw.rt_lock);
    const sl_config_t *cfg = rt->cfg;
    gw.n_workers = cfg->workers ? cfg->workers : (size_t)uv_available_parallelism();
    if (gw.n_workers == 0)
        gw.n_workers = 1;
    if (gw.n_workers > SL_MAX_WORKERS)
        gw.n_workers = SL_MAX_WORKERS;
    gw.workers = calloc(gw.n_workers, sizeof *gw.workers);
    if (gw.workers == NULL)
        return fail_early(&gw, EXIT_RUNTIME);

    char err[512];
    if (sl_access_log_open(cfg, err, sizeof err) != 0) {
        sl_log_error("%s", err);
        return fail_early(&gw, EXIT_RUNTIME);
    }
    if (sl_control_start(&gw) != 0) {
        sl_log_error("cannot start the control thread");
        return fail_early(&gw, EXIT_RUNTIME);
    }
    int arc = sl_admin_start(&gw, err, sizeof err);
    if (arc != 0) {
        sl_log_error("%s", err);
        return fail_early(&gw, arc == SL_EINVAL ? EXIT_CONFIG : EXIT_RUNTIME);
    }
    /* The listeners open last: once a client can connect, signals are
       handled and the admin API answers, so whatever waits for the port (a
       supervisor, a test) may signal or query at once. */
    if (sl_listeners_open(&gw, cfg, err, sizeof err) != 0) {
        sl_log_error("%s", err);
        return fail_early(&gw, EXIT_RUNTIME);
    }
    for (size_t i = 0; i < gw.n_workers; i++) {
        gw.workers[i].gw = &gw;
        gw.workers[i].id = (int)i;
        int rc = sl_worker_start(&gw.workers[i]);
        if (rc != 0) {
            sl_log_error("worker %zu: cannot start: %s", i, uv_strerror(rc));
            return EXIT_RUNTIME;
        }
    }
    for (size_t i = 0; i < cfg->n_listeners; i++)
        sl_log_info("listening on %s", cfg->listeners[i].address.text);
    sl_log_info("sluice %s started: %zu workers, %zu services, %zu pools", SLUICE_VERSION,
                gw.n_workers, cfg->n_services, cfg->n_pools);

    uv_run(gw.loop, UV_RUN_DEFAULT);

    for (size_t i = 0; i < gw.n_workers; i++)
        uv_thread_join(&gw.workers[i].thread);
    sl_control_discard_inbox(&gw);
    for (size_t i = 0; i < gw.n_workers; i++)
        sl_worker_destroy(&gw.workers[i]);
    sl_tls_cleanup();
    sl_access_log_close();
    free(gw.workers);
    free(gw.listen_fds);
    if (uv_loop_close(gw.loop) != 0)
        sl_log_warn("control loop closed with handles open");
    sl_runtime_unref(gw.rt);
    sl_runtime_unref(gw.boot_rt);
    uv_mutex_destroy(&gw.rt_lock);
    sl_log_info("sluice stopped");
    return gw.exit_code;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"check", no_argument, NULL, 'k'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    if (argc > 1 && strcmp(argv[1], "ctl") == 0)
        return sl_ctl_main(argc - 1, argv + 1);
    const char *path = NULL;
    bool check = false;
    int c;
    while ((c = getopt_long(argc, argv, "c:Vh", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            path = optarg;
            break;
        case 'k':
            check = true;
            break;
        case 'V':
            printf("sluice %s\n", SLUICE_VERSION);
            return EXIT_OK;
        case 'h':
            usage(stdout);
            return EXIT_OK;
        default:
            usage(stderr);
            return EXIT_CONFIG;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "sluice: unexpected argument \"%s\"\n", argv[optind]);
        usage(stderr);
        return EXIT_CONFIG;
    }
    if (path == NULL) {
        fprintf(stderr, "sluice: no config file given (use -c FILE)\n");
        usage(stderr);
        return EXIT_CONFIG;
    }
    /* A SIGHUP before the control loop handles it (loading, resolving: tens of
       ms) would kill the process with the default action; a supervisor that
       reloads right after a start must not. Held pending until
       sl_control_start installs the handler, which then reloads. */
    if (!check)
        sl_control_hold_sighup(true);

    sl_config_t *cfg = NULL;
    sl_diag_t diag = {0};
    if (sl_config_load(path, &cfg, &diag) != 0) {
        print_diags(path, &diag);
        return EXIT_CONFIG;
    }
    /* What the API changed (backends) stands over the YAML. */
    sl_state_read_overrides(cfg);
    if (sl_state_apply_overrides(cfg, &diag) != 0) {
        print_diags(path, &diag);
        sl_config_free(cfg);
        sl_state_free_overrides();
        return EXIT_CONFIG;
    }
    sl_runtime_t *rt = sl_runtime_new(cfg, NULL, &diag);
    if (rt == NULL) {
        print_diags(path, &diag);
        sl_config_free(cfg);
        sl_state_free_overrides();
        return EXIT_CONFIG;
    }
    sl_diag_free(&diag);
    /* Certificates and keys are files: read and matched here (the loader does no I/O);
       so are the admin API's address, token file and state file directory. Both
       --check and a start run these, so a config --check passes is one that starts. */
    int tls_rc = sl_tls_check(rt->cfg, &diag);
    int log_rc = sl_access_log_check(rt->cfg, &diag);
    if (sl_admin_check(rt->cfg, &diag) != 0 || tls_rc != 0 || log_rc != 0) {
        print_diags(path, &diag);
        sl_runtime_unref(rt);
        sl_state_free_overrides();
        return EXIT_CONFIG;
    }

    if (check) {
        /* Sized from the summary's own length, so 400 pools print whole. */
        size_t need = sl_config_summary(rt->cfg, NULL, 0) + 1;
        char *summary = malloc(need);
        if (summary != NULL) {
            sl_config_summary(rt->cfg, summary, need);
            fputs(summary, stdout);
            free(summary);
        } else {
            fprintf(stderr, "sluice: no memory to print the summary (%zu bytes)\n", need);
        }
        printf("%s: ok\n", path);
        sl_runtime_unref(rt);
        sl_state_free_overrides();
        return EXIT_OK;
    }

    sl_log_setup(rt->cfg->log.level, rt->cfg->log.format);
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit();
    int rc = run(path, rt);
    sl_state_free_overrides();
    return rc;
}

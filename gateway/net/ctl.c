/*
 * ctl.c: building and tearing down the control thread's policy state.
 */
#include <stdlib.h>

#include <openssl/rand.h>

#include "ctl.h"

static void adm_timer_closed(uv_handle_t *h)
{
    sl_ctl_t *ctl = h->data;
    if (--ctl->pending_closes == 0)
        sl_ctl_free(ctl);
}

sl_ctl_t *sl_ctl_new(sl_gateway_t *gw, sl_runtime_t *rt)
{
    sl_ctl_t *ctl = calloc(1, sizeof *ctl);
    if (ctl == NULL)
        return NULL;
    ctl->gw = gw;
    ctl->rt = sl_runtime_ref(rt);
    const sl_config_t *cfg = rt->cfg;
    ctl->pools = calloc(cfg->n_pools ? cfg->n_pools : 1, sizeof *ctl->pools);
    ctl->services = calloc(cfg->n_services ? cfg->n_services : 1, sizeof *ctl->services);
    if (ctl->pools == NULL || ctl->services == NULL)
        goto fail;
    for (size_t p = 0; p < cfg->n_pools; p++) {
        sl_ctl_pool_t *cp = &ctl->pools[p];
        size_t n = rt->pools[p].n_backends;
        cp->backends = calloc(n ? n : 1, sizeof *cp->backends);
        if (cp->backends == NULL)
            goto fail;
        cp->n_backends = n;
        for (size_t i = 0; i < cp->n_backends; i++) {
            sl_ctl_backend_t *b = &cp->backends[i];
            b->ctl = ctl;
            b->pool = p;
            b->index = i;
            b->rt = &rt->pools[p].backends[i];
            uv_timer_init(gw->loop, &b->timer);
            b->timer.data = b;
        }
    }
    uint64_t s = uv_hrtime();
    RAND_bytes((unsigned char *)&s, sizeof s);
    ctl->rng.state = s;
    uv_timer_init(gw->loop, &ctl->adm_timer);
    ctl->adm_timer.data = ctl;
    sl_ctl_deploy_setup(ctl);
    if (sl_ctl_admit_setup(ctl) != 0)
        goto fail;
    sl_ctl_health_start(ctl);
    sl_ctl_update_holds(ctl);
    return ctl;
fail:
    /* Timers were initialised: close them like a normal teardown. */
    sl_ctl_close(ctl);
    return NULL;
}

void sl_ctl_close(sl_ctl_t *ctl)
{
    if (ctl->closing)
        return;
    ctl->closing = true;
    sl_ctl_admit_close(ctl);
    ctl->pending_closes = 2;
    uv_close((uv_handle_t *)&ctl->adm_timer, adm_timer_closed);
    ctl->deploy_timer.data = ctl;
    uv_close((uv_handle_t *)&ctl->deploy_timer, adm_timer_closed);
    if (ctl->pools)
        sl_ctl_health_close(ctl);
}

void sl_ctl_free(sl_ctl_t *ctl)
{
    if (ctl->pools) {
        for (size_t p = 0; p < ctl->rt->cfg->n_pools; p++)
            free(ctl->pools[p].backends);
    }
    free(ctl->pools);
    free(ctl->services);
    sl_runtime_unref(ctl->rt);
    free(ctl);
}

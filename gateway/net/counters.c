#include "counters.h"

const sl_counter_info_t sl_counter_info[SL_CTR__COUNT] = {
#define SL_COUNTER_INFO(id, name, help, gauge) {name, help, gauge},
    SL_COUNTERS(SL_COUNTER_INFO)
#undef SL_COUNTER_INFO
};

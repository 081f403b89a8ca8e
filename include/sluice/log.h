/*
 * sluice/log.h: the process log. Levels, plain text for terminals or JSON
 * lines, a timestamp on every line. Safe from any thread: each line is
 * formatted into a local buffer and written with one write(2), so lines from
 * different workers never interleave.
 *
 * This is the shell's log; the core never logs, it returns what happened.
 */
#ifndef SLUICE_LOG_H
#define SLUICE_LOG_H

#include "sluice/config.h"

/* Level and format, at start and at every reload; safe while other threads log. */
void sl_log_setup(sl_log_level_t level, sl_log_format_t format);

/* Now, as UTC ISO 8601 with milliseconds ("2026-11-27T16:38:22.518Z"). */
void sl_log_timestamp(char out[40]);

/* Current level; callers may skip building expensive messages. */
sl_log_level_t sl_log_level(void);

void sl_log(sl_log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define sl_log_error(...) sl_log(SL_LOG_ERROR, __VA_ARGS__)
#define sl_log_warn(...) sl_log(SL_LOG_WARN, __VA_ARGS__)
#define sl_log_info(...) sl_log(SL_LOG_INFO, __VA_ARGS__)
#define sl_log_debug(...) \
    do { if (sl_log_level() >= SL_LOG_DEBUG) sl_log(SL_LOG_DEBUG, __VA_ARGS__); } while (0)

#endif

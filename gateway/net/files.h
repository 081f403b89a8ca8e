/*
 * files.h: whether a file the gateway will write can be written, asked where
 * --check can see it (the config loader does no I/O).
 */
#ifndef SLUICE_NET_FILES_H
#define SLUICE_NET_FILES_H

#include <stdbool.h>
#include <stddef.h>

/*
 * True when `path` names a file the gateway can write: not a directory, and
 * its directory there and writable (a file replaced by rename needs that
 * always; an appended one only to be created, `append` true: an existing
 * writable one will do). Else false, with why in `why`.
 */
bool sl_file_writable(const char *path, bool append, char *why, size_t len);

#endif

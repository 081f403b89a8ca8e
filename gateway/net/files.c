/*
 * files.c: see files.h. Used for the admin API's state file (written to a
 * temporary file, then renamed) and the access log (appended to).
 */
#include "files.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

bool sl_file_writable(const char *path, bool append, char *why, size_t len)
{
    struct stat st;
    if (stat(path, &st) == 0) {
        if (S_ISDIR(st.st_mode)) {
            snprintf(why, len, "%.500s is a directory (expected a file name)", path);
            return false;
        }
        if (append) {
            if (access(path, W_OK) == 0)
                return true;
            snprintf(why, len, "%.500s is not writable: %s", path, strerror(errno));
            return false;
        }
    }
    const char *slash = strrchr(path, '/');
    char dir[600];
    if (slash == NULL)
        snprintf(dir, sizeof dir, ".");
    else
        snprintf(dir, sizeof dir, "%.*s", slash == path ? 1 : (int)(slash - path), path);
    if (stat(dir, &st) != 0) {
        snprintf(why, len, "directory %.500s: %s (expected an existing, writable directory)", dir,
                 strerror(errno));
        return false;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(why, len, "%.500s is not a directory (expected an existing, writable directory)",
                 dir);
        return false;
    }
    if (access(dir, W_OK | X_OK) != 0) {
        snprintf(why, len, "directory %.500s is not writable: %s", dir, strerror(errno));
        return false;
    }
    return true;
}

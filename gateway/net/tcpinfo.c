/*
 * tcpinfo.c: see tcpinfo.h. linux/tcp.h, not glibc's netinet/tcp.h (whose
 * struct tcp_info stops before tcpi_bytes_acked); the two cannot share a
 * file.
 */
#include "tcpinfo.h"

#include <linux/sockios.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <stddef.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

bool sl_tcp_send_progress(int fd, uint64_t *acked, uint64_t *waiting)
{
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    int outq = 0;
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0 ||
        len < offsetof(struct tcp_info, tcpi_bytes_acked) + sizeof ti.tcpi_bytes_acked ||
        ioctl(fd, SIOCOUTQ, &outq) != 0 || outq < 0)
        return false;
    *acked = ti.tcpi_bytes_acked;
    *waiting = (uint64_t)outq;
    return true;
}

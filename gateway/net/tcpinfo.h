/*
 * tcpinfo.h: what the kernel knows of a TCP connection that the socket API
 * does not say (linux/tcp.h's struct tcp_info, kept apart from glibc's).
 */
#ifndef SLUICE_NET_TCPINFO_H
#define SLUICE_NET_TCPINFO_H

#include <stdbool.h>
#include <stdint.h>

/* On socket fd: the bytes the peer has acknowledged (RFC 4898's
   ThruOctetsAcked: it grows while the peer reads), and those still waiting
   in the socket for it (sent and not acknowledged, or not sent yet). False
   if the kernel does not say. */
bool sl_tcp_send_progress(int fd, uint64_t *acked, uint64_t *waiting);

#endif

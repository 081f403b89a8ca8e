/*
 * sluice/wsframe.h: RFC 6455 frames, parsed incrementally and written.
 *
 * The relay is zero-copy: it forwards the bytes it read as they are, and uses
 * this parser only to know where frames and messages begin and end and to
 * enforce the protocol's rules. The parser therefore never copies data
 * payload; it looks at it only to validate UTF-8 in text messages (unmasking
 * on the fly into a small stack buffer, never in place). Control frame payload
 * (at most 125 bytes) is copied, unmasked, into the parser, so the relay can
 * read a close code or answer a ping.
 *
 * The parser is in the picohttpparser shape: a zero-filled struct plus the
 * settings fields is a valid start state; sl_ws_parse() returns bytes consumed
 * (up to and including the event it reports), and errors are sticky.
 * It is safe to feed one byte at a time.
 */
#ifndef SLUICE_WSFRAME_H
#define SLUICE_WSFRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "sluice/common.h"
#include "sluice/utf8.h"

enum sl_ws_opcode {
    SL_WS_OP_CONT = 0x0,
    SL_WS_OP_TEXT = 0x1,
    SL_WS_OP_BINARY = 0x2,
    SL_WS_OP_CLOSE = 0x8,
    SL_WS_OP_PING = 0x9,
    SL_WS_OP_PONG = 0xA,
};

/* Close codes the gateway itself sends. */
enum sl_ws_close_code {
    SL_WS_CLOSE_NORMAL = 1000,
    SL_WS_CLOSE_GOING_AWAY = 1001,
    SL_WS_CLOSE_PROTOCOL = 1002,
    SL_WS_CLOSE_BAD_DATA = 1007,       /* invalid UTF-8 in a text message */
    SL_WS_CLOSE_POLICY = 1008,
    SL_WS_CLOSE_TOO_BIG = 1009,
    SL_WS_CLOSE_INTERNAL = 1011,
    SL_WS_CLOSE_RESTART = 1012,        /* Service Restart: the drain default */
    SL_WS_CLOSE_TRY_AGAIN = 1013,      /* Try Again Later: admission reject */
    SL_WS_CLOSE_BAD_GATEWAY = 1014,
};

/*
 * What the extensions negotiated in the handshake make of the RSV bits and of
 * text (sl_ws_response_info_t.extensions gives the value for a connection).
 */
typedef enum sl_ws_extensions {
    SL_WS_EXT_NONE = 0,      /* none: every RSV bit is a protocol error (RFC 6455 5.2) */
    SL_WS_EXT_DEFLATE,       /* permessage-deflate alone (RFC 7692): RSV1 on the first frame of
                                a data message marks it compressed; RSV1 on a continuation or
                                a control frame is a protocol error (7692 6) */
    SL_WS_EXT_UNKNOWN,       /* an extension we do not know (alone or beside permessage-deflate):
                                any RSV bit passes and no text is validated, since we cannot
                                know what it does to the bits or to the payload */
} sl_ws_extensions_t;

/* Which peer's frames a parser reads: client frames must be masked, server frames must not. */
typedef enum sl_ws_role {
    SL_WS_FROM_CLIENT = 0,
    SL_WS_FROM_SERVER = 1,
} sl_ws_role_t;

typedef struct sl_ws_frame_header {
    bool fin;
    uint8_t rsv;             /* the three RSV bits, as 0x4 (RSV1), 0x2, 0x1 */
    uint8_t opcode;
    bool masked;
    uint8_t mask[4];
    uint64_t payload_len;
    uint8_t header_len;      /* 2..14 bytes */
} sl_ws_frame_header_t;

typedef enum sl_ws_event_type {
    SL_WS_EV_NONE = 0,       /* all input consumed, nothing to report */
    SL_WS_EV_HEADER,         /* a frame header is complete: ev.header, ev.frame_start */
    SL_WS_EV_FRAME_END,      /* the current frame is complete (a zero-length frame
                                reports HEADER then FRAME_END) */
} sl_ws_event_type_t;

typedef struct sl_ws_event {
    sl_ws_event_type_t type;
    sl_ws_frame_header_t header;   /* the current frame's header (HEADER and FRAME_END) */
    uint64_t frame_start;          /* stream offset of the frame's first header byte */
    bool message_end;              /* FRAME_END of a data frame with FIN set */
    /* FRAME_END of a control frame: its payload, unmasked, inside the parser;
       valid until the next call. */
    const uint8_t *control;
    size_t control_len;
} sl_ws_event_t;

typedef struct sl_ws_parser {
    /* Settings: set before the first call. */
    sl_ws_role_t role;
    sl_ws_extensions_t extensions; /* what the negotiated extensions allow (SL_WS_EXT_*) */
    uint8_t allowed_rsv;           /* RSV bits allowed on any frame besides what `extensions`
                                      allows; in SL_WS_EXT_DEFLATE, RSV1 follows RFC 7692
                                      whatever this says. The relay's setting from before
                                      `extensions`; 0 once it sets that. */
    bool validate_utf8;            /* check text messages that are plain text: not those an
                                      extension transforms (see sl_ws_parse) */
    uint64_t max_frame;            /* payload bytes per frame; 0: no limit */
    uint64_t max_message;          /* payload bytes per message; 0: no limit */

    /* Read-only state, useful to the relay. */
    uint64_t pos;                  /* stream offset: total bytes consumed */
    bool in_frame;                 /* inside a frame (header begun, payload not done) */
    bool in_message;               /* a fragmented data message is open */

    /* Private. */
    uint8_t hbuf[14];
    uint8_t hgot;
    sl_ws_frame_header_t cur;
    uint64_t remaining;            /* payload bytes of the current frame still to come */
    uint64_t message_len;
    uint8_t message_opcode;
    bool message_is_text;
    bool message_validate;         /* text, validate_utf8 set, not SL_WS_EXT_UNKNOWN, and no RSV
                                      bit on its first frame */
    uint64_t frame_start;
    uint32_t utf8_state;
    uint8_t ctl[125];
    uint8_t ctl_len;
    int error;                     /* sticky: 0 or the close code to send */
    const char *error_reason;
} sl_ws_parser_t;

/*
 * Consume bytes from `buf` until one event happens or the input ends.
 * Returns the number of bytes consumed (0..len) and fills *ev; ev->type is
 * SL_WS_EV_NONE when everything was consumed without an event.
 * On a protocol violation returns SL_EINVAL and sets ev->type NONE; then
 * sl_ws_parser_error() gives the close code (1002, 1007 or 1009) and reason.
 * Errors are sticky: every later call returns SL_EINVAL. A failing call
 * consumes nothing (pos does not move).
 * A text message is validated only when validate_utf8 is set, extensions is
 * not SL_WS_EXT_UNKNOWN, and its first frame has no RSV bit (with
 * permessage-deflate, RSV1 there means the payload is compressed, not text;
 * an uncompressed text message is still checked, RFC 6455 8.1). A close
 * frame's code and reason are always checked (1002 / 1007): no extension
 * applies to control frames.
 */
ssize_t sl_ws_parse(sl_ws_parser_t *p, const uint8_t *buf, size_t len, sl_ws_event_t *ev);

/* The close code for the sticky error (0 when none), and a short reason. */
int sl_ws_parser_error(const sl_ws_parser_t *p, const char **reason);

/* True when the parser sits between messages: no frame and no fragmented message open. */
static inline bool sl_ws_at_message_boundary(const sl_ws_parser_t *p)
{
    return !p->in_frame && !p->in_message;
}

/* True when the parser sits between frames (a control frame may be injected). */
static inline bool sl_ws_at_frame_boundary(const sl_ws_parser_t *p)
{
    return !p->in_frame;
}

/*
 * Bytes of the open frame consumed so far that a relay must not pass on
 * yet: all of them while its header is incomplete (the rest of the header
 * may still break a rule: a length over the limit, a reserved opcode) or
 * while it is a control frame (a close frame's code and reason are checked
 * at its end); 0 between frames and once a data frame's header is whole.
 * The parser keeps those bytes (the header below, a control frame's
 * payload in the FRAME_END event), so the relay can hold them back and
 * write the frame itself when it may pass: then a frame refused later
 * never reaches the peer in part, however the input was split.
 */
static inline uint64_t sl_ws_unpassable(const sl_ws_parser_t *p)
{
    if (!p->in_frame || (p->cur.header_len != 0 && !(p->cur.opcode & 0x8)))
        return 0;
    return p->pos - p->frame_start;
}

/* The raw header of the current frame (ev.header.header_len bytes, mask key
   included), from its HEADER event until the next frame begins. */
static inline const uint8_t *sl_ws_header_bytes(const sl_ws_parser_t *p)
{
    return p->hbuf;
}

/* Close codes a peer may send on the wire (RFC 6455 7.4 and the IANA registry). */
bool sl_ws_close_code_valid(uint16_t code);

/*
 * Writing. Each function writes a complete header or frame into `out` and
 * returns its length. A NULL `mask` writes an unmasked (server) frame; a
 * non-NULL mask writes a masked (client) frame and masks the payload.
 */
#define SL_WS_MAX_HEADER 14
#define SL_WS_MAX_CONTROL_FRAME (SL_WS_MAX_HEADER + 125)
/* A close reason's bytes at most (125 less the status code); keep it in a char[+1]. */
#define SL_WS_MAX_CLOSE_REASON 123

size_t sl_ws_write_header(uint8_t out[SL_WS_MAX_HEADER], bool fin, uint8_t opcode,
                          const uint8_t *mask, uint64_t payload_len);

/* A close frame with `code` and `reason` (truncated to fit 123 bytes at a UTF-8 boundary).
   `reason` may be NULL; code 0 writes a close frame with no payload (no status). The
   reason is written as given: pass UTF-8. */
size_t sl_ws_write_close(uint8_t out[SL_WS_MAX_CONTROL_FRAME], uint16_t code,
                         const char *reason, const uint8_t *mask);

/* A ping or pong (or any control opcode) with up to 125 payload bytes. Returns 0,
   writing nothing, when len > 125 or the opcode is not a control opcode. */
size_t sl_ws_write_control(uint8_t out[SL_WS_MAX_CONTROL_FRAME], uint8_t opcode,
                           const uint8_t *payload, size_t len, const uint8_t *mask);

/* XOR `len` bytes with the mask, starting at mask phase `offset` (mod 4). */
void sl_ws_mask(uint8_t *data, size_t len, const uint8_t mask[4], uint64_t offset);

/*
 * Handshake helpers (SHA-1 and base64 from libcrypto).
 * sl_ws_accept_key: the Sec-WebSocket-Accept value for a client key;
 * writes 28 characters and a NUL into out.
 */
void sl_ws_accept_key(const char *key, size_t key_len, char out[29]);

/* True when `key` is base64 of exactly 16 bytes, as RFC 6455 4.1 requires. */
bool sl_ws_key_valid(const char *key, size_t key_len);

#endif

/* The RTP fixed header (RFC 3550 §5.1), read in place by parse_rtp (_speedups.c) and
 * RtpReceiver (_rtp_core.c), so both accept and refuse the same packets as the
 * pure-Python twin's parse_rtp, and written by build_rtp and RtpSender. */
#ifndef TRUNKLINE_RTP_HEADER_H
#define TRUNKLINE_RTP_HEADER_H

#include <Python.h>

#define RTP_HEADER_BYTES 12

typedef struct {
    unsigned payload_type, marker;
    unsigned long sequence, timestamp, ssrc;
    Py_ssize_t offset, end; /* the payload: p[offset:end] (padding removed) */
} rtp_header;

/* Fill *h from the len bytes at p: NULL, or why it is not an RTP packet. */
static inline const char *
rtp_read_header(const unsigned char *p, Py_ssize_t len, rtp_header *h)
{
    if (len < RTP_HEADER_BYTES) {
        return "shorter than an RTP header";
    }
    unsigned first = p[0], second = p[1];
    if (first >> 6 != 2) {
        return "not RTP version 2";
    }
    Py_ssize_t offset = RTP_HEADER_BYTES + 4 * (first & 0x0F);
    Py_ssize_t end = len;
    if (first & 0x10) { /* header extension */
        if (end < offset + 4) {
            return "truncated header extension";
        }
        offset += 4 + 4 * (Py_ssize_t)(((unsigned)p[offset + 2] << 8) | p[offset + 3]);
    }
    if (first & 0x20) { /* padding */
        unsigned padding = p[end - 1];
        if (padding == 0 || end - (Py_ssize_t)padding < offset) {
            return "bad padding length";
        }
        end -= padding;
    }
    if (offset > end) {
        return "header longer than the packet";
    }
    h->payload_type = second & 0x7F;
    h->marker = (second & 0x80) != 0;
    h->sequence = ((unsigned long)p[2] << 8) | p[3];
    h->timestamp = ((unsigned long)p[4] << 24) | ((unsigned long)p[5] << 16) |
                   ((unsigned long)p[6] << 8) | p[7];
    h->ssrc = ((unsigned long)p[8] << 24) | ((unsigned long)p[9] << 16) |
              ((unsigned long)p[10] << 8) | p[11];
    h->offset = offset;
    h->end = end;
    return NULL;
}

/* Write the fixed header at p: version 2, no padding, extension or CSRCs. */
static inline void
rtp_write_header(unsigned char *p, unsigned payload_type, int marker, unsigned long sequence,
                 unsigned long timestamp, unsigned long ssrc)
{
    p[0] = 0x80;
    p[1] = (unsigned char)((marker ? 0x80 : 0) | (payload_type & 0x7F));
    p[2] = (unsigned char)(sequence >> 8);
    p[3] = (unsigned char)sequence;
    p[4] = (unsigned char)(timestamp >> 24);
    p[5] = (unsigned char)(timestamp >> 16);
    p[6] = (unsigned char)(timestamp >> 8);
    p[7] = (unsigned char)timestamp;
    p[8] = (unsigned char)(ssrc >> 24);
    p[9] = (unsigned char)(ssrc >> 16);
    p[10] = (unsigned char)(ssrc >> 8);
    p[11] = (unsigned char)ssrc;
}

/* A view of data[offset:end] (a new reference), the datagram kept alive by it. */
static inline PyObject *
rtp_payload_view(PyObject *data, Py_ssize_t offset, Py_ssize_t end)
{
    PyObject *whole = PyMemoryView_FromObject(data);
    if (whole == NULL) {
        return NULL;
    }
    PyObject *payload = PySequence_GetSlice(whole, offset, end);
    Py_DECREF(whole);
    return payload;
}

#endif

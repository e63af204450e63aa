/* trunkline._speedups: the per-frame media work in C (optional; see trunkline/speedups.py).
 *
 * Every function here has a pure-Python twin in trunkline/_speedups_py.py with the same
 * arguments, results and errors; tests/test_speedups.py holds them to it. Nothing here
 * keeps state between calls. The two types keep a call's state: JitterCore
 * (_jitter_core.c), the jitter buffer's C core, whose twin is the pure-Python
 * PyJitterBuffer (gateway/rtp/jitter.py), and RtpReceiver (_rtp_core.c), an RTP
 * session's inbound checks, whose twin is PyRtpReceiver (gateway/rtp/reception.py).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#ifdef __linux__
#define TRUNKLINE_MMSG 1
#include <errno.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#endif
#include "_rtp_header.h"

static const char B64_ALPHABET[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static int8_t b64_value[256]; /* -1: not in the alphabet */
/* The two characters of every 12-bit value: a group of three bytes is two lookups. */
static char b64_pairs[4096][2];

static void
b64_init(void)
{
    memset(b64_value, -1, sizeof(b64_value));
    for (int i = 0; i < 64; i++) {
        b64_value[(unsigned char)B64_ALPHABET[i]] = (int8_t)i;
    }
    for (int v = 0; v < 4096; v++) {
        b64_pairs[v][0] = B64_ALPHABET[v >> 6];
        b64_pairs[v][1] = B64_ALPHABET[v & 63];
    }
}

static Py_ssize_t
b64_encoded_size(Py_ssize_t n)
{
    return (n + 2) / 3 * 4;
}

static void
b64_encode(const unsigned char *restrict src, Py_ssize_t n, char *restrict out)
{
    Py_ssize_t i = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = ((uint32_t)src[i] << 16) | ((uint32_t)src[i + 1] << 8) | src[i + 2];
        memcpy(out, b64_pairs[v >> 12], 2);
        memcpy(out + 2, b64_pairs[v & 0xFFF], 2);
        out += 4;
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)src[i] << 16;
        out[0] = B64_ALPHABET[(v >> 18) & 63];
        out[1] = B64_ALPHABET[(v >> 12) & 63];
        out[2] = '=';
        out[3] = '=';
    }
    else if (n - i == 2) {
        uint32_t v = ((uint32_t)src[i] << 16) | ((uint32_t)src[i + 1] << 8);
        out[0] = B64_ALPHABET[(v >> 18) & 63];
        out[1] = B64_ALPHABET[(v >> 12) & 63];
        out[2] = B64_ALPHABET[(v >> 6) & 63];
        out[3] = '=';
    }
}

/* -- RTP ------------------------------------------------------------------------------ */

/* parse_rtp(data) -> (payload_type, marker, sequence, timestamp, ssrc, payload view) */
static PyObject *
parse_rtp(PyObject *module, PyObject *data)
{
    Py_buffer view;
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    rtp_header h;
    const char *error = rtp_read_header(view.buf, view.len, &h);
    PyBuffer_Release(&view);
    if (error != NULL) {
        PyErr_SetString(PyExc_ValueError, error);
        return NULL;
    }
    PyObject *payload = rtp_payload_view(data, h.offset, h.end);
    if (payload == NULL) {
        return NULL;
    }
    /* The tuple built item by item: Py_BuildValue parses its format string per packet. */
    PyObject *fields[6] = {
        PyLong_FromUnsignedLong(h.payload_type),
        PyBool_FromLong(h.marker),
        PyLong_FromUnsignedLong(h.sequence),
        PyLong_FromUnsignedLong(h.timestamp),
        PyLong_FromUnsignedLong(h.ssrc),
        payload,
    };
    PyObject *result = PyTuple_New(6);
    for (int k = 0; k < 6; k++) {
        if (fields[k] == NULL || result == NULL) {
            for (int j = 0; j < 6; j++) {
                Py_XDECREF(fields[j]);
            }
            Py_XDECREF(result);
            return NULL;
        }
    }
    for (int k = 0; k < 6; k++) {
        PyTuple_SET_ITEM(result, k, fields[k]); /* steals the reference */
    }
    return result;
}

/* build_rtp(payload, payload_type, sequence, timestamp, ssrc, marker) -> a new packet.
 * A new bytes object each time: a transport may keep the packet queued, so a packet
 * written into a reused buffer would have to be copied before it is handed over. */
static PyObject *
build_rtp(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "build_rtp takes 6 arguments");
        return NULL;
    }
    unsigned long long fields[4];
    for (int i = 0; i < 4; i++) {
        if (!PyLong_Check(args[1 + i])) {
            PyErr_SetString(PyExc_TypeError, "RTP header fields must be integers");
            return NULL;
        }
        fields[i] = PyLong_AsUnsignedLongLongMask(args[1 + i]);
        if (fields[i] == (unsigned long long)-1 && PyErr_Occurred()) {
            return NULL;
        }
    }
    int marker = PyObject_IsTrue(args[5]);
    if (marker < 0) {
        return NULL;
    }
    Py_buffer payload;
    if (PyObject_GetBuffer(args[0], &payload, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    PyObject *packet = PyBytes_FromStringAndSize(NULL, RTP_HEADER_BYTES + payload.len);
    if (packet == NULL) {
        PyBuffer_Release(&payload);
        return NULL;
    }
    unsigned char *p = (unsigned char *)PyBytes_AS_STRING(packet);
    unsigned long long sequence = fields[1] & 0xFFFF;
    unsigned long long timestamp = fields[2] & 0xFFFFFFFFULL;
    unsigned long long ssrc = fields[3] & 0xFFFFFFFFULL;
    memcpy(p + RTP_HEADER_BYTES, payload.buf, (size_t)payload.len);
    rtp_write_header(p, (unsigned)(fields[0] & 0x7F), marker, (unsigned long)sequence,
                     (unsigned long)timestamp, (unsigned long)ssrc);
    PyBuffer_Release(&payload);
    return packet;
}

/* -- agent media frames ----------------------------------------------------------------- */

/* encode_media_frame(prefix, payload, suffix) -> prefix + base64(payload) + suffix */
static PyObject *
encode_media_frame(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "encode_media_frame takes 3 arguments");
        return NULL;
    }
    Py_buffer parts[3];
    int held = 0;
    PyObject *result = NULL;
    for (; held < 3; held++) {
        if (PyObject_GetBuffer(args[held], &parts[held], PyBUF_SIMPLE) < 0) {
            goto done;
        }
    }
    Py_ssize_t encoded = b64_encoded_size(parts[1].len);
    result = PyBytes_FromStringAndSize(NULL, parts[0].len + encoded + parts[2].len);
    if (result != NULL) {
        char *out = PyBytes_AS_STRING(result);
        memcpy(out, parts[0].buf, (size_t)parts[0].len);
        b64_encode(parts[1].buf, parts[1].len, out + parts[0].len);
        memcpy(out + parts[0].len + encoded, parts[2].buf, (size_t)parts[2].len);
    }
done:
    while (held-- > 0) {
        PyBuffer_Release(&parts[held]);
    }
    return result;
}

/* A restricted JSON reader over ASCII text: it recognises the media frame's shape and
 * declines (returns 0) anything it does not fully understand, so the caller falls back
 * to the full parser. It only ever accepts text json.loads accepts the same way. */
typedef struct {
    const unsigned char *p;
    Py_ssize_t i, n;
} Reader;

static void
skip_space(Reader *r)
{
    while (r->i < r->n) {
        unsigned char c = r->p[r->i];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
            break;
        }
        r->i++;
    }
}

/* A string without escapes or control characters; start and len: its contents. */
static int
plain_string(Reader *r, Py_ssize_t *start, Py_ssize_t *len)
{
    if (r->i >= r->n || r->p[r->i] != '"') {
        return 0;
    }
    Py_ssize_t s = ++r->i;
    while (r->i < r->n) {
        unsigned char c = r->p[r->i];
        if (c == '"') {
            *start = s;
            *len = r->i - s;
            r->i++;
            return 1;
        }
        if (c == '\\' || c < 0x20) {
            return 0;
        }
        r->i++;
    }
    return 0;
}

/* The payload's string, found by its closing quote alone: its characters are checked
 * against the base64 alphabet as it is decoded, which refuses escapes and control
 * characters as plain_string would (a quote after a backslash ends it early, and the
 * backslash is refused). */
static int
payload_string(Reader *r, Py_ssize_t *start, Py_ssize_t *len)
{
    if (r->i >= r->n || r->p[r->i] != '"') {
        return 0;
    }
    Py_ssize_t s = r->i + 1;
    const unsigned char *end = memchr(r->p + s, '"', (size_t)(r->n - s));
    if (end == NULL) {
        return 0;
    }
    *start = s;
    *len = (end - r->p) - s;
    r->i = (end - r->p) + 1;
    return 1;
}

static int
hex_digit(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Any valid string, escapes included (its value is not needed, only skipped). */
static int
skip_string(Reader *r)
{
    if (r->i >= r->n || r->p[r->i] != '"') {
        return 0;
    }
    r->i++;
    while (r->i < r->n) {
        unsigned char c = r->p[r->i++];
        if (c == '"') {
            return 1;
        }
        if (c < 0x20) {
            return 0;
        }
        if (c == '\\') {
            if (r->i >= r->n) {
                return 0;
            }
            c = r->p[r->i++];
            if (c == 'u') {
                if (r->n - r->i < 4 || !hex_digit(r->p[r->i]) || !hex_digit(r->p[r->i + 1]) ||
                    !hex_digit(r->p[r->i + 2]) || !hex_digit(r->p[r->i + 3])) {
                    return 0;
                }
                r->i += 4;
            }
            else if (!strchr("\"\\/bfnrt", c) || c == 0) {
                return 0;
            }
        }
    }
    return 0;
}

static int
digits(Reader *r)
{
    Py_ssize_t s = r->i;
    while (r->i < r->n && r->p[r->i] >= '0' && r->p[r->i] <= '9') {
        r->i++;
    }
    return r->i > s;
}

static int
json_number(Reader *r)
{
    if (r->i < r->n && r->p[r->i] == '-') {
        r->i++;
    }
    if (r->i < r->n && r->p[r->i] == '0') {
        r->i++;
    }
    else if (!(r->i < r->n && r->p[r->i] >= '1' && r->p[r->i] <= '9' && digits(r))) {
        return 0;
    }
    if (r->i < r->n && r->p[r->i] == '.') {
        r->i++;
        if (!digits(r)) {
            return 0;
        }
    }
    if (r->i < r->n && (r->p[r->i] == 'e' || r->p[r->i] == 'E')) {
        r->i++;
        if (r->i < r->n && (r->p[r->i] == '+' || r->p[r->i] == '-')) {
            r->i++;
        }
        if (!digits(r)) {
            return 0;
        }
    }
    return 1;
}

static int
literal(Reader *r, const char *word)
{
    size_t len = strlen(word);
    if (r->n - r->i < (Py_ssize_t)len || memcmp(r->p + r->i, word, len) != 0) {
        return 0;
    }
    r->i += (Py_ssize_t)len;
    return 1;
}

/* A string, number, true, false or null (no objects or arrays), skipped. */
static int
simple_value(Reader *r)
{
    if (r->i >= r->n) {
        return 0;
    }
    unsigned char c = r->p[r->i];
    if (c == '"') {
        return skip_string(r);
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
        return json_number(r);
    }
    return literal(r, "true") || literal(r, "false") || literal(r, "null");
}

static int
key_is(Reader *r, Py_ssize_t start, Py_ssize_t len, const char *name)
{
    return (size_t)len == strlen(name) && memcmp(r->p + start, name, (size_t)len) == 0;
}

/* After a member: ',' (another follows: 1) or '}' (the object ends: 2); 0 otherwise. */
static int
member_end(Reader *r)
{
    skip_space(r);
    if (r->i >= r->n) {
        return 0;
    }
    unsigned char c = r->p[r->i++];
    if (c == ',') {
        skip_space(r);
        return 1;
    }
    return c == '}' ? 2 : 0;
}

static int
key_colon(Reader *r, Py_ssize_t *start, Py_ssize_t *len)
{
    if (!plain_string(r, start, len)) {
        return 0;
    }
    skip_space(r);
    if (r->i >= r->n || r->p[r->i] != ':') {
        return 0;
    }
    r->i++;
    skip_space(r);
    return 1;
}

/* The "media" object: finds "payload" (once, a plain string) among simple members. */
static int
media_object(Reader *r, Py_ssize_t *pstart, Py_ssize_t *plen)
{
    int found = 0;
    if (r->i >= r->n || r->p[r->i] != '{') {
        return 0;
    }
    r->i++;
    skip_space(r);
    if (r->i < r->n && r->p[r->i] == '}') {
        return 0; /* no payload */
    }
    for (;;) {
        Py_ssize_t ks, kl;
        if (!key_colon(r, &ks, &kl)) {
            return 0;
        }
        if (key_is(r, ks, kl, "payload")) {
            if (found || !payload_string(r, pstart, plen)) {
                return 0;
            }
            found = 1;
        }
        else if (!simple_value(r)) {
            return 0;
        }
        int next = member_end(r);
        if (next == 0) {
            return 0;
        }
        if (next == 2) {
            return found;
        }
    }
}

/* The payload's bytes when the frame is {"event":"media", "media":{"payload":"<base64>"}}
 * with simple other members; 0 when it is anything else. */
static int
media_frame_payload(Reader *r, Py_ssize_t *pstart, Py_ssize_t *plen)
{
    int event = 0, media = 0;
    skip_space(r);
    if (r->i >= r->n || r->p[r->i] != '{') {
        return 0;
    }
    r->i++;
    skip_space(r);
    for (;;) {
        Py_ssize_t ks, kl;
        if (!key_colon(r, &ks, &kl)) {
            return 0;
        }
        if (key_is(r, ks, kl, "event")) {
            Py_ssize_t vs, vl;
            if (event || !plain_string(r, &vs, &vl) || !key_is(r, vs, vl, "media")) {
                return 0;
            }
            event = 1;
        }
        else if (key_is(r, ks, kl, "media")) {
            if (media || !media_object(r, pstart, plen)) {
                return 0;
            }
            media = 1;
        }
        else if (!simple_value(r)) {
            return 0;
        }
        int next = member_end(r);
        if (next == 0) {
            return 0;
        }
        if (next == 2) {
            break;
        }
    }
    skip_space(r);
    return r->i == r->n && event && media;
}

/* decode_media_payload(text, max_payload_chars) -> bytes | None */
static PyObject *
decode_media_payload(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyUnicode_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "decode_media_payload(text: str, max_payload_chars: int)");
        return NULL;
    }
    Py_ssize_t limit = PyLong_AsSsize_t(args[1]);
    if (limit == -1 && PyErr_Occurred()) {
        return NULL;
    }
    PyObject *text = args[0];
    if (!PyUnicode_IS_ASCII(text)) {
        Py_RETURN_NONE;
    }
    Reader r = {PyUnicode_1BYTE_DATA(text), 0, PyUnicode_GET_LENGTH(text)};
    Py_ssize_t start = 0, len = 0;
    if (!media_frame_payload(&r, &start, &len) || len > limit || len % 4 != 0) {
        Py_RETURN_NONE;
    }
    const unsigned char *s = r.p + start;
    Py_ssize_t pad = 0;
    if (len > 0 && s[len - 1] == '=') {
        pad = (len > 1 && s[len - 2] == '=') ? 2 : 1;
    }
    Py_ssize_t size = len / 4 * 3 - pad;
    PyObject *result = PyBytes_FromStringAndSize(NULL, size);
    if (result == NULL) {
        return NULL;
    }
    unsigned char *out = (unsigned char *)PyBytes_AS_STRING(result);
    Py_ssize_t whole = pad ? len - 4 : len; /* groups of four characters, none of them '=' */
    Py_ssize_t o = 0;
    for (Py_ssize_t i = 0; i < whole; i += 4) {
        int32_t a = b64_value[s[i]], b = b64_value[s[i + 1]];
        int32_t c = b64_value[s[i + 2]], d = b64_value[s[i + 3]];
        if ((a | b | c | d) < 0) { /* a character outside the alphabet (escapes included) */
            Py_DECREF(result);
            Py_RETURN_NONE;
        }
        uint32_t v = ((uint32_t)a << 18) | ((uint32_t)b << 12) | ((uint32_t)c << 6) | (uint32_t)d;
        out[o++] = (unsigned char)(v >> 16);
        out[o++] = (unsigned char)(v >> 8);
        out[o++] = (unsigned char)v;
    }
    if (pad) { /* the last group: two or three characters, then the padding */
        const unsigned char *g = s + whole;
        int32_t a = b64_value[g[0]], b = b64_value[g[1]];
        int32_t c = pad == 1 ? b64_value[g[2]] : 0;
        if ((a | b | c) < 0) {
            Py_DECREF(result);
            Py_RETURN_NONE;
        }
        uint32_t v = ((uint32_t)a << 18) | ((uint32_t)b << 12) | ((uint32_t)c << 6);
        out[o++] = (unsigned char)(v >> 16);
        if (pad == 1) {
            out[o++] = (unsigned char)(v >> 8);
        }
    }
    return result;
}

/* -- WebSocket ---------------------------------------------------------------------------- */

/* ws_client_frame(opcode, payload, mask_key) -> one final, masked client frame (RFC 6455 5.2) */
static PyObject *
ws_client_frame(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "ws_client_frame takes 3 arguments");
        return NULL;
    }
    long opcode = PyLong_AsLong(args[0]);
    if (opcode == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (opcode < 0 || opcode > 15) {
        PyErr_SetString(PyExc_ValueError, "opcode must be 0 to 15");
        return NULL;
    }
    Py_buffer payload, key;
    if (PyObject_GetBuffer(args[1], &payload, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    if (PyObject_GetBuffer(args[2], &key, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&payload);
        return NULL;
    }
    PyObject *result = NULL;
    if (key.len != 4) {
        PyErr_SetString(PyExc_ValueError, "the mask key must be 4 bytes");
        goto done;
    }
    Py_ssize_t n = payload.len;
    Py_ssize_t head = n < 126 ? 2 : (n <= 0xFFFF ? 4 : 10);
    result = PyBytes_FromStringAndSize(NULL, head + 4 + n);
    if (result == NULL) {
        goto done;
    }
    unsigned char *out = (unsigned char *)PyBytes_AS_STRING(result);
    out[0] = (unsigned char)(0x80 | opcode);
    if (head == 2) {
        out[1] = (unsigned char)(0x80 | n);
    }
    else if (head == 4) {
        out[1] = 0x80 | 126;
        out[2] = (unsigned char)(n >> 8);
        out[3] = (unsigned char)n;
    }
    else {
        out[1] = 0x80 | 127;
        uint64_t big = (uint64_t)n;
        for (int i = 0; i < 8; i++) {
            out[2 + i] = (unsigned char)(big >> (56 - 8 * i));
        }
    }
    const unsigned char *mask = key.buf;
    memcpy(out + head, mask, 4);
    unsigned char *dst = out + head + 4;
    const unsigned char *src = payload.buf;
    uint64_t wide;
    unsigned char pattern[8];
    memcpy(pattern, mask, 4);
    memcpy(pattern + 4, mask, 4);
    memcpy(&wide, pattern, 8);
    Py_ssize_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t word;
        memcpy(&word, src + i, 8);
        word ^= wide;
        memcpy(dst + i, &word, 8);
    }
    for (; i < n; i++) {
        dst[i] = src[i] ^ mask[i & 3];
    }
done:
    PyBuffer_Release(&key);
    PyBuffer_Release(&payload);
    return result;
}

/* ws_server_frames(data, start, max_size) -> ([str | bytes, ...], stop)
 *
 * The complete, final, unmasked text and binary frames (RFC 6455 5.2) of a server
 * from data[start:] on, each of at most max_size payload bytes: a text frame's payload
 * as str, a binary frame's as bytes. It stops before the first frame that is anything
 * else -- incomplete, a control frame or a fragment, masked, with reserved bits or a
 * reserved opcode, larger than max_size, text that is not UTF-8 -- and stop is where
 * that frame begins (len(data) when every frame was taken). The caller reads the frame
 * there itself. */
static PyObject *
ws_server_frames(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "ws_server_frames takes 3 arguments");
        return NULL;
    }
    Py_ssize_t start = PyLong_AsSsize_t(args[1]);
    if (start == -1 && PyErr_Occurred()) {
        return NULL;
    }
    Py_ssize_t max_size = PyLong_AsSsize_t(args[2]);
    if (max_size == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (max_size < 0) {
        PyErr_SetString(PyExc_ValueError, "max_size must not be negative");
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    PyObject *frames = NULL;
    if (start < 0 || start > view.len) {
        PyErr_SetString(PyExc_ValueError, "start is outside the data");
        goto error;
    }
    frames = PyList_New(0);
    if (frames == NULL) {
        goto error;
    }
    const unsigned char *p = view.buf;
    Py_ssize_t end = view.len, offset = start;
    while (end - offset >= 2) {
        unsigned first = p[offset], second = p[offset + 1];
        if (first != 0x81 && first != 0x82) {
            break; /* not a final text or binary frame, or reserved bits set */
        }
        Py_ssize_t head = 2;
        uint64_t length = second; /* a masked frame (second >= 128) is left to the caller */
        if (second == 126) {
            if (end - offset < 4) {
                break;
            }
            length = ((uint64_t)p[offset + 2] << 8) | p[offset + 3];
            head = 4;
        }
        else if (second == 127) {
            if (end - offset < 10) {
                break;
            }
            length = 0;
            for (int i = 0; i < 8; i++) {
                length = (length << 8) | p[offset + 2 + i];
            }
            head = 10;
        }
        else if (second > 127) {
            break;
        }
        if (length > (uint64_t)max_size || (Py_ssize_t)length > end - offset - head) {
            break; /* too large, or not all here yet */
        }
        const char *payload = (const char *)p + offset + head;
        PyObject *item;
        if (first == 0x81) {
            item = PyUnicode_DecodeUTF8(payload, (Py_ssize_t)length, NULL);
            if (item == NULL) {
                if (!PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
                    goto error;
                }
                PyErr_Clear();
                break; /* not UTF-8: the caller fails the connection */
            }
        }
        else {
            item = PyBytes_FromStringAndSize(payload, (Py_ssize_t)length);
            if (item == NULL) {
                goto error;
            }
        }
        int failed = PyList_Append(frames, item);
        Py_DECREF(item);
        if (failed) {
            goto error;
        }
        offset += head + (Py_ssize_t)length;
    }
    PyBuffer_Release(&view);
    return Py_BuildValue("(Nn)", frames, offset);
error:
    Py_XDECREF(frames);
    PyBuffer_Release(&view);
    return NULL;
}

#ifdef TRUNKLINE_MMSG
/* Datagrams of a shared media socket, many per system call (recvmmsg and sendmmsg).
 *
 * A source or destination is named by its "address key": the address's packed bytes
 * then the port, big-endian (6 bytes for IPv4, 18 for IPv6), so a datagram's source
 * is looked up in a dict without building a (host, port) tuple. */
#define BATCH_MAX 64
#define DATAGRAM_MAX 2048

static char recv_buffers[BATCH_MAX][DATAGRAM_MAX + 1]; /* one byte over: oversize shows */

static PyObject *
address_key(const struct sockaddr_storage *address)
{
    char key[18];
    if (address->ss_family == AF_INET) {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)address;
        memcpy(key, &v4->sin_addr, 4);
        memcpy(key + 4, &v4->sin_port, 2);
        return PyBytes_FromStringAndSize(key, 6);
    }
    if (address->ss_family == AF_INET6) {
        const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)address;
        memcpy(key, &v6->sin6_addr, 16);
        memcpy(key + 16, &v6->sin6_port, 2);
        return PyBytes_FromStringAndSize(key, 18);
    }
    return PyBytes_FromStringAndSize("", 0);
}

/* recv_batch(sock, count) -> [(datagram, source key), ...]: what is waiting, at most count
 * (1..64) datagrams, without blocking; [] when nothing is. A datagram over 2,048 bytes is
 * returned cut to 2,049 (the caller drops it). OSError as socket.recvfrom raises it. */
static PyObject *
recv_batch(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "recv_batch(sock, count)");
        return NULL;
    }
    int fd = PyObject_AsFileDescriptor(args[0]);
    if (fd < 0) {
        return NULL;
    }
    long count = PyLong_AsLong(args[1]);
    if (count == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (count < 1 || count > BATCH_MAX) {
        PyErr_SetString(PyExc_ValueError, "count must be 1 to 64");
        return NULL;
    }
    struct mmsghdr messages[BATCH_MAX];
    struct iovec vectors[BATCH_MAX];
    struct sockaddr_storage sources[BATCH_MAX];
    memset(messages, 0, sizeof(struct mmsghdr) * (size_t)count);
    for (long i = 0; i < count; i++) {
        vectors[i].iov_base = recv_buffers[i];
        vectors[i].iov_len = DATAGRAM_MAX + 1;
        messages[i].msg_hdr.msg_iov = &vectors[i];
        messages[i].msg_hdr.msg_iovlen = 1;
        messages[i].msg_hdr.msg_name = &sources[i];
        messages[i].msg_hdr.msg_namelen = sizeof(struct sockaddr_storage);
    }
    int received = recvmmsg(fd, messages, (unsigned int)count, MSG_DONTWAIT, NULL);
    if (received < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
            return PyList_New(0);
        }
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    PyObject *batch = PyList_New(received);
    if (batch == NULL) {
        return NULL;
    }
    for (int i = 0; i < received; i++) {
        PyObject *data = PyBytes_FromStringAndSize(recv_buffers[i], (Py_ssize_t)messages[i].msg_len);
        PyObject *key = address_key(&sources[i]);
        PyObject *pair = (data && key) ? PyTuple_Pack(2, data, key) : NULL;
        Py_XDECREF(data);
        Py_XDECREF(key);
        if (pair == NULL) {
            Py_DECREF(batch);
            return NULL;
        }
        PyList_SET_ITEM(batch, i, pair);
    }
    return batch;
}

/* The socket address a key names (its length says the family); 0 when it names none. */
static socklen_t
key_address(PyObject *key, struct sockaddr_storage *address)
{
    if (!PyBytes_Check(key)) {
        return 0;
    }
    const char *raw = PyBytes_AS_STRING(key);
    Py_ssize_t size = PyBytes_GET_SIZE(key);
    memset(address, 0, sizeof(*address));
    if (size == 6) {
        struct sockaddr_in *v4 = (struct sockaddr_in *)address;
        v4->sin_family = AF_INET;
        memcpy(&v4->sin_addr, raw, 4);
        memcpy(&v4->sin_port, raw + 4, 2);
        return sizeof(struct sockaddr_in);
    }
    if (size == 18) {
        struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)address;
        v6->sin6_family = AF_INET6;
        memcpy(&v6->sin6_addr, raw, 16);
        memcpy(&v6->sin6_port, raw + 16, 2);
        return sizeof(struct sockaddr_in6);
    }
    return 0;
}

/* send_batch(sock, [(datagram, destination key), ...]) -> how many were sent, without
 * blocking. It stops at the first the kernel has no room for (the rest are not sent) and
 * skips one that cannot be sent (a key not of the socket's family, an unreachable host). */
static PyObject *
send_batch(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyList_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "send_batch(sock, list of (datagram, key))");
        return NULL;
    }
    int fd = PyObject_AsFileDescriptor(args[0]);
    if (fd < 0) {
        return NULL;
    }
    PyObject *items = args[1];
    Py_ssize_t total = PyList_GET_SIZE(items);
    Py_ssize_t sent = 0, next = 0;
    struct mmsghdr messages[BATCH_MAX];
    struct iovec vectors[BATCH_MAX];
    struct sockaddr_storage destinations[BATCH_MAX];
    while (next < total) {
        int n = 0;
        for (; next < total && n < BATCH_MAX; next++) {
            PyObject *item = PyList_GET_ITEM(items, next);
            if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2 ||
                !PyBytes_Check(PyTuple_GET_ITEM(item, 0))) {
                PyErr_SetString(PyExc_TypeError, "send_batch items are (bytes, key) pairs");
                return NULL;
            }
            socklen_t size = key_address(PyTuple_GET_ITEM(item, 1), &destinations[n]);
            if (size == 0) {
                continue; /* names no address: skipped, not counted as sent */
            }
            PyObject *data = PyTuple_GET_ITEM(item, 0);
            memset(&messages[n], 0, sizeof(struct mmsghdr));
            vectors[n].iov_base = PyBytes_AS_STRING(data);
            vectors[n].iov_len = (size_t)PyBytes_GET_SIZE(data);
            messages[n].msg_hdr.msg_iov = &vectors[n];
            messages[n].msg_hdr.msg_iovlen = 1;
            messages[n].msg_hdr.msg_name = &destinations[n];
            messages[n].msg_hdr.msg_namelen = size;
            n++;
        }
        int done = 0;
        while (done < n) {
            int result = sendmmsg(fd, messages + done, (unsigned int)(n - done), MSG_DONTWAIT);
            if (result < 0) {
                if (errno == EINTR) {
                    continue;
                }
                if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) {
                    return PyLong_FromSsize_t(sent); /* no room: the rest are dropped */
                }
                done++; /* this one cannot be sent (unreachable, another family): skip it */
                continue;
            }
            done += result;
            sent += result;
        }
    }
    return PyLong_FromSsize_t(sent);
}
#endif

/* -- polyphase FIR resampling of PCM16 (codecs.resample) ------------------------------------
 * The caller keeps the filter and the stream's history (the last taps - 1 input samples,
 * as doubles, in a bytearray updated here); each call takes whole little-endian 16-bit
 * samples and returns them resampled, rounded half to even and clipped to 16 bits. */

static double
pcm16_sample(const unsigned char *p)
{
    return (double)(int16_t)(uint16_t)(p[0] | (p[1] << 8));
}

static void
put_pcm16(char *out, double value)
{
    double rounded = rint(value); /* half to even, as numpy.rint */
    int16_t sample = rounded >= 32767.0 ? 32767 : rounded <= -32768.0 ? -32768 : (int16_t)rounded;
    uint16_t bits = (uint16_t)sample;
    out[0] = (char)(bits & 0xFF);
    out[1] = (char)(bits >> 8);
}

/* One resampling call: its buffers, the filter as aligned doubles and the history
 * followed by the new samples as doubles. */
typedef struct {
    Py_buffer taps, history, pcm;
    double *filter;
    double *extended;
    Py_ssize_t ratio;
    Py_ssize_t length; /* taps per phase (fir_interpolate) or in all (fir_decimate) */
    Py_ssize_t count;  /* new samples */
} FirCall;

/* Reads the filter (doubles, in ratio equal parts when phases is set: one per output
 * phase), the ratio, the writable history (length - 1 doubles) and the PCM (whole
 * samples). -1 with an error set and nothing held, or 0: end with fir_finish. */
static int
fir_start(FirCall *call, PyObject *taps, PyObject *ratio, PyObject *history, PyObject *pcm,
          int phases)
{
    call->filter = call->extended = NULL;
    call->ratio = PyLong_AsSsize_t(ratio);
    if (call->ratio == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (call->ratio < 1) {
        PyErr_SetString(PyExc_ValueError, "the ratio must be at least 1");
        return -1;
    }
    if (PyObject_GetBuffer(taps, &call->taps, PyBUF_SIMPLE) < 0) {
        return -1;
    }
    Py_ssize_t parts = phases ? call->ratio : 1;
    if (call->taps.len == 0 || call->taps.len % ((Py_ssize_t)sizeof(double) * parts)) {
        const char *whole = phases ? "the filter is not a whole number of phases of doubles"
                                   : "the filter is not a whole number of doubles";
        PyErr_SetString(PyExc_ValueError, whole);
        PyBuffer_Release(&call->taps);
        return -1;
    }
    if (PyObject_GetBuffer(history, &call->history, PyBUF_WRITABLE) < 0) {
        PyBuffer_Release(&call->taps);
        return -1;
    }
    if (PyObject_GetBuffer(pcm, &call->pcm, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&call->history);
        PyBuffer_Release(&call->taps);
        return -1;
    }
    call->length = call->taps.len / (Py_ssize_t)sizeof(double) / parts;
    Py_ssize_t kept = call->length - 1;
    if (call->history.len != kept * (Py_ssize_t)sizeof(double)) {
        PyErr_SetString(PyExc_ValueError, "the history does not match the filter");
        goto fail;
    }
    if (call->pcm.len % 2) {
        PyErr_SetString(PyExc_ValueError, "PCM16 needs whole samples (an even byte count)");
        goto fail;
    }
    call->count = call->pcm.len / 2;
    call->filter = PyMem_Malloc((size_t)call->taps.len);
    call->extended = PyMem_Malloc((size_t)(kept + call->count + 1) * sizeof(double));
    if (call->filter == NULL || call->extended == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    memcpy(call->filter, call->taps.buf, (size_t)call->taps.len);
    memcpy(call->extended, call->history.buf, (size_t)call->history.len);
    for (Py_ssize_t i = 0; i < call->count; i++) {
        call->extended[kept + i] = pcm16_sample((const unsigned char *)call->pcm.buf + 2 * i);
    }
    return 0;
fail:
    PyMem_Free(call->extended);
    PyMem_Free(call->filter);
    PyBuffer_Release(&call->pcm);
    PyBuffer_Release(&call->history);
    PyBuffer_Release(&call->taps);
    return -1;
}

/* Ends a call fir_start began: with a result, the history becomes the last inputs. */
static PyObject *
fir_finish(FirCall *call, PyObject *result)
{
    if (result != NULL) {
        memcpy(call->history.buf, call->extended + call->count, (size_t)call->history.len);
    }
    PyMem_Free(call->extended);
    PyMem_Free(call->filter);
    PyBuffer_Release(&call->pcm);
    PyBuffer_Release(&call->history);
    PyBuffer_Release(&call->taps);
    return result;
}

/* fir_interpolate(phases, ratio, history, pcm) -> pcm at ratio x the rate.
 * Output ratio*i + p is phase p's taps convolved with the input ending at sample i. */
static PyObject *
fir_interpolate(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "fir_interpolate takes 4 arguments");
        return NULL;
    }
    FirCall call;
    if (fir_start(&call, args[0], args[1], args[2], args[3], 1) < 0) {
        return NULL;
    }
    Py_ssize_t ratio = call.ratio, length = call.length, count = call.count;
    PyObject *result = PyBytes_FromStringAndSize(NULL, count * ratio * 2);
    if (result == NULL) {
        return fir_finish(&call, NULL);
    }
    char *out = PyBytes_AS_STRING(result);
    /* Four outputs of a phase at a time: four independent sums in flight, each added in
     * the same order as one at a time (the same result, bit for bit). */
    Py_ssize_t i = 0;
    for (; i + 4 <= count; i += 4) {
        const double *newest = call.extended + i + length - 1;
        for (Py_ssize_t phase = 0; phase < ratio; phase++) {
            const double *h = call.filter + phase * length;
            double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
            for (Py_ssize_t k = 0; k < length; k++) {
                double tap = h[k];
                s0 += newest[-k] * tap;
                s1 += newest[1 - k] * tap;
                s2 += newest[2 - k] * tap;
                s3 += newest[3 - k] * tap;
            }
            put_pcm16(out + 2 * (i * ratio + phase), s0);
            put_pcm16(out + 2 * ((i + 1) * ratio + phase), s1);
            put_pcm16(out + 2 * ((i + 2) * ratio + phase), s2);
            put_pcm16(out + 2 * ((i + 3) * ratio + phase), s3);
        }
    }
    for (; i < count; i++) {
        const double *newest = call.extended + i + length - 1;
        for (Py_ssize_t phase = 0; phase < ratio; phase++) {
            const double *h = call.filter + phase * length;
            double sum = 0.0;
            for (Py_ssize_t k = 0; k < length; k++) {
                sum += newest[-k] * h[k];
            }
            put_pcm16(out + 2 * (i * ratio + phase), sum);
        }
    }
    return fir_finish(&call, result);
}

/* fir_decimate(reversed_taps, ratio, history, first, pcm) -> pcm at 1/ratio the rate.
 * Output j is the taps over the window of the history and input starting at first +
 * ratio*j; outputs are taken while a window ends inside this input. */
static PyObject *
fir_decimate(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "fir_decimate takes 5 arguments");
        return NULL;
    }
    Py_ssize_t first = PyLong_AsSsize_t(args[3]);
    if (first == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (first < 0) {
        PyErr_SetString(PyExc_ValueError, "the first output's offset must not be negative");
        return NULL;
    }
    FirCall call;
    if (fir_start(&call, args[0], args[1], args[2], args[4], 0) < 0) {
        return NULL;
    }
    Py_ssize_t ratio = call.ratio, length = call.length;
    Py_ssize_t outputs = first < call.count ? (call.count - 1 - first) / ratio + 1 : 0;
    PyObject *result = PyBytes_FromStringAndSize(NULL, outputs * 2);
    if (result == NULL) {
        return fir_finish(&call, NULL);
    }
    char *out = PyBytes_AS_STRING(result);
    Py_ssize_t j = 0;
    for (; j + 4 <= outputs; j += 4) { /* four sums in flight, as fir_interpolate */
        const double *window = call.extended + first + j * ratio;
        double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
        for (Py_ssize_t m = 0; m < length; m++) {
            double tap = call.filter[m];
            s0 += window[m] * tap;
            s1 += window[m + ratio] * tap;
            s2 += window[m + 2 * ratio] * tap;
            s3 += window[m + 3 * ratio] * tap;
        }
        put_pcm16(out + 2 * j, s0);
        put_pcm16(out + 2 * (j + 1), s1);
        put_pcm16(out + 2 * (j + 2), s2);
        put_pcm16(out + 2 * (j + 3), s3);
    }
    for (; j < outputs; j++) {
        const double *window = call.extended + first + j * ratio;
        double sum = 0.0;
        for (Py_ssize_t m = 0; m < length; m++) {
            sum += window[m] * call.filter[m];
        }
        put_pcm16(out + 2 * j, sum);
    }
    return fir_finish(&call, result);
}

static PyMethodDef speedups_methods[] = {
    {"parse_rtp", (PyCFunction)parse_rtp, METH_O,
     "parse_rtp(data) -> (payload_type, marker, sequence, timestamp, ssrc, payload)"},
    {"build_rtp", (PyCFunction)(void (*)(void))build_rtp, METH_FASTCALL,
     "build_rtp(payload, payload_type, sequence, timestamp, ssrc, marker) -> a new packet"},
    {"encode_media_frame", (PyCFunction)(void (*)(void))encode_media_frame, METH_FASTCALL,
     "encode_media_frame(prefix, payload, suffix) -> prefix + base64(payload) + suffix"},
    {"decode_media_payload", (PyCFunction)(void (*)(void))decode_media_payload, METH_FASTCALL,
     "decode_media_payload(text, max_payload_chars) -> the media frame's payload, or None"},
    {"ws_client_frame", (PyCFunction)(void (*)(void))ws_client_frame, METH_FASTCALL,
     "ws_client_frame(opcode, payload, mask_key) -> a final masked WebSocket frame"},
    {"ws_server_frames", (PyCFunction)(void (*)(void))ws_server_frames, METH_FASTCALL,
     "ws_server_frames(data, start, max_size) -> (final unmasked text and binary payloads, "
     "where the first other frame starts)"},
    {"fir_interpolate", (PyCFunction)(void (*)(void))fir_interpolate, METH_FASTCALL,
     "fir_interpolate(phases, ratio, history, pcm) -> PCM16 at ratio times the rate"},
    {"fir_decimate", (PyCFunction)(void (*)(void))fir_decimate, METH_FASTCALL,
     "fir_decimate(reversed_taps, ratio, history, first, pcm) -> PCM16 at 1/ratio the rate"},
#ifdef TRUNKLINE_MMSG
    {"recv_batch", (PyCFunction)(void (*)(void))recv_batch, METH_FASTCALL,
     "recv_batch(sock, count) -> [(datagram, source key), ...] waiting now, at most count"},
    {"send_batch", (PyCFunction)(void (*)(void))send_batch, METH_FASTCALL,
     "send_batch(sock, [(datagram, destination key), ...]) -> how many were sent"},
#endif
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT, "trunkline._speedups",
    "The per-frame media work in C; trunkline._speedups_py is its pure-Python twin.", -1,
    speedups_methods,
};

int trunkline_add_jitter_core(PyObject *module); /* _jitter_core.c */
int trunkline_add_rtp_core(PyObject *module);    /* _rtp_core.c */

PyMODINIT_FUNC
PyInit__speedups(void)
{
    b64_init();
    PyObject *module = PyModule_Create(&speedups_module);
    if (module != NULL &&
        (trunkline_add_jitter_core(module) < 0 || trunkline_add_rtp_core(module) < 0)) {
        Py_CLEAR(module);
    }
    return module;
}

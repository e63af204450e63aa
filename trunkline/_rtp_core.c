/* trunkline._speedups.RtpReceiver and RtpSender: an RTP session's per-packet work in C.
 *
 * RtpReceiver: the same steps, in the same order, as the pure-Python PyRtpReceiver in
 * trunkline/gateway/rtp/reception.py, whose docstring describes them: the header read
 * (_rtp_header.h, as parse_rtp), the payload-type filter, the order check and the
 * RFC 3550 reception statistics, then the packet into the call's jitter buffer (a
 * JitterCore is pushed without a Python call in between). The session keeps what
 * needs its addresses and callbacks: source checks, latching and RFC 4733 events.
 * tests/rtp/test_reception_twins.py drives both with the same packet traces and
 * requires the same results, counters and statistics.
 *
 * RtpSender: the outbound packetiser, twin of PyRtpSender in
 * trunkline/gateway/rtp/sending.py (tests/rtp/test_sending_twins.py): one call per
 * 20 ms slot that advances RTP time, numbers the packet, sets the marker at a talk
 * spurt's start and counts it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include "structmember.h"
#include "_rtp_header.h"

#define MAX_SEQUENCE_JUMP 3000 /* beyond this the stream restarted: resynchronise */
#define MAX_TRANSIT_STEP (8000 * 60)
#define RETIME_SAMPLES 24 /* 3 ms of transit change (8 kHz units): ask when it came */

/* What receive() returns (gateway/rtp/reception.py names them). */
enum { R_DROPPED = 0, R_EVENT = 1, R_LATE = 2, R_AUDIO = 3, R_BUFFERED = 4 };

void trunkline_jitter_push(PyObject *core, long long ssrc, long long sequence,
                           long long timestamp, PyObject *payload, Py_ssize_t size,
                           double arrival);        /* _jitter_core.c */
int trunkline_is_jitter_core(PyObject *object); /* _jitter_core.c */

typedef struct {
    PyObject_HEAD
    /* configuration */
    long payload_type, event_payload_type; /* -1: no event payload type */
    PyObject *jitter;                      /* NULL: pass-through */
    char jitter_is_core;
    PyObject *arrival; /* NULL: none; else arrival(now) -> when the datagram came */
    /* the last packet's fields (an event's, or pass-through audio's payload) */
    PyObject *payload;
    long long ssrc, sequence, timestamp;
    /* counters */
    long long packets_in, bytes_in, dropped_malformed, dropped_payload_type, dropped_late,
        lost, resyncs, retimed;
    /* reception statistics (RFC 3550 A.1, A.8) */
    char has_ssrc, has_transit;
    long long ssrc_in, highest, base_seq, cycles, received, jitter16, last_transit;
} RtpReceiver;

static void
resync(RtpReceiver *self, long long sequence)
{
    self->highest = self->base_seq = sequence;
    self->cycles = self->received = 0;
    self->has_transit = 0;
}

/* Whether the packet is newer than every one before it (1), or a duplicate or older (0). */
static int
in_order(RtpReceiver *self, long long ssrc, long long sequence)
{
    if (!self->has_ssrc || ssrc != self->ssrc_in) {
        if (self->has_ssrc) {
            self->resyncs += 1;
        }
        self->has_ssrc = 1;
        self->ssrc_in = ssrc;
        resync(self, sequence);
        return 1;
    }
    long long delta = (sequence - self->highest) & 0xFFFF;
    if (delta == 0 || delta >= 0x8000) {
        if (((self->highest - sequence) & 0xFFFF) > MAX_SEQUENCE_JUMP) {
            self->resyncs += 1;
            resync(self, sequence);
            return 1;
        }
        return 0;
    }
    if (delta > MAX_SEQUENCE_JUMP) {
        self->resyncs += 1;
        resync(self, sequence);
        return 1;
    }
    self->lost += delta - 1;
    if (sequence < self->highest) {
        self->cycles += 1LL << 16; /* the 16-bit sequence number wrapped */
    }
    self->highest = sequence;
    return 1;
}

static PyObject *
RtpReceiver_receive(RtpReceiver *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "receive(data, now) takes 2 arguments (%zd given)",
                     nargs);
        return NULL;
    }
    PyObject *data = args[0];
    double now = PyFloat_AsDouble(args[1]);
    if (now == -1.0 && PyErr_Occurred()) {
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    rtp_header h;
    const char *error = rtp_read_header(view.buf, view.len, &h);
    Py_ssize_t size = view.len;
    PyBuffer_Release(&view);
    if (error != NULL) {
        self->dropped_malformed += 1;
        return PyLong_FromLong(R_DROPPED);
    }
    long long ssrc = (long long)h.ssrc, sequence = (long long)h.sequence;
    long long timestamp = (long long)h.timestamp;
    if ((long)h.payload_type == self->event_payload_type) {
        PyObject *payload = rtp_payload_view(data, h.offset, h.end);
        if (payload == NULL) {
            return NULL;
        }
        Py_XSETREF(self->payload, payload);
        self->ssrc = ssrc;
        self->sequence = sequence;
        self->timestamp = timestamp;
        return PyLong_FromLong(R_EVENT);
    }
    if ((long)h.payload_type != self->payload_type) {
        self->dropped_payload_type += 1;
        return PyLong_FromLong(R_DROPPED);
    }
    self->packets_in += 1;
    self->bytes_in += size;
    int ordered = in_order(self, ssrc, sequence);
    if (!ordered && self->jitter == NULL) {
        self->dropped_late += 1;
        return PyLong_FromLong(R_LATE);
    }
    self->received += 1;
    if (ordered) {
        long long transit = (long long)(now * 8000) - timestamp;
        if (self->has_transit) {
            long long d = llabs(transit - self->last_transit);
            if (d > RETIME_SAMPLES && self->arrival != NULL) {
                /* it may have waited in the socket while the loop was busy (reception.py) */
                PyObject *now_object = PyFloat_FromDouble(now);
                if (now_object == NULL) {
                    return NULL;
                }
                PyObject *when = PyObject_CallOneArg(self->arrival, now_object);
                Py_DECREF(now_object);
                if (when == NULL) {
                    return NULL;
                }
                double arrived = PyFloat_AsDouble(when);
                Py_DECREF(when);
                if (arrived == -1.0 && PyErr_Occurred()) {
                    return NULL;
                }
                if (arrived < now) {
                    now = arrived;
                    self->retimed += 1;
                    transit = (long long)(now * 8000) - timestamp;
                    d = llabs(transit - self->last_transit);
                }
            }
            if (d < MAX_TRANSIT_STEP) { /* not a timestamp jump */
                self->jitter16 += d - ((self->jitter16 + 8) >> 4);
            }
        }
        self->has_transit = 1;
        self->last_transit = transit;
    }
    PyObject *payload = rtp_payload_view(data, h.offset, h.end);
    if (payload == NULL) {
        return NULL;
    }
    if (self->jitter == NULL) {
        Py_XSETREF(self->payload, payload);
        return PyLong_FromLong(R_AUDIO);
    }
    if (self->jitter_is_core) {
        trunkline_jitter_push(self->jitter, ssrc, sequence, timestamp, payload, h.end - h.offset,
                              now);
        Py_DECREF(payload);
    }
    else { /* a jitter buffer of another kind: its push() */
        PyObject *done = PyObject_CallMethod(self->jitter, "push", "LLLOd", ssrc, sequence,
                                             timestamp, payload, now);
        Py_DECREF(payload);
        if (done == NULL) {
            return NULL;
        }
        Py_DECREF(done);
    }
    return PyLong_FromLong(R_BUFFERED);
}

static PyObject *
RtpReceiver_reception(RtpReceiver *self, PyObject *Py_UNUSED(ignored))
{
    if (!self->has_ssrc) {
        Py_RETURN_NONE;
    }
    long long extended = self->cycles + self->highest;
    return Py_BuildValue("(LLLLL)", self->ssrc_in, extended, extended - self->base_seq + 1,
                         self->received, self->jitter16 >> 4);
}

static int
RtpReceiver_init(RtpReceiver *self, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"payload_type", "event_payload_type", "jitter", "arrival",
                               NULL};
    long payload_type;
    PyObject *event = Py_None, *jitter = Py_None, *arrival = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "lOO|O:RtpReceiver", keywords, &payload_type,
                                     &event, &jitter, &arrival)) {
        return -1;
    }
    long event_payload_type = -1;
    if (event != Py_None) {
        event_payload_type = PyLong_AsLong(event);
        if (event_payload_type == -1 && PyErr_Occurred()) {
            return -1;
        }
        if (event_payload_type < 0) {
            event_payload_type = 128; /* out of range: refused below */
        }
    }
    if (!(0 <= payload_type && payload_type <= 127) ||
        !(-1 <= event_payload_type && event_payload_type <= 127)) {
        PyErr_SetString(PyExc_ValueError, "payload types are 0 to 127");
        return -1;
    }
    self->payload_type = payload_type;
    self->event_payload_type = event_payload_type;
    Py_CLEAR(self->jitter);
    if (jitter != Py_None) {
        Py_INCREF(jitter);
        self->jitter = jitter;
        self->jitter_is_core = (char)trunkline_is_jitter_core(jitter);
    }
    Py_CLEAR(self->arrival);
    if (arrival != Py_None) {
        Py_INCREF(arrival);
        self->arrival = arrival;
    }
    return 0;
}

static int
RtpReceiver_traverse(RtpReceiver *self, visitproc visit, void *arg)
{
    Py_VISIT(self->jitter);
    Py_VISIT(self->payload);
    Py_VISIT(self->arrival);
    return 0;
}

static int
RtpReceiver_clear(RtpReceiver *self)
{
    Py_CLEAR(self->jitter);
    Py_CLEAR(self->payload);
    Py_CLEAR(self->arrival);
    return 0;
}

static void
RtpReceiver_dealloc(RtpReceiver *self)
{
    PyObject_GC_UnTrack(self);
    RtpReceiver_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef RtpReceiver_methods[] = {
    {"receive", (PyCFunction)(void (*)(void))RtpReceiver_receive, METH_FASTCALL,
     "receive(data, now) -> DROPPED, EVENT, LATE, AUDIO or BUFFERED"},
    {"reception", (PyCFunction)RtpReceiver_reception, METH_NOARGS,
     "reception() -> (ssrc, extended highest, expected, received, jitter), or None"},
    {NULL, NULL, 0, NULL},
};

#define COUNTER(name, doc) {#name, T_LONGLONG, offsetof(RtpReceiver, name), 0, doc}
#define READING(name, type, doc) {#name, type, offsetof(RtpReceiver, name), READONLY, doc}

static PyMemberDef RtpReceiver_members[] = {
    COUNTER(packets_in, "audio and event packets accepted"),
    COUNTER(bytes_in, "their bytes, headers included"),
    COUNTER(dropped_malformed, "not RTP, or an event that does not decode"),
    COUNTER(dropped_payload_type, "a payload type not negotiated"),
    COUNTER(dropped_late, "pass-through audio that was a duplicate or older than the newest"),
    COUNTER(lost, "sequence numbers skipped"),
    COUNTER(resyncs, "a new SSRC, or a sequence jump: statistics started again"),
    COUNTER(retimed, "packets timed by when they came, not when they were handled"),
    READING(payload, T_OBJECT, "the last event's payload, or pass-through audio's"),
    READING(ssrc, T_LONGLONG, "the last event's SSRC"),
    READING(sequence, T_LONGLONG, "the last event's sequence number"),
    READING(timestamp, T_LONGLONG, "the last event's timestamp"),
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject RtpReceiverType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "trunkline._speedups.RtpReceiver",
    .tp_basicsize = sizeof(RtpReceiver),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "An RTP session's inbound checks and reception statistics (PyRtpReceiver's "
              "C twin).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)RtpReceiver_init,
    .tp_dealloc = (destructor)RtpReceiver_dealloc,
    .tp_traverse = (traverseproc)RtpReceiver_traverse,
    .tp_clear = (inquiry)RtpReceiver_clear,
    .tp_methods = RtpReceiver_methods,
    .tp_members = RtpReceiver_members,
};

/* -- RtpSender ---------------------------------------------------------------------- */

#define SAMPLES_PER_FRAME 160

typedef struct {
    PyObject_HEAD
    long payload_type;
    unsigned long ssrc, sequence, timestamp; /* the next packet's */
    char talking;                            /* the last slot carried audio */
    long long packets_out, bytes_out;
} RtpSender;

/* next_frame(payload) -> the packet for this 20 ms slot, or None for silence.
 * A new bytes object each time: a transport may keep the packet queued. */
static PyObject *
RtpSender_next_frame(RtpSender *self, PyObject *payload)
{
    unsigned long timestamp = self->timestamp;
    self->timestamp = (timestamp + SAMPLES_PER_FRAME) & 0xFFFFFFFFUL;
    if (payload == Py_None) {
        self->talking = 0;
        Py_RETURN_NONE;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(payload, &view, PyBUF_SIMPLE) < 0) {
        self->timestamp = timestamp; /* nothing happened */
        return NULL;
    }
    PyObject *packet = PyBytes_FromStringAndSize(NULL, RTP_HEADER_BYTES + view.len);
    if (packet == NULL) {
        PyBuffer_Release(&view);
        self->timestamp = timestamp;
        return NULL;
    }
    unsigned char *p = (unsigned char *)PyBytes_AS_STRING(packet);
    memcpy(p + RTP_HEADER_BYTES, view.buf, (size_t)view.len);
    PyBuffer_Release(&view);
    unsigned long sequence = self->sequence, ssrc = self->ssrc;
    rtp_write_header(p, (unsigned)self->payload_type, !self->talking, sequence, timestamp, ssrc);
    self->talking = 1;
    self->sequence = (sequence + 1) & 0xFFFF;
    self->packets_out += 1;
    self->bytes_out += PyBytes_GET_SIZE(packet);
    return packet;
}

static PyObject *
RtpSender_rewind(RtpSender *self, PyObject *samples)
{
    if (!PyLong_Check(samples)) {
        PyErr_SetString(PyExc_TypeError, "rewind takes a number of samples");
        return NULL;
    }
    unsigned long long back = PyLong_AsUnsignedLongLongMask(samples);
    if (back == (unsigned long long)-1 && PyErr_Occurred()) {
        return NULL;
    }
    self->timestamp = (unsigned long)((self->timestamp - back) & 0xFFFFFFFFULL);
    self->talking = 0;
    Py_RETURN_NONE;
}

/* An int argument within [0, limit], else -1 with an exception set. */
static long long
field_in_range(PyObject *value, long long limit, const char *what)
{
    long long field = PyLong_AsLongLong(value);
    if (field == -1 && PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_OverflowError)) {
            return -1;
        }
        PyErr_Clear();
    }
    else if (0 <= field && field <= limit) {
        return field;
    }
    PyErr_Format(PyExc_ValueError, "%s is out of range", what);
    return -1;
}

static int
RtpSender_init(RtpSender *self, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"payload_type", "ssrc", "sequence", "timestamp", NULL};
    PyObject *fields[4];
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!O!O!O!:RtpSender", keywords,
                                     &PyLong_Type, &fields[0], &PyLong_Type, &fields[1],
                                     &PyLong_Type, &fields[2], &PyLong_Type, &fields[3])) {
        return -1;
    }
    static const long long limits[4] = {127, 0xFFFFFFFFLL, 0xFFFF, 0xFFFFFFFFLL};
    static const char *names[4] = {"payload_type", "ssrc", "sequence", "timestamp"};
    long long values[4];
    for (int k = 0; k < 4; k++) {
        values[k] = field_in_range(fields[k], limits[k], names[k]);
        if (values[k] < 0) {
            return -1;
        }
    }
    self->payload_type = (long)values[0];
    self->ssrc = (unsigned long)values[1];
    self->sequence = (unsigned long)values[2];
    self->timestamp = (unsigned long)values[3];
    self->talking = 0;
    self->packets_out = self->bytes_out = 0;
    return 0;
}

static PyMethodDef RtpSender_methods[] = {
    {"next_frame", (PyCFunction)RtpSender_next_frame, METH_O,
     "next_frame(payload) -> the packet for this 20 ms slot, or None for silence"},
    {"rewind", (PyCFunction)RtpSender_rewind, METH_O,
     "rewind(samples): the next slot's RTP time moves back; it starts a talk spurt"},
    {NULL, NULL, 0, NULL},
};

#define SENDER(name, type, doc) {#name, type, offsetof(RtpSender, name), READONLY, doc}

static PyMemberDef RtpSender_members[] = {
    SENDER(payload_type, T_LONG, "the payload type of every packet"),
    SENDER(ssrc, T_ULONG, "the SSRC of every packet"),
    SENDER(sequence, T_ULONG, "the next packet's sequence number"),
    SENDER(timestamp, T_ULONG, "the next slot's RTP timestamp"),
    SENDER(talking, T_BOOL, "the last slot carried audio (the next packet has no marker)"),
    SENDER(packets_out, T_LONGLONG, "packets built"),
    SENDER(bytes_out, T_LONGLONG, "their bytes, headers included"),
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject RtpSenderType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "trunkline._speedups.RtpSender",
    .tp_basicsize = sizeof(RtpSender),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "An RTP session's outbound packetiser (PyRtpSender's C twin).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)RtpSender_init,
    .tp_methods = RtpSender_methods,
    .tp_members = RtpSender_members,
};

static int
add_type(PyObject *module, PyTypeObject *type, const char *name)
{
    if (PyType_Ready(type) < 0) {
        return -1;
    }
    Py_INCREF(type);
    if (PyModule_AddObject(module, name, (PyObject *)type) < 0) {
        Py_DECREF(type);
        return -1;
    }
    return 0;
}

int
trunkline_add_rtp_core(PyObject *module)
{
    if (add_type(module, &RtpReceiverType, "RtpReceiver") < 0) {
        return -1;
    }
    return add_type(module, &RtpSenderType, "RtpSender");
}

/* trunkline._speedups.JitterCore: the caller's jitter buffer in C.
 *
 * The same algorithm, step for step, as the pure-Python PyJitterBuffer in
 * trunkline/gateway/rtp/jitter.py, whose docstring describes it; names here follow
 * its methods so the two can be read side by side. tests/rtp/test_jitter_twins.py
 * drives both with the same packet traces and requires the same frames, counters and
 * histograms. Python subclasses this type (``jitter.accelerated_class``) for the
 * readings that are not per-frame work (counters as a dataclass, ``counter_values``).
 *
 * A held packet's payload is kept as the object pushed (a view of the received
 * datagram, never copied); the frame a pull returns is that object when the packet is
 * one 20 ms frame, else a view of the buffer the frame was assembled in.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include "structmember.h"

#define SLOTS 64
#define SLOT_MASK (SLOTS - 1)
#define SEQUENCE_BASE (1LL << 20)
#define MAX_SEQUENCE_JUMP 3000
#define MAX_GAP_SAMPLES 8000
#define JITTER_MULTIPLE 3
#define LATE_DECAY_PULLS 100
#define SHRINK_WINDOW_PULLS 50
#define SHRINK_PATIENCE_PULLS 500
#define TRIM_PULLS 10
#define RETARGET_PULLS 8
#define MAX_LEAD_FRAMES 3
#define START_LEAD_FRAMES 1
#define HISTOGRAM_BUCKETS 7 /* depth bounds 0, 1, 2, 3, 5, 10, then +Inf */
#define MIN_REMAINING_RESET (1LL << 30)

enum { SLOT_EMPTY = 0, SLOT_HELD = 1, SLOT_PLAYED = 2, SLOT_MISSED = 3 };
enum { C_LATE, C_DUPLICATE, C_OVERFLOW, C_SHRUNK, C_LOST, C_UNDERRUNS, C_RESETS, C_COUNT };

static const int BUCKET_OF[11] = {0, 1, 2, 3, 4, 4, 5, 5, 5, 5, 5};

typedef struct {
    PyObject_HEAD
    /* configuration */
    Py_ssize_t min_frames, max_frames, frame_bytes, clock_rate, catch_up_frames;
    PyObject *quiet; /* NULL: any frame may be shrunk away */
    char on_arrival;
    /* readings */
    char started;
    Py_ssize_t target_frames;
    long long counters[C_COUNT];
    long long depth_histogram[HISTOGRAM_BUCKETS], target_histogram[HISTOGRAM_BUCKETS];
    long long depth_frames_sum, target_frames_sum;
    /* the ring */
    long long seq[SLOTS];
    unsigned char state[SLOTS];
    PyObject *payload[SLOTS]; /* held: the payload pushed (an event's: an empty view) */
    Py_ssize_t size[SLOTS];
    long long ts[SLOTS];
    PyObject *out;      /* bytearray of frame_bytes: frames assembled from other sizes */
    PyObject *out_view; /* memoryview of out */
    /* the stream (kept across _clear) */
    char has_ssrc;
    long long ssrc;
    Py_ssize_t late_floor;
    long long since_late;
    Py_ssize_t lead;
    char adapted;
    /* the stream (forgotten by _clear) */
    long long cursor, highest;
    Py_ssize_t held, held_bytes, fill;
    PyObject *part; /* the unplayed rest of a longer packet: part[part_offset:] */
    Py_ssize_t part_offset, part_len;
    char has_expected_ts;
    long long expected_ts;
    long long credit;
    char waiting, fresh;
    Py_ssize_t waited;
    double jitter;
    char has_last_ts;
    long long last_ts;
    double last_arrival;
    long long min_remaining;
    Py_ssize_t window, shrink_waited, over_max;
} JitterCore;

static PyObject *empty_payload; /* an RFC 4733 event's place in the ring */

/* -- helpers ------------------------------------------------------------------------ */

static int
present(JitterCore *self, long long extended)
{
    int slot = (int)(extended & SLOT_MASK);
    return self->state[slot] == SLOT_HELD && self->seq[slot] == extended;
}

static Py_ssize_t
part_length(JitterCore *self)
{
    return self->part != NULL ? self->part_len : 0;
}

static long long
extend(JitterCore *self, long long sequence)
{
    long long delta = (sequence - self->highest) & 0xFFFF;
    return self->highest + (delta >= 0x8000 ? delta - 0x10000 : delta);
}

static void
clear_stream(JitterCore *self)
{
    for (int slot = 0; slot < SLOTS; slot++) {
        self->state[slot] = SLOT_EMPTY;
        Py_CLEAR(self->payload[slot]);
    }
    self->cursor = self->highest = 0;
    self->held = self->held_bytes = 0;
    self->fill = 0;
    Py_CLEAR(self->part);
    self->part_offset = self->part_len = 0;
    self->has_expected_ts = 0;
    self->expected_ts = 0;
    self->credit = 0;
    self->waiting = 1;
    self->waited = 0;
    self->fresh = 1;
    self->jitter = 0.0;
    self->has_last_ts = 0;
    self->last_ts = 0;
    self->last_arrival = 0.0;
    self->min_remaining = MIN_REMAINING_RESET;
    self->window = 0;
    self->shrink_waited = -1;
    self->over_max = 0;
}

/* Python's float floor division (floatobject.c), for the same target at every jitter. */
static double
float_floordiv(double vx, double wx)
{
    double mod = fmod(vx, wx);
    double div = (vx - mod) / wx;
    if (mod) {
        if ((wx < 0) != (mod < 0)) {
            div -= 1.0;
        }
    }
    if (div) {
        double floordiv = floor(div);
        if (div - floordiv > 0.5) {
            floordiv += 1.0;
        }
        return floordiv;
    }
    return copysign(0.0, vx / wx);
}

static void
retarget(JitterCore *self)
{
    Py_ssize_t size = self->frame_bytes;
    double from = float_floordiv(JITTER_MULTIPLE * self->jitter + (double)size / 2, (double)size);
    Py_ssize_t from_jitter = (Py_ssize_t)from;
    Py_ssize_t wanted = from_jitter > self->late_floor ? from_jitter : self->late_floor;
    if (wanted < self->min_frames) {
        wanted = self->min_frames;
    }
    self->target_frames = wanted < self->max_frames ? wanted : self->max_frames;
}

static void
grow(JitterCore *self)
{
    Py_ssize_t floor_ = self->late_floor > self->target_frames ? self->late_floor
                                                               : self->target_frames;
    floor_ += 1;
    self->late_floor = floor_ < self->max_frames ? floor_ : self->max_frames;
    self->since_late = 0;
    retarget(self);
}

static void
adapt(JitterCore *self)
{
    self->since_late += 1;
    if (self->late_floor && self->since_late >= LATE_DECAY_PULLS) {
        self->late_floor -= 1;
        self->since_late = 0;
        retarget(self);
    }
    else if (self->since_late % RETARGET_PULLS == 0) {
        retarget(self);
    }
}

static int
bucket_of(long long frames)
{
    return frames < 11 ? BUCKET_OF[frames] : HISTOGRAM_BUCKETS - 1;
}

static void
observe(JitterCore *self, long long depth)
{
    Py_ssize_t target = self->target_frames;
    self->depth_frames_sum += depth;
    self->target_frames_sum += target;
    self->depth_histogram[bucket_of(depth)] += 1;
    self->target_histogram[bucket_of(target)] += 1;
}

static void
miss(JitterCore *self)
{
    if (self->started) {
        self->credit += self->frame_bytes;
        observe(self, 0);
    }
}

static void
hold(JitterCore *self, int slot, long long extended, long long timestamp, PyObject *payload,
     Py_ssize_t size)
{
    self->seq[slot] = extended;
    self->state[slot] = SLOT_HELD;
    Py_INCREF(payload);
    Py_XSETREF(self->payload[slot], payload);
    self->ts[slot] = timestamp;
    self->held += 1;
    self->held_bytes += size;
    self->size[slot] = size;
    if (extended > self->highest) {
        self->highest = extended;
    }
}

static void
give_up(JitterCore *self, int slot, long long extended)
{
    self->seq[slot] = extended;
    self->state[slot] = SLOT_MISSED;
    Py_CLEAR(self->payload[slot]);
    self->counters[C_LOST] += 1;
}

/* Take the held packet out of ``slot``: its size; its payload into *taken (a new
 * reference) when taken is not NULL. */
static Py_ssize_t
consume(JitterCore *self, int slot, int played, PyObject **taken)
{
    PyObject *payload = self->payload[slot];
    self->payload[slot] = NULL;
    self->state[slot] = SLOT_PLAYED;
    self->held -= 1;
    Py_ssize_t size = self->size[slot];
    self->held_bytes -= size;
    if (size) {
        self->expected_ts = (self->ts[slot] + size) & 0xFFFFFFFFLL;
        self->has_expected_ts = 1;
        if (played) {
            self->credit = 0;
        }
    }
    if (taken != NULL) {
        *taken = payload;
    }
    else {
        Py_XDECREF(payload);
    }
    return size;
}

static void
drop_oldest(JitterCore *self)
{
    while (self->held) {
        int slot = (int)(self->cursor & SLOT_MASK);
        self->cursor += 1;
        if (!present(self, self->cursor - 1)) {
            give_up(self, slot, self->cursor - 1);
        }
        else if (consume(self, slot, 0, NULL)) {
            self->counters[C_OVERFLOW] += 1;
            return;
        }
    }
}

static void
drop_until(JitterCore *self, long long extended)
{
    while (self->cursor < extended) {
        int slot = (int)(self->cursor & SLOT_MASK);
        if (present(self, self->cursor)) {
            if (consume(self, slot, 0, NULL)) {
                self->counters[C_OVERFLOW] += 1;
            }
        }
        else {
            give_up(self, slot, self->cursor);
        }
        self->cursor += 1;
    }
}

static void
restart(JitterCore *self, long long ssrc, long long sequence)
{
    if (self->has_ssrc) {
        self->counters[C_RESETS] += 1;
    }
    clear_stream(self);
    self->has_ssrc = 1;
    self->ssrc = ssrc;
    self->cursor = self->highest = SEQUENCE_BASE + sequence;
}

static void
too_late(JitterCore *self, long long extended)
{
    int slot = (int)(extended & SLOT_MASK);
    if (self->seq[slot] == extended && self->state[slot] == SLOT_PLAYED) {
        self->counters[C_DUPLICATE] += 1;
    }
    else {
        self->counters[C_LATE] += 1;
        grow(self);
    }
}

static long long
gap_before(JitterCore *self, int slot)
{
    if (!self->has_expected_ts) {
        return 0;
    }
    long long gap = (self->ts[slot] - self->expected_ts) & 0xFFFFFFFFLL;
    if (gap >= 0x80000000LL || gap > MAX_GAP_SAMPLES) {
        return 0;
    }
    return gap - self->credit;
}

static long long
uncovered(JitterCore *self)
{
    for (long long extended = self->cursor; extended <= self->highest; extended++) {
        int slot = (int)(extended & SLOT_MASK);
        if (present(self, extended) && self->size[slot]) {
            return gap_before(self, slot);
        }
    }
    return 0;
}

static void
shrink(JitterCore *self)
{
    Py_ssize_t dropped = 0;
    while (dropped < self->frame_bytes && self->part == NULL) {
        int slot = (int)(self->cursor & SLOT_MASK);
        if (!present(self, self->cursor)) {
            return;
        }
        self->cursor += 1;
        dropped += consume(self, slot, 0, NULL);
        self->counters[C_SHRUNK] += 1;
    }
}

/* 1: shrunk now; 0: waiting for a quiet frame; -1: the quiet test raised. */
static int
shrink_quietly(JitterCore *self)
{
    if (self->quiet != NULL && self->shrink_waited < SHRINK_PATIENCE_PULLS) {
        int slot = (int)(self->cursor & SLOT_MASK);
        PyObject *payload = present(self, self->cursor) ? self->payload[slot] : NULL;
        int is_quiet = 0;
        if (self->part == NULL && payload != NULL) {
            Py_INCREF(payload);
            PyObject *answer = PyObject_CallOneArg(self->quiet, payload);
            Py_DECREF(payload);
            if (answer == NULL) {
                return -1;
            }
            is_quiet = PyObject_IsTrue(answer);
            Py_DECREF(answer);
            if (is_quiet < 0) {
                return -1;
            }
        }
        if (!is_quiet) {
            self->shrink_waited += 1;
            return 0;
        }
    }
    shrink(self);
    return 1;
}

static int
played(JitterCore *self)
{
    self->started = 1;
    Py_ssize_t size = self->frame_bytes;
    long long remaining = self->held_bytes + part_length(self);
    observe(self, remaining / size);
    if (remaining < self->min_remaining) {
        self->min_remaining = remaining;
    }
    long long bound = (long long)(self->max_frames + 1) * size;
    if (remaining <= bound) {
        self->over_max = 0;
    }
    else {
        self->over_max += 1;
        if (self->over_max >= TRIM_PULLS) {
            while (self->held && remaining > bound) {
                drop_oldest(self);
                remaining = self->held_bytes + part_length(self);
            }
            self->over_max = 0;
        }
    }
    long long excess = (long long)(self->target_frames + (self->on_arrival ? 1 : 2)) * size;
    if (self->shrink_waited >= 0) {
        if (remaining < excess) {
            self->shrink_waited = -1;
        }
        else {
            int shrunk = shrink_quietly(self);
            if (shrunk < 0) {
                return -1;
            }
            if (shrunk) {
                self->shrink_waited = -1;
            }
        }
    }
    self->window += 1;
    if (self->window >= SHRINK_WINDOW_PULLS) {
        if (self->min_remaining >= excess && self->shrink_waited < 0) {
            self->shrink_waited = 0;
            int shrunk = shrink_quietly(self);
            if (shrunk < 0) {
                return -1;
            }
            if (shrunk) {
                self->shrink_waited = -1;
            }
        }
        self->window = 0;
        self->min_remaining = MIN_REMAINING_RESET;
    }
    return 0;
}

/* Copy up to ``want`` bytes of the part into out at ``fill``: how many, or -1. */
static Py_ssize_t
copy_part(JitterCore *self, Py_ssize_t fill, Py_ssize_t want)
{
    Py_ssize_t take = self->part_len < want ? self->part_len : want;
    Py_buffer view;
    if (PyObject_GetBuffer(self->part, &view, PyBUF_SIMPLE) < 0) {
        return -1;
    }
    if (view.len < self->part_offset + take) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "a held payload shrank");
        return -1;
    }
    memcpy(PyByteArray_AS_STRING(self->out) + fill, (char *)view.buf + self->part_offset, take);
    PyBuffer_Release(&view);
    if (take < self->part_len) {
        self->part_offset += take;
        self->part_len -= take;
    }
    else {
        Py_CLEAR(self->part);
        self->part_offset = self->part_len = 0;
    }
    return take;
}

/* This tick's frame (a new reference), Py_None, or NULL with an exception set. */
static PyObject *
play(JitterCore *self)
{
    Py_ssize_t size = self->frame_bytes;
    if (self->waiting) {
        long long buffered = self->fill + self->held_bytes + part_length(self);
        if (buffered < (long long)(self->target_frames + 1) * size &&
            (!self->held_bytes || self->waited < self->target_frames)) {
            self->waited += self->held_bytes ? 1 : 0;
            miss(self);
            Py_RETURN_NONE;
        }
        self->waiting = 0;
        self->waited = 0;
        if (self->credit && !self->on_arrival && present(self, self->cursor)) {
            grow(self);
        }
    }
    Py_ssize_t fill = self->fill;
    while (fill < size) {
        if (self->part != NULL) {
            Py_ssize_t took = copy_part(self, fill, size - fill);
            if (took < 0) {
                return NULL;
            }
            fill += took;
            continue;
        }
        int slot = (int)(self->cursor & SLOT_MASK);
        if (present(self, self->cursor)) {
            if ((!self->has_expected_ts || self->ts[slot] != self->expected_ts) &&
                self->size[slot] && gap_before(self, slot) * 2 >= size) {
                self->fill = fill; /* the sender paused (a digit, say): that time is heard */
                miss(self);
                Py_RETURN_NONE;
            }
            self->cursor += 1;
            self->fresh = 0;
            PyObject *payload;
            Py_ssize_t length = consume(self, slot, 1, &payload);
            if (!length) {
                Py_XDECREF(payload);
                continue; /* an event's sequence number */
            }
            if (fill == 0 && length == size) {
                if (played(self) < 0) {
                    Py_DECREF(payload);
                    return NULL;
                }
                return payload; /* the common case: one 20 ms packet, not copied */
            }
            self->part = payload;
            self->part_offset = 0;
            self->part_len = length;
            continue;
        }
        if (!self->held) {
            self->fill = fill;
            self->waiting = 1;
            self->counters[C_UNDERRUNS] += 1;
            miss(self);
            Py_RETURN_NONE;
        }
        if (uncovered(self) * 2 >= size) {
            self->fill = fill; /* audio is missing here: conceal, the packet may still come */
            miss(self);
            Py_RETURN_NONE;
        }
        while (!present(self, self->cursor)) {
            give_up(self, (int)(self->cursor & SLOT_MASK), self->cursor);
            self->cursor += 1;
        }
    }
    self->fill = 0;
    if (played(self) < 0) {
        return NULL;
    }
    return Py_NewRef(self->out_view);
}

static int
ready(JitterCore *self)
{
    if (!self->has_ssrc || self->fill) {
        return 0;
    }
    Py_ssize_t size = self->frame_bytes;
    long long need = (long long)(self->target_frames + 1) * size;
    long long have = part_length(self);
    char has_expected = self->has_expected_ts;
    long long expected = self->expected_ts;
    long long extended = self->cursor;
    if (!have && !present(self, extended)) {
        if (!self->held || uncovered(self) * 2 >= size) {
            return 0; /* audio missing and not concealed yet: its deadline decides */
        }
        while (!present(self, extended)) {
            extended += 1;
        }
        has_expected = 0;
    }
    while (have < need) {
        int slot = (int)(extended & SLOT_MASK);
        if (!present(self, extended)) {
            return 0;
        }
        if (self->size[slot]) {
            long long timestamp = self->ts[slot];
            if (has_expected && timestamp != expected) {
                return 0; /* a gap: the tick conceals it if the audio has not come */
            }
            expected = (timestamp + self->size[slot]) & 0xFFFFFFFFLL;
            has_expected = 1;
            have += self->size[slot];
        }
        extended += 1;
    }
    return 1;
}

/* -- the type ----------------------------------------------------------------------- */

static PyObject *
JitterCore_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    JitterCore *self = (JitterCore *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    for (int slot = 0; slot < SLOTS; slot++) {
        self->seq[slot] = -1;
    }
    return (PyObject *)self;
}

static int
JitterCore_init(JitterCore *self, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"min_frames", "max_frames",      "frame_bytes", "clock_rate",
                               "catch_up_frames", "quiet", "on_arrival", NULL};
    Py_ssize_t min_frames = 0, max_frames = 3, frame_bytes = 160, clock_rate = 8000;
    Py_ssize_t catch_up_frames = 5;
    PyObject *quiet = Py_None;
    int on_arrival = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|$nnnnnOp:JitterCore", keywords,
                                     &min_frames, &max_frames, &frame_bytes, &clock_rate,
                                     &catch_up_frames, &quiet, &on_arrival)) {
        return -1;
    }
    if (max_frames < 1 || !(0 <= min_frames && min_frames <= max_frames)) {
        PyErr_SetString(PyExc_ValueError,
                        "need 0 <= min_frames <= max_frames and max_frames >= 1");
        return -1;
    }
    if (frame_bytes < 1) {
        PyErr_SetString(PyExc_ValueError, "need frame_bytes >= 1");
        return -1;
    }
    PyObject *out = PyByteArray_FromStringAndSize(NULL, frame_bytes);
    if (out == NULL) {
        return -1;
    }
    memset(PyByteArray_AS_STRING(out), 0, frame_bytes);
    PyObject *out_view = PyMemoryView_FromObject(out);
    if (out_view == NULL) {
        Py_DECREF(out);
        return -1;
    }
    Py_XSETREF(self->out_view, out_view);
    Py_XSETREF(self->out, out);
    self->min_frames = min_frames;
    self->max_frames = max_frames;
    self->frame_bytes = frame_bytes;
    self->clock_rate = clock_rate;
    self->catch_up_frames = catch_up_frames;
    Py_XSETREF(self->quiet, quiet == Py_None ? NULL : Py_NewRef(quiet));
    self->on_arrival = (char)on_arrival;
    self->lead = 0;
    self->adapted = 0;
    memset(self->counters, 0, sizeof(self->counters));
    self->target_frames = min_frames;
    self->started = 0;
    memset(self->depth_histogram, 0, sizeof(self->depth_histogram));
    memset(self->target_histogram, 0, sizeof(self->target_histogram));
    self->depth_frames_sum = self->target_frames_sum = 0;
    for (int slot = 0; slot < SLOTS; slot++) {
        self->seq[slot] = -1;
        self->ts[slot] = 0;
        self->size[slot] = 0;
    }
    self->has_ssrc = 0;
    self->ssrc = 0;
    self->late_floor = 0;
    self->since_late = 0;
    clear_stream(self);
    return 0;
}

static int
JitterCore_traverse(JitterCore *self, visitproc visit, void *arg)
{
    Py_VISIT(self->quiet);
    Py_VISIT(self->part);
    for (int slot = 0; slot < SLOTS; slot++) {
        Py_VISIT(self->payload[slot]);
    }
    return 0;
}

static int
JitterCore_clear(JitterCore *self)
{
    Py_CLEAR(self->quiet);
    Py_CLEAR(self->part);
    for (int slot = 0; slot < SLOTS; slot++) {
        Py_CLEAR(self->payload[slot]);
    }
    return 0;
}

static void
JitterCore_dealloc(JitterCore *self)
{
    PyObject_GC_UnTrack(self);
    JitterCore_clear(self);
    Py_CLEAR(self->out_view);
    Py_CLEAR(self->out);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int
as_long_long(PyObject *value, long long *out)
{
    *out = PyLong_AsLongLong(value);
    return *out == -1 && PyErr_Occurred() ? -1 : 0;
}

/* push(), once its arguments are C values: also called by RtpReceiver (_rtp_core.c) for
 * each audio packet, without a Python call in between. ``core`` is a JitterCore. */
void
trunkline_jitter_push(PyObject *core, long long ssrc, long long sequence, long long timestamp,
                      PyObject *payload, Py_ssize_t size, double arrival)
{
    JitterCore *self = (JitterCore *)core;
    if (!self->has_ssrc || ssrc != self->ssrc) {
        restart(self, ssrc, sequence);
    }
    long long extended = extend(self, sequence);
    long long ahead = extended - self->cursor;
    if (ahead < 0) {
        if (-ahead > MAX_SEQUENCE_JUMP) {
            restart(self, ssrc, sequence);
            extended = self->cursor;
            ahead = 0;
        }
        else if (self->fresh && -ahead < SLOTS - (self->highest - self->cursor)) {
            self->cursor = extended; /* an earlier packet of a stream not yet played from */
            ahead = 0;
        }
        else {
            too_late(self, extended);
            return;
        }
    }
    else if (ahead > MAX_SEQUENCE_JUMP) {
        restart(self, ssrc, sequence);
        extended = self->cursor;
        ahead = 0;
    }
    int slot = (int)(extended & SLOT_MASK);
    if (self->seq[slot] == extended && self->state[slot] == SLOT_HELD) {
        self->counters[C_DUPLICATE] += 1;
        return;
    }
    if (ahead >= SLOTS) {
        drop_until(self, extended - SLOTS + 1);
    }
    if (self->has_last_ts) { /* RFC 3550 §6.4.1, J += (|D| - J) / 16 */
        long long spacing = (timestamp - self->last_ts) & 0xFFFFFFFFLL;
        if (spacing >= 0x80000000LL) {
            spacing -= 0x100000000LL;
        }
        double change =
            fabs((arrival - self->last_arrival) * (double)self->clock_rate - (double)spacing);
        if (change < MAX_GAP_SAMPLES) { /* not a timestamp jump */
            self->jitter += (change - self->jitter) / 16;
        }
    }
    self->has_last_ts = 1;
    self->last_ts = timestamp;
    self->last_arrival = arrival;
    hold(self, slot, extended, timestamp, payload, size);
    long long limit = (long long)(self->max_frames + 1 + self->catch_up_frames) * self->frame_bytes;
    while (self->held_bytes > limit) {
        drop_oldest(self);
    }
}

static PyObject *
JitterCore_push(JitterCore *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 5) {
        PyErr_Format(PyExc_TypeError,
                     "push(ssrc, sequence, timestamp, payload, arrival) takes 5 arguments "
                     "(%zd given)",
                     nargs);
        return NULL;
    }
    long long ssrc, sequence, timestamp;
    if (as_long_long(args[0], &ssrc) < 0 || as_long_long(args[1], &sequence) < 0 ||
        as_long_long(args[2], &timestamp) < 0) {
        return NULL;
    }
    PyObject *payload = args[3];
    Py_ssize_t size;
    if (PyMemoryView_Check(payload)) {
        size = PyMemoryView_GET_BUFFER(payload)->len;
    }
    else {
        Py_buffer view;
        if (PyObject_GetBuffer(payload, &view, PyBUF_SIMPLE) < 0) {
            return NULL;
        }
        size = view.len;
        PyBuffer_Release(&view);
    }
    double arrival = PyFloat_AsDouble(args[4]);
    if (arrival == -1.0 && PyErr_Occurred()) {
        return NULL;
    }
    trunkline_jitter_push((PyObject *)self, ssrc, sequence, timestamp, payload, size, arrival);
    Py_RETURN_NONE;
}

static PyObject *
JitterCore_push_event(JitterCore *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "push_event(ssrc, sequence) takes 2 arguments (%zd given)",
                     nargs);
        return NULL;
    }
    long long ssrc, sequence;
    if (as_long_long(args[0], &ssrc) < 0 || as_long_long(args[1], &sequence) < 0) {
        return NULL;
    }
    if (!self->has_ssrc || ssrc != self->ssrc) {
        Py_RETURN_NONE; /* events never start or restart the audio stream */
    }
    long long extended = extend(self, sequence);
    long long ahead = extended - self->cursor;
    int slot = (int)(extended & SLOT_MASK);
    if (ahead < 0 || ahead >= SLOTS || self->seq[slot] == extended) {
        Py_RETURN_NONE;
    }
    hold(self, slot, extended, 0, empty_payload, 0);
    Py_RETURN_NONE;
}

static PyObject *
JitterCore_pull(JitterCore *self, PyObject *Py_UNUSED(ignored))
{
    if (!self->has_ssrc) {
        Py_RETURN_NONE;
    }
    if (self->adapted) {
        self->adapted = 0; /* this period's adaptation ran at an arrival */
    }
    else {
        adapt(self);
    }
    return play(self);
}

static PyObject *
JitterCore_pull_on_arrival(JitterCore *self, PyObject *Py_UNUSED(ignored))
{
    if (self->lead >= MAX_LEAD_FRAMES || !self->has_ssrc) {
        Py_RETURN_NONE;
    }
    if (!self->adapted) {
        adapt(self); /* once per period: the target this frame is judged by */
        self->adapted = 1;
    }
    if (!ready(self)) {
        Py_RETURN_NONE;
    }
    self->adapted = 0;
    int starting = !self->started;
    PyObject *frame = play(self);
    if (frame != NULL && frame != Py_None) {
        self->lead += 1 + (starting ? START_LEAD_FRAMES : 0);
    }
    return frame;
}

static PyObject *
JitterCore_due(JitterCore *self, PyObject *Py_UNUSED(ignored))
{
    if (self->lead) {
        self->lead -= 1;
        Py_RETURN_FALSE;
    }
    Py_RETURN_TRUE;
}

static PyObject *
histogram_list(const long long *buckets)
{
    PyObject *list = PyList_New(HISTOGRAM_BUCKETS);
    if (list == NULL) {
        return NULL;
    }
    for (int i = 0; i < HISTOGRAM_BUCKETS; i++) {
        PyObject *count = PyLong_FromLongLong(buckets[i]);
        if (count == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, count);
    }
    return list;
}

static PyObject *
JitterCore_counter_tuple(JitterCore *self, PyObject *Py_UNUSED(ignored))
{
    const long long *c = self->counters;
    return Py_BuildValue("(LLLLLLL)", c[C_LATE], c[C_DUPLICATE], c[C_OVERFLOW], c[C_SHRUNK],
                         c[C_LOST], c[C_UNDERRUNS], c[C_RESETS]);
}

static PyObject *
JitterCore_get_depth_histogram(JitterCore *self, void *closure)
{
    return histogram_list(self->depth_histogram);
}

static PyObject *
JitterCore_get_target_histogram(JitterCore *self, void *closure)
{
    return histogram_list(self->target_histogram);
}

static PyObject *
JitterCore_get_depth_frames(JitterCore *self, void *closure)
{
    double buffered = (double)(self->held_bytes + part_length(self) + self->fill);
    return PyFloat_FromDouble(buffered / (double)self->frame_bytes);
}

static PyObject *
JitterCore_get_jitter(JitterCore *self, void *closure)
{
    return PyFloat_FromDouble(self->jitter);
}

static PyMethodDef JitterCore_methods[] = {
    {"push", (PyCFunction)(void (*)(void))JitterCore_push, METH_FASTCALL,
     "push(ssrc, sequence, timestamp, payload, arrival): one audio packet"},
    {"push_event", (PyCFunction)(void (*)(void))JitterCore_push_event, METH_FASTCALL,
     "push_event(ssrc, sequence): an RFC 4733 event packet's sequence number"},
    {"pull", (PyCFunction)JitterCore_pull, METH_NOARGS,
     "pull() -> this tick's 20 ms frame, or None"},
    {"pull_on_arrival", (PyCFunction)JitterCore_pull_on_arrival, METH_NOARGS,
     "pull_on_arrival() -> the next frame now if it may go on arrival, or None"},
    {"due", (PyCFunction)JitterCore_due, METH_NOARGS,
     "due() -> whether this period's frame is still to be pulled"},
    {"counter_tuple", (PyCFunction)JitterCore_counter_tuple, METH_NOARGS,
     "counter_tuple() -> (late, duplicate, overflow, shrunk, lost, underruns, resets)"},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef JitterCore_members[] = {
    {"min_frames", T_PYSSIZET, offsetof(JitterCore, min_frames), READONLY, NULL},
    {"max_frames", T_PYSSIZET, offsetof(JitterCore, max_frames), READONLY, NULL},
    {"frame_bytes", T_PYSSIZET, offsetof(JitterCore, frame_bytes), READONLY, NULL},
    {"clock_rate", T_PYSSIZET, offsetof(JitterCore, clock_rate), READONLY, NULL},
    {"catch_up_frames", T_PYSSIZET, offsetof(JitterCore, catch_up_frames), READONLY, NULL},
    {"on_arrival", T_BOOL, offsetof(JitterCore, on_arrival), READONLY, NULL},
    {"started", T_BOOL, offsetof(JitterCore, started), READONLY, NULL},
    {"target_frames", T_PYSSIZET, offsetof(JitterCore, target_frames), READONLY, NULL},
    {"depth_frames_sum", T_LONGLONG, offsetof(JitterCore, depth_frames_sum), READONLY, NULL},
    {"target_frames_sum", T_LONGLONG, offsetof(JitterCore, target_frames_sum), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyGetSetDef JitterCore_getset[] = {
    {"depth_histogram", (getter)JitterCore_get_depth_histogram, NULL,
     "frames buffered after each frame played, by bucket", NULL},
    {"target_histogram", (getter)JitterCore_get_target_histogram, NULL,
     "the target depth at each frame played, by bucket", NULL},
    {"depth_frames", (getter)JitterCore_get_depth_frames, NULL,
     "audio buffered and not yet played, in frames", NULL},
    {"jitter", (getter)JitterCore_get_jitter, NULL,
     "the interarrival jitter estimate, in timestamp units", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject JitterCoreType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "trunkline._speedups.JitterCore",
    .tp_basicsize = sizeof(JitterCore),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "One call's inbound audio, re-ordered and paced (the C core of JitterBuffer).",
    .tp_new = JitterCore_new,
    .tp_init = (initproc)JitterCore_init,
    .tp_dealloc = (destructor)JitterCore_dealloc,
    .tp_traverse = (traverseproc)JitterCore_traverse,
    .tp_clear = (inquiry)JitterCore_clear,
    .tp_methods = JitterCore_methods,
    .tp_members = JitterCore_members,
    .tp_getset = JitterCore_getset,
};

int
trunkline_is_jitter_core(PyObject *object)
{
    return PyObject_TypeCheck(object, &JitterCoreType);
}

int
trunkline_add_jitter_core(PyObject *module)
{
    if (empty_payload == NULL) {
        empty_payload = PyMemoryView_FromMemory("", 0, PyBUF_READ);
        if (empty_payload == NULL) {
            return -1;
        }
    }
    if (PyType_Ready(&JitterCoreType) < 0) {
        return -1;
    }
    Py_INCREF(&JitterCoreType);
    if (PyModule_AddObject(module, "JitterCore", (PyObject *)&JitterCoreType) < 0) {
        Py_DECREF(&JitterCoreType);
        return -1;
    }
    return 0;
}

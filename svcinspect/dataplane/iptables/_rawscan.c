/* RawScan: what the live reader asks of a save command's output, read from its
 * bytes in the thread that drains the pipe, without the GIL (part of the
 * compiled scanner ``_scan``; tests/test_rawscan.py holds its reference in
 * Python and compares the two).
 *
 *   scan = RawScan()
 *   scan.read(fd, size) -> bytes   os.read(fd, size) and then whatever else the
 *                                  pipe holds already (up to size), the bytes
 *                                  scanned in the same GIL-free window
 *   scan.feed(data)                scan bytes got some other way
 *   scan.result() -> (size, tally, missing, declared, nat tables)
 *
 * ``tally``: sources.command._tally_py of the whole text (as decoded with
 * "replace": every pattern is ASCII, and the decoder maps each ASCII byte to
 * itself and never into a replacement, so bytes and text hold the same
 * occurrences), or None when a line was longer than CARRY_MAX bytes.
 *
 * ``missing``: a superset of the jump targets (completeness._JUMP: " -j " or
 * " -g " then KUBE-[A-Za-z0-9_.-]+) of the nat table's rule lines that are not
 * chains of it: the targets on every line of the nat table that is not a
 * declaration, a comment, its header or COMMIT, less the names the table
 * declares (":NAME ..." lines, the name as parse._DECL reads it). None when
 * that cannot be said: a line too long, a declared name not ASCII, a second
 * nat table, too many distinct missing names. ``declared`` (how many distinct
 * names the nat table declares) lets the caller check that its parse saw the
 * same declarations. Bounded: the carry of a partial line is at most
 * CARRY_MAX bytes, the sets grow with the input only.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "_scan_shared.h"

#define CARRY_MAX (1 << 20)     /* a longer line: no answer (iptables-save lines are < 4 KiB) */
#define MISSING_MAX 65536       /* distinct missing targets kept; more: no answer */

typedef struct arena_block { struct arena_block *next; } arena_block;

typedef struct {
    char **keys;     /* slot -> name (in the arena) or NULL */
    Py_ssize_t *lens;
    size_t cap, used;
} nameset;

typedef struct {
    PyObject_HEAD
    /* the partial last line */
    char *carry;
    Py_ssize_t carry_len, carry_cap;
    int carry_broken;           /* a line went over CARRY_MAX: tally and missing unknown */
    Py_ssize_t size;            /* bytes scanned */
    int finished;
    save_tally_t tally;
    /* the nat table */
    int in_nat, nat_tables, jumps_ok;
    nameset declared, missing;
    char *arena;                /* the names of both sets, in blocks */
    Py_ssize_t arena_left;
    arena_block *blocks;        /* the arena's blocks, newest first (freed with the object) */
} RawScan;


static uint64_t rs_hash(const char *s, Py_ssize_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    return h;
}

/* The arena: the names' bytes, in blocks of 64 KiB (plain malloc: this runs
 * without the GIL), freed with the object. */
static char *rs_store(RawScan *self, const char *s, Py_ssize_t n)
{
    if (n > self->arena_left) {
        Py_ssize_t want = n + (Py_ssize_t)sizeof(arena_block) > (1 << 16) ? n + (Py_ssize_t)sizeof(arena_block)
                                                                          : (1 << 16);
        arena_block *b = malloc((size_t)want);
        if (b == NULL)
            return NULL;
        b->next = self->blocks;
        self->blocks = b;
        self->arena = (char *)(b + 1);
        self->arena_left = want - (Py_ssize_t)sizeof(arena_block);
    }
    char *at = self->arena;
    memcpy(at, s, (size_t)n);
    self->arena += n;
    self->arena_left -= n;
    return at;
}

static void rs_free_arena(RawScan *self)
{
    arena_block *b = self->blocks;
    while (b != NULL) {
        arena_block *next = b->next;
        free(b);
        b = next;
    }
    self->blocks = NULL;
}

/* 1 found, 0 not. */
static int ns_has(const nameset *set, const char *s, Py_ssize_t n, uint64_t h)
{
    if (set->cap == 0)
        return 0;
    size_t mask = set->cap - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        if (set->keys[i] == NULL)
            return 0;
        if (set->lens[i] == n && memcmp(set->keys[i], s, (size_t)n) == 0)
            return 1;
    }
}

static int ns_grow(nameset *set)
{
    size_t cap = set->cap ? set->cap * 2 : 1024;
    char **keys = calloc(cap, sizeof(char *));
    Py_ssize_t *lens = calloc(cap, sizeof(Py_ssize_t));
    if (keys == NULL || lens == NULL) {
        free(keys);
        free(lens);
        return -1;
    }
    for (size_t j = 0; j < set->cap; j++) {
        if (set->keys[j] == NULL)
            continue;
        size_t i = (size_t)rs_hash(set->keys[j], set->lens[j]) & (cap - 1);
        while (keys[i] != NULL)
            i = (i + 1) & (cap - 1);
        keys[i] = set->keys[j];
        lens[i] = set->lens[j];
    }
    free(set->keys);
    free(set->lens);
    set->keys = keys;
    set->lens = lens;
    set->cap = cap;
    return 0;
}

/* 1 added, 0 there already, -1 out of memory. */
static int ns_add(RawScan *self, nameset *set, const char *s, Py_ssize_t n, uint64_t h)
{
    if (ns_has(set, s, n, h))
        return 0;
    if ((set->used + 1) * 2 > set->cap && ns_grow(set) < 0)
        return -1;
    char *copy = rs_store(self, s, n);
    if (copy == NULL)
        return -1;
    size_t mask = set->cap - 1;
    size_t i = (size_t)h & mask;
    while (set->keys[i] != NULL)
        i = (i + 1) & mask;
    set->keys[i] = copy;
    set->lens[i] = n;
    set->used++;
    return 1;
}

static void ns_free(nameset *set)
{
    free(set->keys);
    free(set->lens);
    set->keys = NULL;
    set->lens = NULL;
    set->cap = set->used = 0;
}

/* sources.command._tally_py's counts for one line (no "\n" in it; every
 * pattern lies within a line, so the sums are the whole text's). */
static void rs_tally(RawScan *self, const char *s, Py_ssize_t n)
{
    if (n >= 6 && memcmp(s, ":KUBE-", 6) == 0)
        self->tally.chains++;  /* "\n:KUBE-", or the text's start */
    if (n >= 1 && s[0] == '*')
        self->tally.tables = 1;
    Py_ssize_t rules_from = 0, i = 0;
#if defined(__SSE2__)
    /* 16 positions at a time: only where "-A " or ":K" begins can the step do
     * anything, so only those are stepped, in order. */
    const __m128i dash = _mm_set1_epi8('-'), big_a = _mm_set1_epi8('A'), blank = _mm_set1_epi8(' ');
    const __m128i colon = _mm_set1_epi8(':'), big_k = _mm_set1_epi8('K');
    for (; i + 18 <= n; i += 16) {
        __m128i v0 = _mm_loadu_si128((const __m128i *)(s + i));
        __m128i v1 = _mm_loadu_si128((const __m128i *)(s + i + 1));
        __m128i v2 = _mm_loadu_si128((const __m128i *)(s + i + 2));
        unsigned m = (unsigned)_mm_movemask_epi8(_mm_and_si128(
            _mm_and_si128(_mm_cmpeq_epi8(v0, dash), _mm_cmpeq_epi8(v1, big_a)), _mm_cmpeq_epi8(v2, blank)));
        if (!(self->tally.canary && self->tally.kube_proxy))
            m |= (unsigned)_mm_movemask_epi8(_mm_and_si128(_mm_cmpeq_epi8(v0, colon), _mm_cmpeq_epi8(v1, big_k)));
        while (m) {
            save_tally_step(&self->tally, s, n, i + __builtin_ctz(m), &rules_from);
            m &= m - 1;
        }
    }
#endif
    for (; i < n; i++)
        save_tally_step(&self->tally, s, n, i, &rules_from);
}

/* The line without surrounding whitespace (str.strip within ASCII). */
static void rs_strip(const char *s, Py_ssize_t n, Py_ssize_t *a, Py_ssize_t *e)
{
    Py_ssize_t i = 0, j = n;
    while (i < j && is_space((unsigned char)s[i]))
        i++;
    while (j > i && is_space((unsigned char)s[j - 1]))
        j--;
    *a = i;
    *e = j;
}

/* The targets of one rule line of the nat table, less the declared names. */
static int rs_targets(RawScan *self, const char *s, Py_ssize_t n)
{
    Py_ssize_t i = 0;
    while (i < n) {
        const char *p = memchr(s + i, 'K', (size_t)(n - i));
        if (p == NULL)
            break;
        Py_ssize_t at = (Py_ssize_t)(p - s);
        Py_ssize_t e = jump_target_end(s, n, at);
        if (e >= 0) {
            const char *name = s + at;
            Py_ssize_t len = e - at;
            uint64_t h = rs_hash(name, len);
            if (!ns_has(&self->declared, name, len, h)) {
                int added = ns_add(self, &self->missing, name, len, h);
                if (added < 0)
                    return -1;
                if (self->missing.used > MISSING_MAX)
                    self->jumps_ok = 0;
            }
            i = e;
        } else {
            i = (Py_ssize_t)(p - s) + 1;
        }
    }
    return 0;
}

/* One whole line (without its "\n"). -1: out of memory. */
static int rs_line(RawScan *self, const char *s, Py_ssize_t n)
{
    rs_tally(self, s, n);
    Py_ssize_t a, e;
    rs_strip(s, n, &a, &e);
    if (a < e && s[a] == '*') {
        Py_ssize_t na = a + 1, ne = e;
        while (na < ne && is_space((unsigned char)s[na]))
            na++;
        self->in_nat = ne - na == 3 && memcmp(s + na, "nat", 3) == 0;
        if (self->in_nat && ++self->nat_tables > 1)
            self->jumps_ok = 0;
        return 0;
    }
    if (!self->in_nat || !self->jumps_ok)
        return 0;
    if (e - a == 6 && memcmp(s + a, "COMMIT", 6) == 0) {
        self->in_nat = 0;
        return 0;
    }
    if (a < e && s[a] == '#')
        return 0;
    Py_ssize_t t = 0;
    while (t < n && (s[t] == ' ' || s[t] == '\t'))
        t++;
    if (t < n && s[t] == ':') {  /* a declaration: ^[ \t]*:(\S*) */
        Py_ssize_t b = t + 1, f = t + 1;
        while (f < n && !is_space((unsigned char)s[f])) {
            if ((unsigned char)s[f] >= 0x80) {
                self->jumps_ok = 0;
                return 0;
            }
            f++;
        }
        if (f > b && ns_add(self, &self->declared, s + b, f - b, rs_hash(s + b, f - b)) < 0)
            return -1;
        return 0;
    }
    return rs_targets(self, s, n);
}

/* Scan data[0:n] (no GIL needed). -1: out of memory. A line (its bytes
 * without the "\n") longer than CARRY_MAX, however it was cut, ends the scan:
 * no answer (carry_broken). */
static int rs_scan(RawScan *self, const char *data, Py_ssize_t n)
{
    self->size += n;
    if (self->carry_broken)
        return 0;
    Py_ssize_t i = 0;
    if (self->carry_len > 0) {
        const char *nl = memchr(data, '\n', (size_t)n);
        Py_ssize_t upto = nl ? (Py_ssize_t)(nl - data) : n;
        if (self->carry_len + upto > CARRY_MAX) {
            self->carry_broken = 1;
            self->carry_len = 0;
            return 0;
        }
        if (self->carry_len + upto > self->carry_cap) {
            Py_ssize_t cap = (self->carry_len + upto) * 2;
            char *c = realloc(self->carry, (size_t)cap);
            if (c == NULL)
                return -1;
            self->carry = c;
            self->carry_cap = cap;
        }
        memcpy(self->carry + self->carry_len, data, (size_t)upto);
        self->carry_len += upto;
        if (nl == NULL)
            return 0;
        if (rs_line(self, self->carry, self->carry_len) < 0)
            return -1;
        self->carry_len = 0;
        i = upto + 1;
    }
    while (i < n) {
        const char *nl = memchr(data + i, '\n', (size_t)(n - i));
        Py_ssize_t e = nl ? (Py_ssize_t)(nl - data) : n;
        if (e - i > CARRY_MAX) {
            self->carry_broken = 1;
            return 0;
        }
        if (nl == NULL) {  /* the partial last line: kept for the next piece */
            Py_ssize_t rest = n - i;
            if (rest > self->carry_cap) {
                char *c = realloc(self->carry, (size_t)rest * 2);
                if (c == NULL)
                    return -1;
                self->carry = c;
                self->carry_cap = rest * 2;
            }
            memcpy(self->carry, data + i, (size_t)rest);
            self->carry_len = rest;
            return 0;
        }
        if (rs_line(self, data + i, e - i) < 0)
            return -1;
        i = e + 1;
    }
    return 0;
}

static PyObject *rs_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    if (!_PyArg_NoPositional("RawScan", args) || !_PyArg_NoKeywords("RawScan", kwds))
        return NULL;
    RawScan *self = (RawScan *)type->tp_alloc(type, 0);
    if (self != NULL)
        self->jumps_ok = 1;
    return (PyObject *)self;
}

static void rs_dealloc(RawScan *self)
{
    free(self->carry);
    ns_free(&self->declared);
    ns_free(&self->missing);
    rs_free_arena(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *rs_feed(RawScan *self, PyObject *data)
{
    Py_buffer view;
    if (self->finished) {
        PyErr_SetString(PyExc_ValueError, "RawScan: fed after result()");
        return NULL;
    }
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    int bad;
    Py_BEGIN_ALLOW_THREADS
    bad = rs_scan(self, view.buf, view.len);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    if (bad)
        return PyErr_NoMemory();
    Py_RETURN_NONE;
}

/* read(fd, size): os.read(fd, size), and the bytes scanned before the GIL is taken back. */
static PyObject *rs_read(RawScan *self, PyObject *args)
{
    int fd;
    Py_ssize_t size;
    if (!PyArg_ParseTuple(args, "in:read", &fd, &size))
        return NULL;
    if (size < 0) {
        PyErr_SetString(PyExc_ValueError, "read: negative size");
        return NULL;
    }
    if (self->finished) {
        PyErr_SetString(PyExc_ValueError, "RawScan: read after result()");
        return NULL;
    }
    PyObject *buf = PyBytes_FromStringAndSize(NULL, size);
    if (buf == NULL)
        return NULL;
    Py_ssize_t got;
    int err, bad = 0;
    for (;;) {
        Py_BEGIN_ALLOW_THREADS
        got = read(fd, PyBytes_AS_STRING(buf), (size_t)size);
        err = errno;
        if (got > 0)
            bad = rs_scan(self, PyBytes_AS_STRING(buf), got);
        /* Then whatever else the pipe holds already (poll with no wait: never
         * blocks), up to ``size``: fewer, larger pieces for the caller, each one
         * a GIL hand-over and a call into the stream less. */
        while (got > 0 && !bad && got < size) {
            struct pollfd p = {fd, POLLIN, 0};
            if (poll(&p, 1, 0) != 1 || !(p.revents & POLLIN))
                break;
            Py_ssize_t more = read(fd, PyBytes_AS_STRING(buf) + got, (size_t)(size - got));
            if (more <= 0)  /* the end, or an error the next call reports */
                break;
            bad = rs_scan(self, PyBytes_AS_STRING(buf) + got, more);
            got += more;
        }
        Py_END_ALLOW_THREADS
        if (got < 0 && err == EINTR) {
            if (PyErr_CheckSignals() < 0) {
                Py_DECREF(buf);
                return NULL;
            }
            continue;
        }
        break;
    }
    if (got < 0) {
        Py_DECREF(buf);
        errno = err;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    if (bad) {
        Py_DECREF(buf);
        return PyErr_NoMemory();
    }
    if (got != size && _PyBytes_Resize(&buf, got) < 0)
        return NULL;
    return buf;
}

static PyObject *rs_result(RawScan *self, PyObject *unused)
{
    if (!self->finished) {
        self->finished = 1;
        if (self->carry_len > 0 && !self->carry_broken && rs_line(self, self->carry, self->carry_len) < 0)
            return PyErr_NoMemory();
        self->carry_len = 0;
    }
    PyObject *tally, *missing;
    if (self->carry_broken) {
        tally = Py_NewRef(Py_None);
    } else {
        const save_tally_t *t = &self->tally;
        tally = Py_BuildValue("(nnnOOO)", t->rules, t->chains, t->total, t->canary ? Py_True : Py_False,
                              t->kube_proxy ? Py_True : Py_False, t->tables ? Py_True : Py_False);
        if (tally == NULL)
            return NULL;
    }
    if (self->carry_broken || !self->jumps_ok) {
        missing = Py_NewRef(Py_None);
    } else {
        missing = PySet_New(NULL);
        if (missing == NULL) {
            Py_DECREF(tally);
            return NULL;
        }
        for (size_t i = 0; i < self->missing.cap; i++) {
            if (self->missing.keys[i] == NULL)
                continue;
            PyObject *name = PyUnicode_DecodeASCII(self->missing.keys[i], self->missing.lens[i], "strict");
            if (name == NULL || PySet_Add(missing, name) < 0) {
                Py_XDECREF(name);
                Py_DECREF(missing);
                Py_DECREF(tally);
                return NULL;
            }
            Py_DECREF(name);
        }
    }
    return Py_BuildValue("(nNNni)", self->size, tally, missing, (Py_ssize_t)self->declared.used, self->nat_tables);
}

static PyMethodDef rs_methods[] = {
    {"read", (PyCFunction)rs_read, METH_VARARGS, "os.read(fd, size), the bytes scanned without the GIL."},
    {"feed", (PyCFunction)rs_feed, METH_O, "scan bytes (without the GIL)."},
    {"result", (PyCFunction)rs_result, METH_NOARGS,
     "(bytes scanned, tally or None, missing jump targets or None, declared nat chains, nat tables)."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject RawScanType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "svcinspect.dataplane.iptables._scan.RawScan",
    .tp_basicsize = sizeof(RawScan),
    .tp_dealloc = (destructor)rs_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A save command's output scanned from its bytes without the GIL (see _rawscan.c).",
    .tp_methods = rs_methods,
    .tp_new = rs_new,
};

int rawscan_add(PyObject *module)
{
    if (PyType_Ready(&RawScanType) < 0)
        return -1;
    Py_INCREF(&RawScanType);
    if (PyModule_AddObject(module, "RawScan", (PyObject *)&RawScanType) < 0) {
        Py_DECREF(&RawScanType);
        return -1;
    }
    return 0;
}

/* Optional compiled edge pass for svcinspect.graph (the pure-Python functions
 * graph._edge_pass and graph._summary_pass are the reference and the fallback;
 * tests/test_perf_edges.py compares the two).
 *
 *   edges(names, segs)   -> ({chain: (targets...)}, [slow chains])
 *   summary(names, segs, known, builtins, layers)
 *                        -> (unreferenced, declared, down, [slow chains])
 *
 * ``names`` is a list of chain names, ``segs`` the list of their segment lists
 * as the parser cut them (``[(first line, block)]``, one entry per run of
 * rules). A chain is answered when it is one ASCII block of whole lines
 * without a tab, "--jump" or "--goto", and every line's first " -j " or " -g "
 * is followed by a name that does not start with "-" and by a tail with no
 * quote and no other " -j "/" -g ". Any other chain goes to the slow list, in
 * order, for the general reader (that changes time, never answers).
 *
 * ``edges`` maps each answered chain to the tuple of its targets, each once,
 * in first-seen order. ``summary`` answers the graph questions of check
 * without a str per rule: the names no answered chain other than themselves
 * jumps to; whether every target is a name or in ``known``; and whether every
 * jump to a name goes from a lower rank to a strictly higher one, the rank of
 * a name being 0 when it is in ``builtins``, else that of the first (prefix,
 * rank) of ``layers`` it starts with, else 1.5 for "KUBE-" and -1 otherwise.
 *
 * ``line_counts(text, needle, absent)`` counts lines for check's comment check
 * (see check._line_counts).
 *
 * Every scan is a bounded loop over a block's bytes with explicit lengths: no
 * recursion; summary's own memory (a hash table of the names' bytes, two
 * arrays of one entry per chain) is freed before it returns.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

/* The block of a chain answered by the fast pass, or NULL (segs not one
 * (int, str) run, not ASCII, not ending in a newline). Borrowed. */
static PyObject *single_block(PyObject *segs)
{
    PyObject *seg;
    if (PyList_Check(segs) && PyList_GET_SIZE(segs) == 1)
        seg = PyList_GET_ITEM(segs, 0);
    else if (PyTuple_Check(segs) && PyTuple_GET_SIZE(segs) == 1)
        seg = PyTuple_GET_ITEM(segs, 0);
    else
        return NULL;
    if (!PyTuple_Check(seg) || PyTuple_GET_SIZE(seg) != 2)
        return NULL;
    PyObject *block = PyTuple_GET_ITEM(seg, 1);
    if (!PyUnicode_Check(block) || PyUnicode_READY(block) < 0 || !PyUnicode_IS_ASCII(block))
        return NULL;
    Py_ssize_t n = PyUnicode_GET_LENGTH(block);
    if (n == 0 || ((const char *)PyUnicode_DATA(block))[n - 1] != '\n')
        return NULL;
    return block;
}

/* The last targets seen, by a hash of their bytes: most rules jump to a few
 * names (KUBE-MARK-MASQ, DNAT), read without making a str to look them up.
 * Borrowed from ``cache``, which outlives it. */
#define RECENT 64

static size_t bytes_hash(const char *s, Py_ssize_t len)
{
    size_t h = 2166136261u;  /* FNV-1a */
    for (Py_ssize_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h & (RECENT - 1);
}

/* Append the target s[0:len] to found, once: ``cache`` maps a name to one
 * shared str (the chain names, then every target seen). Returns 0, or -1
 * with an exception set. */
static int add_target(PyObject *cache, PyObject **recent, PyObject *found, const char *s, Py_ssize_t len)
{
    size_t slot = bytes_hash(s, len);
    PyObject *name = recent[slot];
    if (name == NULL || PyUnicode_GET_LENGTH(name) != len || memcmp(PyUnicode_DATA(name), s, (size_t)len) != 0) {
        PyObject *fresh = PyUnicode_DecodeASCII(s, len, NULL);
        if (fresh == NULL)
            return -1;
        name = PyDict_SetDefault(cache, fresh, fresh);  /* borrowed */
        Py_DECREF(fresh);
        if (name == NULL)
            return -1;
        /* a cached chain name that is not ASCII cannot equal ASCII bytes: only ASCII ones are kept */
        recent[slot] = PyUnicode_IS_ASCII(name) ? name : NULL;
    }
    Py_ssize_t k = PyList_GET_SIZE(found);
    for (Py_ssize_t j = 0; j < k; j++)  /* interned: identity is equality */
        if (PyList_GET_ITEM(found, j) == name)
            return 0;
    return PyList_Append(found, name);
}

/* The position of the next ``c`` in s[from:end], or -1; ``*cached`` keeps the
 * last answer (-1: none left, NOT_YET: search), so each letter of a line is
 * looked for with memchr once per hit: 'j' and 'g' are rare in rules. */
#define NOT_YET (-2)
static Py_ssize_t next_of(const char *s, char c, Py_ssize_t from, Py_ssize_t end, Py_ssize_t *cached)
{
    if (*cached == -1 || *cached >= from)
        return *cached;
    const char *p = from < end ? memchr(s + from, c, (size_t)(end - from)) : NULL;
    *cached = p == NULL ? -1 : (Py_ssize_t)(p - s);
    return *cached;
}

/* The target of the line s[i:end] as the fast pass reads it: 1 and its
 * bounds in *a, *b, or 0 when the pass declines the line. Every 'j' and 'g'
 * of the line is looked at: "--jump" or "--goto" declines; " -j " / " -g " is
 * a flag, and the line must hold exactly one (a second one would sit in the
 * tail after the first one's name); the name must not be empty or start with
 * "-", and no quote may follow it. */
static int line_target(const char *s, Py_ssize_t i, Py_ssize_t end, Py_ssize_t *a, Py_ssize_t *b)
{
    Py_ssize_t f = -1, nj = NOT_YET, ng = NOT_YET, k = i;
    for (;;) {
        Py_ssize_t j = next_of(s, 'j', k, end, &nj), g = next_of(s, 'g', k, end, &ng);
        k = j < 0 ? g : g < 0 ? j : j < g ? j : g;
        if (k < 0)
            break;
        if (k - 2 >= i && s[k - 2] == '-' && s[k - 1] == '-' && k + 4 <= end
            && memcmp(s + k + 1, s[k] == 'j' ? "ump" : "oto", 3) == 0)
            return 0;
        if (k - 2 >= i && s[k - 2] == ' ' && s[k - 1] == '-' && k + 1 < end && s[k + 1] == ' ') {
            if (f >= 0)
                return 0;
            f = k - 2;
        }
        k++;
    }
    if (f < 0)
        return 0;
    Py_ssize_t x = f + 4, y = x;
    while (y < end && s[y] != ' ')
        y++;
    if (y == x || s[x] == '-' || (y < end && memchr(s + y, '"', (size_t)(end - y)) != NULL))
        return 0;
    *a = x;
    *b = y;
    return 1;
}

/* The targets of one block (a list), or Py_None (borrowed, not answered), or NULL on error. */
static PyObject *block_targets(PyObject *cache, PyObject **recent, PyObject *block)
{
    const char *s = (const char *)PyUnicode_DATA(block);
    Py_ssize_t n = PyUnicode_GET_LENGTH(block);
    if (memchr(s, '\t', (size_t)n) != NULL)
        return Py_None;
    PyObject *found = PyList_New(0);
    if (found == NULL)
        return NULL;
    Py_ssize_t i = 0;
    while (i < n) {
        const char *nl = memchr(s + i, '\n', (size_t)(n - i));
        Py_ssize_t end = nl == NULL ? n : (Py_ssize_t)(nl - s);  /* the block ends in "\n": never NULL */
        Py_ssize_t a, b;
        if (!line_target(s, i, end, &a, &b))
            goto decline;
        if (add_target(cache, recent, found, s + a, b - a) < 0) {
            Py_DECREF(found);
            return NULL;
        }
        i = end + 1;
    }
    return found;
decline:
    Py_DECREF(found);
    return Py_None;
}

static PyObject *edges(PyObject *Py_UNUSED(self), PyObject *args)
{
    PyObject *names, *segs;
    if (!PyArg_ParseTuple(args, "O!O!:edges", &PyList_Type, &names, &PyList_Type, &segs))
        return NULL;
    Py_ssize_t count = PyList_GET_SIZE(names);
    if (PyList_GET_SIZE(segs) != count) {
        PyErr_SetString(PyExc_TypeError, "edges() takes two lists of the same length");
        return NULL;
    }
    for (Py_ssize_t c = 0; c < count; c++) {
        if (!PyUnicode_Check(PyList_GET_ITEM(names, c))) {
            PyErr_SetString(PyExc_TypeError, "edges() takes a list of str names");
            return NULL;
        }
    }
    PyObject *recent[RECENT] = {NULL};
    PyObject *cache = PyDict_New(), *out = PyDict_New(), *slow = PyList_New(0);
    if (cache == NULL || out == NULL || slow == NULL)
        goto fail;
    for (Py_ssize_t c = 0; c < count; c++) {
        PyObject *name = PyList_GET_ITEM(names, c);
        if (PyDict_SetDefault(cache, name, name) == NULL)
            goto fail;
    }
    for (Py_ssize_t c = 0; c < count; c++) {
        PyObject *name = PyList_GET_ITEM(names, c);
        PyObject *block = single_block(PyList_GET_ITEM(segs, c));
        PyObject *found = block == NULL ? Py_None : block_targets(cache, recent, block);
        if (found == NULL)
            goto fail;
        if (found == Py_None) {
            if (PyList_Append(slow, name) < 0)
                goto fail;
            continue;
        }
        PyObject *t = PyList_AsTuple(found);
        Py_DECREF(found);
        if (t == NULL || PyDict_SetItem(out, name, t) < 0) {
            Py_XDECREF(t);
            goto fail;
        }
        Py_DECREF(t);
    }
    Py_DECREF(cache);
    return Py_BuildValue("(NN)", out, slow);
fail:
    Py_XDECREF(cache);
    Py_XDECREF(out);
    Py_XDECREF(slow);
    return NULL;
}

/* *out = the rank of ``name``; returns 0, or -1 with an exception set. */
static int rank(PyObject *name, PyObject *builtins, PyObject *layers, double *out)
{
    int b = PySet_Contains(builtins, name);
    if (b < 0)
        return -1;
    *out = 0;
    if (b)
        return 0;
    Py_ssize_t n = PyUnicode_GET_LENGTH(name);
    int ascii = PyUnicode_IS_ASCII(name);
    const char *s = ascii ? (const char *)PyUnicode_DATA(name) : NULL;
    Py_ssize_t count = PyTuple_GET_SIZE(layers);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *layer = PyTuple_GET_ITEM(layers, i);
        PyObject *prefix = PyTuple_GET_ITEM(layer, 0);
        Py_ssize_t m = PyUnicode_GET_LENGTH(prefix);
        int hit;
        if (ascii && PyUnicode_IS_ASCII(prefix)) {
            hit = m <= n && memcmp(s, PyUnicode_DATA(prefix), (size_t)m) == 0;
        } else {
            Py_ssize_t r = PyUnicode_Tailmatch(name, prefix, 0, PY_SSIZE_T_MAX, -1);
            if (r < 0)
                return -1;
            hit = r > 0;
        }
        if (hit) {
            *out = PyFloat_AS_DOUBLE(PyTuple_GET_ITEM(layer, 1));
            return 0;
        }
    }
    if (ascii) {
        *out = n >= 5 && memcmp(s, "KUBE-", 5) == 0 ? 1.5 : -1;
        return 0;
    }
    PyObject *kube = PyUnicode_FromString("KUBE-");
    if (kube == NULL)
        return -1;
    Py_ssize_t r = PyUnicode_Tailmatch(name, kube, 0, PY_SSIZE_T_MAX, -1);
    Py_DECREF(kube);
    if (r < 0)
        return -1;
    *out = r > 0 ? 1.5 : -1;
    return 0;
}

/* An open-addressing table of names by their bytes: the chain names (kind
 * NAME, with their index and rank) and the known targets (kind KNOWN), so
 * that a target read from a rule is looked up without making a str. */
enum { EMPTY = 0, NAME = 1, KNOWN = 2 };

typedef struct {
    const char *s;
    Py_ssize_t len;
    Py_ssize_t index;
    double rank;
    int kind;
} slot_t;

typedef struct {
    slot_t *slots;
    size_t mask;
} table_t;

/* Python's own keyed bytes hash (SipHash, seeded per process): chain names
 * come from the input, and with a fixed hash (FNV) names made to collide in
 * the table's low bits made every lookup a walk of one long run (32768 such
 * names: 7 s instead of a fraction of one). For ASCII it equals hash(str). */
static size_t name_hash(const char *s, Py_ssize_t len)
{
    return (size_t)_Py_HashBytes(s, len);
}

static slot_t *lookup(table_t *t, const char *s, Py_ssize_t len)
{
    size_t i = name_hash(s, len) & t->mask;
    for (;;) {  /* the table is at most half full: an empty slot is always reached */
        slot_t *e = &t->slots[i];
        if (e->kind == EMPTY || (e->len == len && memcmp(e->s, s, (size_t)len) == 0))
            return e;
        i = (i + 1) & t->mask;
    }
}

/* summary(names, segs, known, builtins, layers)
 *     -> (unreferenced, declared, down, slow)
 *
 * The answers graph._summary_pass gives, from the chains ``edges`` answers
 * (the others are in ``slow``, in order, for the caller to add):
 * ``unreferenced``: the names, in order, that no answered chain other than
 * themselves jumps to; ``declared``: every target of an answered chain is in
 * ``names`` or ``known``; ``down``: every such jump to a name goes from a
 * lower rank to a strictly higher one (the rank: see the top of this file). */
static PyObject *summary(PyObject *Py_UNUSED(self), PyObject *args)
{
    PyObject *names, *segs, *known, *builtins, *layers;
    if (!PyArg_ParseTuple(args, "O!O!O!O!O!:summary", &PyList_Type, &names, &PyList_Type, &segs,
                          &PyFrozenSet_Type, &known, &PyFrozenSet_Type, &builtins, &PyTuple_Type, &layers))
        return NULL;
    Py_ssize_t count = PyList_GET_SIZE(names);
    if (PyList_GET_SIZE(segs) != count) {
        PyErr_SetString(PyExc_TypeError, "summary() takes two lists of the same length");
        return NULL;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(layers); i++) {
        PyObject *layer = PyTuple_GET_ITEM(layers, i);
        if (!PyTuple_Check(layer) || PyTuple_GET_SIZE(layer) != 2 || !PyUnicode_Check(PyTuple_GET_ITEM(layer, 0))
            || !PyFloat_Check(PyTuple_GET_ITEM(layer, 1))) {
            PyErr_SetString(PyExc_TypeError, "summary() takes layers as ((str prefix, float rank), ...)");
            return NULL;
        }
    }
    for (Py_ssize_t c = 0; c < count; c++) {
        if (!PyUnicode_Check(PyList_GET_ITEM(names, c))) {
            PyErr_SetString(PyExc_TypeError, "summary() takes a list of str names");
            return NULL;
        }
    }
    Py_ssize_t n_known = PySet_GET_SIZE(known);
    size_t size = 16;
    while (size < 2 * (size_t)(count + n_known) + 2)
        size <<= 1;
    table_t t = {PyMem_Calloc(size, sizeof(slot_t)), size - 1};
    double *ranks = PyMem_Calloc((size_t)count + 1, sizeof(double));
    char *referenced = PyMem_Calloc((size_t)count + 1, 1);
    Py_ssize_t cap = 64, *found = PyMem_Malloc(sizeof(Py_ssize_t) * 2 * 64);  /* (start, end) of each target */
    PyObject *unref = NULL, *slow = NULL;
    if (t.slots == NULL || ranks == NULL || referenced == NULL || found == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    for (Py_ssize_t c = 0; c < count; c++) {
        PyObject *name = PyList_GET_ITEM(names, c);
        if (rank(name, builtins, layers, &ranks[c]) < 0)
            goto fail;
        if (!PyUnicode_IS_ASCII(name))
            continue;  /* never the target of an ASCII block */
        const char *ns = (const char *)PyUnicode_DATA(name);
        slot_t *e = lookup(&t, ns, PyUnicode_GET_LENGTH(name));
        if (e->kind == EMPTY)
            *e = (slot_t){ns, PyUnicode_GET_LENGTH(name), c, ranks[c], NAME};
    }
    {
        PyObject *it = PyObject_GetIter(known), *k;
        if (it == NULL)
            goto fail;
        while ((k = PyIter_Next(it)) != NULL) {
            if (PyUnicode_Check(k) && PyUnicode_IS_ASCII(k)) {  /* (anything else cannot equal an ASCII target) */
                const char *ks = (const char *)PyUnicode_DATA(k);
                slot_t *e = lookup(&t, ks, PyUnicode_GET_LENGTH(k));
                if (e->kind == EMPTY)  /* the frozenset holds k: its bytes outlive the call */
                    *e = (slot_t){ks, PyUnicode_GET_LENGTH(k), -1, 0, KNOWN};
            }
            Py_DECREF(k);
        }
        Py_DECREF(it);
        if (PyErr_Occurred())
            goto fail;
    }
    slow = PyList_New(0);
    if (slow == NULL)
        goto fail;
    int declared = 1, down = 1;
    for (Py_ssize_t c = 0; c < count; c++) {
        PyObject *block = single_block(PyList_GET_ITEM(segs, c));
        int ok = block != NULL;
        Py_ssize_t n_found = 0;
        if (ok) {
            const char *s = (const char *)PyUnicode_DATA(block);
            Py_ssize_t n = PyUnicode_GET_LENGTH(block), i = 0;
            ok = memchr(s, '\t', (size_t)n) == NULL;
            /* The block's targets are only counted once all its lines are read. */
            while (ok && i < n) {
                const char *nl = memchr(s + i, '\n', (size_t)(n - i));
                Py_ssize_t end = nl == NULL ? n : (Py_ssize_t)(nl - s);
                Py_ssize_t a, b;
                ok = line_target(s, i, end, &a, &b);
                if (ok) {
                    if (n_found == cap) {
                        Py_ssize_t *grown = PyMem_Realloc(found, sizeof(Py_ssize_t) * 2 * (size_t)(cap *= 2));
                        if (grown == NULL) {
                            PyErr_NoMemory();
                            goto fail;
                        }
                        found = grown;
                    }
                    found[2 * n_found] = a;
                    found[2 * n_found + 1] = b;
                    n_found++;
                }
                i = end + 1;
            }
            for (Py_ssize_t j = 0; ok && j < n_found; j++) {
                slot_t *e = lookup(&t, s + found[2 * j], found[2 * j + 1] - found[2 * j]);
                if (e->kind == NAME) {
                    if (e->index != c)
                        referenced[e->index] = 1;
                    if (!(ranks[c] < e->rank))
                        down = 0;
                } else if (e->kind == EMPTY) {
                    declared = 0;
                }
            }
        }
        if (!ok && PyList_Append(slow, PyList_GET_ITEM(names, c)) < 0)
            goto fail;
    }
    unref = PyList_New(0);
    if (unref == NULL)
        goto fail;
    for (Py_ssize_t c = 0; c < count; c++)
        if (!referenced[c] && PyList_Append(unref, PyList_GET_ITEM(names, c)) < 0)
            goto fail;
    PyMem_Free(t.slots);
    PyMem_Free(ranks);
    PyMem_Free(referenced);
    PyMem_Free(found);
    return Py_BuildValue("(NOON)", unref, declared ? Py_True : Py_False, down ? Py_True : Py_False, slow);
fail:
    PyMem_Free(t.slots);
    PyMem_Free(ranks);
    PyMem_Free(referenced);
    PyMem_Free(found);
    Py_XDECREF(unref);
    Py_XDECREF(slow);
    return NULL;
}

/* Does s[0:n] hold needle[0:m]? (memchr on its first byte, then memcmp) */
static int holds(const char *s, Py_ssize_t n, const char *needle, Py_ssize_t m)
{
    if (m == 0)
        return 1;
    Py_ssize_t i = 0;
    while (i + m <= n) {
        const char *p = memchr(s + i, needle[0], (size_t)(n - m - i + 1));
        if (p == NULL)
            return 0;
        Py_ssize_t k = (Py_ssize_t)(p - s);
        if (memcmp(s + k, needle, (size_t)m) == 0)
            return 1;
        i = k + 1;
    }
    return 0;
}

/* line_counts(text, needle, absent) -> (with, without, blank_start) or None
 *
 * Over the lines of ``text`` (split at "\n" only): how many hold ``needle``,
 * how many of those do not hold ``absent``, and whether any line starts with
 * a space or a tab. None when one of the three is not ASCII (the caller
 * counts in Python; check._line_counts is the reference). */
static PyObject *line_counts(PyObject *Py_UNUSED(self), PyObject *args)
{
    PyObject *text, *needle, *absent;
    if (!PyArg_ParseTuple(args, "UUU:line_counts", &text, &needle, &absent))
        return NULL;
    if (!PyUnicode_IS_ASCII(text) || !PyUnicode_IS_ASCII(needle) || !PyUnicode_IS_ASCII(absent))
        Py_RETURN_NONE;
    const char *s = (const char *)PyUnicode_DATA(text), *nd = (const char *)PyUnicode_DATA(needle);
    const char *ab = (const char *)PyUnicode_DATA(absent);
    Py_ssize_t n = PyUnicode_GET_LENGTH(text), m = PyUnicode_GET_LENGTH(needle), ma = PyUnicode_GET_LENGTH(absent);
    Py_ssize_t with = 0, without = 0, i = 0;
    int blank = 0;
    for (;;) {
        const char *nl = i < n ? memchr(s + i, '\n', (size_t)(n - i)) : NULL;
        Py_ssize_t end = nl == NULL ? n : (Py_ssize_t)(nl - s);
        if (end > i && (s[i] == ' ' || s[i] == '\t'))
            blank = 1;
        if (holds(s + i, end - i, nd, m)) {
            with++;
            if (!holds(s + i, end - i, ab, ma))
                without++;
        }
        if (nl == NULL)
            break;
        i = end + 1;
    }
    return Py_BuildValue("(nnO)", with, without, blank ? Py_True : Py_False);
}

/* --- overview_run: graph._overview_run, compiled (perf-graph2) ----------------
 *
 * overview_run(names, start, blocks, tally, prefix, family, table, nodes, succ,
 *              node_of, known) -> the index of the first chain left to the caller.
 *
 * The collapsed whole-dump overview's loop over names[start:] for as long as
 * each chain is a KUBE-SEP-* chain (skipped) or a per-service chain named
 * KUBE-(SVC|SVL|EXT|FW|XLB)-<16 of [A-Z2-7]> (exactly: graph._RUN_CHAIN) whose
 * one block ``tally`` (the compiled overview_tally) answers as only endpoint
 * jumps and masquerade marks, or those and jumps within the service
 * ("-A C -j KUBE-SVC-<its own hash>": graph._SAME_SERVICE). For each such
 * chain: its service node
 * prefix + hash, made as graph.overview_parts' node_for makes it (the same
 * dict, keys in the same order; a new {} in ``succ``), the chain appended to
 * the node's "chains" when not there and put in ``node_of``, "masquerade" set
 * to True when the block has a masquerade mark, "endpoints" raised to the
 * endpoint jumps not after --rcheck for SVC/SVL/XLB; the node of each jump
 * within the service whose target is in ``known`` (as node_for makes it, in
 * order). A chain of any other kind
 * or shape is left to the caller before anything is changed for it.
 *
 * Arguments of other shapes (segments not a list or tuple of (line, str),
 * a tally that is not None/False/4 ints, a node that is not a dict with a
 * list of chains) raise TypeError. Reference: graph._overview_run.
 */
static PyObject *k_type, *k_label, *k_key, *k_family, *k_table, *k_service, *k_kind, *k_chains, *k_endpoints,
    *k_masquerade, *k_cluster, *v_service, *v_empty;

static int run_strings(void)
{
    if (k_type != NULL)
        return 0;
    k_type = PyUnicode_InternFromString("type");
    k_label = PyUnicode_InternFromString("label");
    k_key = PyUnicode_InternFromString("key");
    k_family = PyUnicode_InternFromString("family");
    k_table = PyUnicode_InternFromString("table");
    k_service = PyUnicode_InternFromString("service");
    k_kind = PyUnicode_InternFromString("kind");
    k_chains = PyUnicode_InternFromString("chains");
    k_endpoints = PyUnicode_InternFromString("endpoints");
    k_masquerade = PyUnicode_InternFromString("masquerade");
    k_cluster = PyUnicode_InternFromString("cluster");
    v_service = k_service;  /* the "service" value of "type" and "kind" */
    v_empty = PyUnicode_InternFromString("");
    if (k_type == NULL || k_label == NULL || k_key == NULL || k_family == NULL || k_table == NULL
        || k_service == NULL || k_kind == NULL || k_chains == NULL || k_endpoints == NULL || k_masquerade == NULL
        || k_cluster == NULL || v_empty == NULL) {
        k_type = NULL;
        return -1;
    }
    return 0;
}

/* 0: not a _RUN_CHAIN name; else 1 for SVC/SVL/XLB (endpoints counted), 2 for EXT/FW. */
static int run_chain(const char *s, Py_ssize_t n)
{
    Py_ssize_t p;
    int counted;
    if (n == 25 && memcmp(s, "KUBE-", 5) == 0 && s[8] == '-') {
        if (memcmp(s + 5, "SVC", 3) == 0 || memcmp(s + 5, "SVL", 3) == 0 || memcmp(s + 5, "XLB", 3) == 0)
            counted = 1;
        else if (memcmp(s + 5, "EXT", 3) == 0)
            counted = 2;
        else
            return 0;
        p = 9;
    } else if (n == 24 && memcmp(s, "KUBE-FW-", 8) == 0) {
        counted = 2;
        p = 8;
    } else {
        return 0;
    }
    for (Py_ssize_t i = p; i < n; i++)
        if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '2' && s[i] <= '7')))
            return 0;
    return counted;
}

static PyObject *run_type_error(const char *what)
{
    PyErr_Format(PyExc_TypeError, "overview_run: %s", what);
    return NULL;
}

/* The tally's counts: 1 with them set, 0 for None/False (not answered), -1 with TypeError. */
static int run_counts(PyObject *counts, Py_ssize_t *c)
{
    if (counts == Py_None || counts == Py_False)
        return 0;
    if (!PyTuple_Check(counts) || PyTuple_GET_SIZE(counts) != 4) {
        PyErr_SetString(PyExc_TypeError, "overview_run: the tally gave neither None, False nor 4 counts");
        return -1;
    }
    for (int j = 0; j < 4; j++) {
        PyObject *v = PyTuple_GET_ITEM(counts, j);
        if (!PyLong_Check(v)) {
            PyErr_SetString(PyExc_TypeError, "overview_run: the tally gave a count that is not an int");
            return -1;
        }
        c[j] = PyLong_AsSsize_t(v);
        if (c[j] == -1 && PyErr_Occurred())
            return -1;
    }
    return 1;
}

/* The service node of the _RUN_CHAIN chain ``cname`` (len characters) as
 * overview_parts' node_for gives it: node_of's, or prefix + hash, made when
 * not in ``nodes`` (the dict node_for makes, a new {} in ``succ``), the chain
 * appended to its "chains" when not there and put in ``node_of``. Returns the
 * node (borrowed: node_of holds it) and its attributes in *attrs_out
 * (borrowed), or NULL with an exception set. */
static PyObject *service_node(PyObject *cname, Py_ssize_t len, PyObject *prefix, PyObject *family,
                              PyObject *table, PyObject *nodes, PyObject *succ, PyObject *node_of,
                              PyObject **attrs_out)
{
    PyObject *attrs;
    PyObject *src = PyDict_GetItemWithError(node_of, cname);  /* borrowed */
    if (src == NULL && PyErr_Occurred())
        return NULL;
    if (src != NULL) {
        attrs = PyDict_GetItemWithError(nodes, src);  /* borrowed */
        if (attrs == NULL) {
            if (!PyErr_Occurred())
                PyErr_SetObject(PyExc_KeyError, src);
            return NULL;
        }
        if (!PyDict_Check(attrs))
            return run_type_error("a node that is not a dict");
        *attrs_out = attrs;
        return src;
    }
    PyObject *key = PyUnicode_Substring(cname, len - 16, len);
    if (key == NULL)
        return NULL;
    PyObject *node = PyUnicode_Concat(prefix, key);
    if (node == NULL) {
        Py_DECREF(key);
        return NULL;
    }
    attrs = PyDict_GetItemWithError(nodes, node);  /* borrowed */
    if (attrs == NULL && PyErr_Occurred()) {
        Py_DECREF(key);
        Py_DECREF(node);
        return NULL;
    }
    if (attrs == NULL) {
        PyObject *fresh = PyDict_New(), *chains = PyList_New(0), *zero = PyLong_FromLong(0);
        PyObject *out = PyDict_New();
        if (fresh == NULL || chains == NULL || zero == NULL || out == NULL
            || PyDict_SetItem(fresh, k_type, v_service) < 0 || PyDict_SetItem(fresh, k_label, key) < 0
            || PyDict_SetItem(fresh, k_key, key) < 0 || PyDict_SetItem(fresh, k_family, family) < 0
            || PyDict_SetItem(fresh, k_table, table) < 0 || PyDict_SetItem(fresh, k_service, v_empty) < 0
            || PyDict_SetItem(fresh, k_kind, v_service) < 0 || PyDict_SetItem(fresh, k_chains, chains) < 0
            || PyDict_SetItem(fresh, k_endpoints, zero) < 0 || PyDict_SetItem(fresh, k_masquerade, Py_False) < 0
            || PyDict_SetItem(fresh, k_cluster, v_empty) < 0 || PyDict_SetItem(nodes, node, fresh) < 0
            || PyDict_SetItem(succ, node, out) < 0) {
            Py_XDECREF(fresh);
            Py_XDECREF(chains);
            Py_XDECREF(zero);
            Py_XDECREF(out);
            Py_DECREF(key);
            Py_DECREF(node);
            return NULL;
        }
        Py_DECREF(chains);
        Py_DECREF(zero);
        Py_DECREF(out);
        attrs = fresh;
        Py_DECREF(fresh);  /* nodes holds it */
    }
    Py_DECREF(key);
    if (!PyDict_Check(attrs)) {
        Py_DECREF(node);
        return run_type_error("a node that is not a dict");
    }
    PyObject *chains = PyDict_GetItemWithError(attrs, k_chains);  /* borrowed */
    if (chains == NULL) {
        if (!PyErr_Occurred())
            PyErr_SetObject(PyExc_KeyError, k_chains);
        Py_DECREF(node);
        return NULL;
    }
    if (!PyList_Check(chains)) {
        Py_DECREF(node);
        return run_type_error("a node's chains that are not a list");
    }
    int there = PySequence_Contains(chains, cname);
    if (there < 0 || (!there && PyList_Append(chains, cname) < 0) || PyDict_SetItem(node_of, cname, node) < 0) {
        Py_DECREF(node);
        return NULL;
    }
    Py_DECREF(node);  /* node_of and nodes hold it */
    *attrs_out = attrs;
    return node;
}

/* The target of the line s[i:end] when it is "-A <[A-Z0-9-]+> -j <a _RUN_CHAIN name>"
 * (graph._SAME_SERVICE): its start in *t (it runs to end), else 0. */
static int same_service_line(const char *s, Py_ssize_t i, Py_ssize_t end, Py_ssize_t *t)
{
    if (end - i < 3 || memcmp(s + i, "-A ", 3) != 0)
        return 0;
    Py_ssize_t p = i + 3;
    while (p < end && ((s[p] >= 'A' && s[p] <= 'Z') || (s[p] >= '0' && s[p] <= '9') || s[p] == '-'))
        p++;
    if (p == i + 3 || end - p < 4 || memcmp(s + p, " -j ", 4) != 0 || !run_chain(s + p + 4, end - p - 4))
        return 0;
    *t = p + 4;
    return 1;
}

/* Whether the lines of the clean ASCII block s[0:n] other than masquerade marks
 * and endpoint jumps (the tally's) are ``others`` jumps within the service whose
 * hash is key[0:16]: graph._overview_run's findall of _SAME_SERVICE, counted. */
static int same_service_only(const char *s, Py_ssize_t n, const char *key, Py_ssize_t others)
{
    Py_ssize_t i = 0, found = 0;
    while (i < n) {
        const char *nl = memchr(s + i, '\n', (size_t)(n - i));
        Py_ssize_t end = nl == NULL ? n : (Py_ssize_t)(nl - s), t;
        if (same_service_line(s, i, end, &t)) {
            if (memcmp(s + end - 16, key, 16) != 0)
                return 0;
            found++;
        }
        i = end + 1;
    }
    return found == others;
}

/* The nodes of the in-service jumps of ``block`` (as same_service_only found
 * them), in order: each target that is in ``known`` goes through service_node,
 * as node_for. 0, or -1 with an exception set. */
static int same_service_nodes(PyObject *block, PyObject *known, PyObject *prefix, PyObject *family,
                              PyObject *table, PyObject *nodes, PyObject *succ, PyObject *node_of)
{
    const char *s = (const char *)PyUnicode_DATA(block);
    Py_ssize_t n = PyUnicode_GET_LENGTH(block), i = 0;
    while (i < n) {
        const char *nl = memchr(s + i, '\n', (size_t)(n - i));
        Py_ssize_t end = nl == NULL ? n : (Py_ssize_t)(nl - s), t;
        if (same_service_line(s, i, end, &t)) {
            PyObject *target = PyUnicode_FromStringAndSize(s + t, end - t), *attrs;
            if (target == NULL)
                return -1;
            int in = PySequence_Contains(known, target);
            if (in < 0 || (in && service_node(target, end - t, prefix, family, table, nodes, succ, node_of,
                                              &attrs) == NULL)) {
                Py_DECREF(target);
                return -1;
            }
            Py_DECREF(target);
        }
        i = end + 1;
    }
    return 0;
}

static PyObject *overview_run(PyObject *Py_UNUSED(self), PyObject *args)
{
    PyObject *names, *blocks, *tally, *prefix, *family, *table, *nodes, *succ, *node_of, *known;
    Py_ssize_t start;
    if (!PyArg_ParseTuple(args, "O!nOOUUUO!O!O!O:overview_run", &PyList_Type, &names, &start, &blocks, &tally,
                          &prefix, &family, &table, &PyDict_Type, &nodes, &PyDict_Type, &succ, &PyDict_Type,
                          &node_of, &known))
        return NULL;
    if (run_strings() < 0)
        return NULL;
    Py_ssize_t i = start < 0 ? 0 : start;  /* (the list is read again after each call: blocks and tally are Python) */
    for (; i < PyList_GET_SIZE(names); i++) {
        PyObject *cname = PyList_GET_ITEM(names, i);
        if (!PyUnicode_Check(cname))
            return run_type_error("a chain name that is not a str");
        if (!PyUnicode_IS_ASCII(cname)) {
            /* (not a _RUN_CHAIN name; skipped when it starts with KUBE-SEP- all the same) */
            PyObject *sep = PyUnicode_FromString("KUBE-SEP-");
            if (sep == NULL)
                return NULL;
            Py_ssize_t t = PyUnicode_Tailmatch(cname, sep, 0, PY_SSIZE_T_MAX, -1);
            Py_DECREF(sep);
            if (t < 0)
                return NULL;
            if (t)
                continue;
            return PyLong_FromSsize_t(i);
        }
        const char *s = (const char *)PyUnicode_DATA(cname);
        Py_ssize_t len = PyUnicode_GET_LENGTH(cname);
        if (len >= 9 && memcmp(s, "KUBE-SEP-", 9) == 0)
            continue;
        int counted = run_chain(s, len);
        if (counted == 0)
            return PyLong_FromSsize_t(i);
        PyObject *segs = PyObject_CallOneArg(blocks, cname);
        if (segs == NULL)
            return NULL;
        if (segs == Py_None) {
            Py_DECREF(segs);
            return PyLong_FromSsize_t(i);
        }
        if (!PyList_Check(segs) && !PyTuple_Check(segs)) {
            Py_DECREF(segs);
            return run_type_error("segments that are not a list or tuple");
        }
        if (PySequence_Fast_GET_SIZE(segs) != 1) {
            Py_DECREF(segs);
            return PyLong_FromSsize_t(i);
        }
        PyObject *seg = PySequence_Fast_GET_ITEM(segs, 0);
        if (!PyTuple_Check(seg) || PyTuple_GET_SIZE(seg) != 2 || !PyUnicode_Check(PyTuple_GET_ITEM(seg, 1))) {
            Py_DECREF(segs);
            return run_type_error("a segment that is not (line, str)");
        }
        PyObject *block = PyTuple_GET_ITEM(seg, 1);
        PyObject *counts = PyObject_CallOneArg(tally, block);
        if (counts == NULL) {
            Py_DECREF(segs);
            return NULL;
        }
        Py_ssize_t c[4];
        int got = run_counts(counts, c);
        Py_DECREF(counts);
        if (got < 0) {
            Py_DECREF(segs);
            return NULL;
        }
        /* every line a masquerade mark or an endpoint jump, or else (the tally answered: an
         * ASCII block) the others jumps within the service */
        if (got == 0 || (c[1] + c[2] != c[0] && (!PyUnicode_IS_ASCII(block)
                         || !same_service_only((const char *)PyUnicode_DATA(block), PyUnicode_GET_LENGTH(block),
                                               s + len - 16, c[0] - c[1] - c[2])))) {
            Py_DECREF(segs);
            return PyLong_FromSsize_t(i);
        }
        /* the chain is answered: from here on it changes the graph */
        PyObject *attrs;
        if (service_node(cname, len, prefix, family, table, nodes, succ, node_of, &attrs) == NULL
            || (c[1] + c[2] != c[0] && same_service_nodes(block, known, prefix, family, table, nodes, succ,
                                                          node_of) < 0)) {
            Py_DECREF(segs);
            return NULL;
        }
        Py_DECREF(segs);
        if (c[1] && PyDict_SetItem(attrs, k_masquerade, Py_True) < 0)
            return NULL;
        if (counted == 1) {
            PyObject *cur = PyDict_GetItemWithError(attrs, k_endpoints);  /* borrowed */
            if (cur == NULL) {
                if (!PyErr_Occurred())
                    PyErr_SetObject(PyExc_KeyError, k_endpoints);
                return NULL;
            }
            PyObject *seps = PyLong_FromSsize_t(c[2] - c[3]);
            if (seps == NULL)
                return NULL;
            int more = PyObject_RichCompareBool(seps, cur, Py_GT);  /* max(cur, seps) */
            if (more < 0 || (more && PyDict_SetItem(attrs, k_endpoints, seps) < 0)) {
                Py_DECREF(seps);
                return NULL;
            }
            Py_DECREF(seps);
        }
    }
    return PyLong_FromSsize_t(PyList_GET_SIZE(names));
}

/* entry_run(items, start, first, src, names, node_for, prefix, family, table,
 *           naming, nodes, succ, node_of) -> the index of the first item left
 * to the caller.
 *
 * The overview's loop over the _ENTRY_RULE tuples items[start:] of the chain
 * whose node is ``src`` (rule i on line first + i) for as long as each is a
 * line of kube-proxy's entry shape (a non-empty target): a target that is not
 * in ``names`` or whose node is ``src`` draws nothing; any other gets the
 * edge src -> its node (node_of's; made as node_for makes it for a _RUN_CHAIN
 * name, else node_for(target)) with line, the match summary
 * "[-d X ]-p P --dport N", no goto, share, affinity, masquerade or note; with
 * ``naming``, a service node without a service name is named after the
 * rule's comment (a trailing ":" dropped: normalize_spn). The first line of
 * another shape is left to the caller. Reference: graph._entry_run.
 */
static PyObject *k_line, *k_match, *k_goto, *k_share, *k_affinity, *k_note, *s_p, *s_dport;

static int entry_strings(void)
{
    if (k_line != NULL)
        return 0;
    k_line = PyUnicode_InternFromString("line");
    k_match = PyUnicode_InternFromString("match");
    k_goto = PyUnicode_InternFromString("goto");
    k_share = PyUnicode_InternFromString("share");
    k_affinity = PyUnicode_InternFromString("affinity");
    k_note = PyUnicode_InternFromString("note");
    s_p = PyUnicode_InternFromString("-p ");
    s_dport = PyUnicode_InternFromString(" --dport ");
    if (k_line == NULL || k_match == NULL || k_goto == NULL || k_share == NULL || k_affinity == NULL
        || k_note == NULL || s_p == NULL || s_dport == NULL) {
        k_line = NULL;
        return -1;
    }
    return 0;
}

/* "[dport ]-p proto --dport port" (new reference), or NULL. */
static PyObject *entry_match(PyObject *dport, PyObject *proto, PyObject *port)
{
    if (!PyUnicode_IS_ASCII(dport) || !PyUnicode_IS_ASCII(proto) || !PyUnicode_IS_ASCII(port)) {
        if (PyUnicode_GET_LENGTH(dport) > 0)
            return PyUnicode_FromFormat("%U -p %U --dport %U", dport, proto, port);
        return PyUnicode_FromFormat("-p %U --dport %U", proto, port);
    }
    /* (ASCII, as _ENTRY_RULE's groups always are: the bytes copied) */
    Py_ssize_t d = PyUnicode_GET_LENGTH(dport), p = PyUnicode_GET_LENGTH(proto), n = PyUnicode_GET_LENGTH(port);
    PyObject *out = PyUnicode_New((d ? d + 1 : 0) + 3 + p + 9 + n, 127);
    if (out == NULL)
        return NULL;
    char *w = (char *)PyUnicode_DATA(out);
    if (d) {
        memcpy(w, PyUnicode_DATA(dport), (size_t)d);
        w += d;
        *w++ = ' ';
    }
    memcpy(w, "-p ", 3);
    memcpy(w + 3, PyUnicode_DATA(proto), (size_t)p);
    memcpy(w + 3 + p, " --dport ", 9);
    memcpy(w + 12 + p, PyUnicode_DATA(port), (size_t)n);
    return out;
}

/* Name the service node ``attrs`` after ``spn`` when it has no name yet. 0, or -1 with an exception set. */
static int entry_name(PyObject *attrs, PyObject *spn)
{
    PyObject *type = PyDict_GetItemWithError(attrs, k_type);  /* borrowed; d.get("type") */
    if (type == NULL && PyErr_Occurred())
        return -1;
    int is_service = type == NULL ? 0 : PyObject_RichCompareBool(type, v_service, Py_EQ);
    if (is_service <= 0)
        return is_service;
    PyObject *named = PyDict_GetItemWithError(attrs, k_service);  /* borrowed */
    if (named == NULL) {
        if (!PyErr_Occurred())
            PyErr_SetObject(PyExc_KeyError, k_service);
        return -1;
    }
    int has = PyObject_IsTrue(named);
    if (has != 0)
        return has < 0 ? -1 : 0;
    Py_ssize_t n = PyUnicode_GET_LENGTH(spn);
    PyObject *name = n > 0 && PyUnicode_READ_CHAR(spn, n - 1) == ':' ? PyUnicode_Substring(spn, 0, n - 1)
                                                                       : (Py_INCREF(spn), spn);
    if (name == NULL)
        return -1;
    int bad = PyDict_SetItem(attrs, k_service, name) < 0 || PyDict_SetItem(attrs, k_label, name) < 0;
    Py_DECREF(name);
    return bad ? -1 : 0;
}

static PyObject *entry_run(PyObject *Py_UNUSED(self), PyObject *args)
{
    PyObject *items, *src, *names, *node_for, *prefix, *family, *table, *nodes, *succ, *node_of;
    Py_ssize_t start, first;
    int naming;
    if (!PyArg_ParseTuple(args, "O!nnUOOUUUpO!O!O!:entry_run", &PyList_Type, &items, &start, &first, &src, &names,
                          &node_for, &prefix, &family, &table, &naming, &PyDict_Type, &nodes, &PyDict_Type, &succ,
                          &PyDict_Type, &node_of))
        return NULL;
    if (run_strings() < 0 || entry_strings() < 0)
        return NULL;
    PyObject *out = PyDict_GetItemWithError(succ, src);  /* borrowed: succ[src] */
    if (out == NULL) {
        if (!PyErr_Occurred())
            PyErr_SetObject(PyExc_KeyError, src);
        return NULL;
    }
    if (!PyDict_Check(out))
        return run_type_error("a node's edges that are not a dict");
    for (Py_ssize_t i = start < 0 ? 0 : start; i < PyList_GET_SIZE(items); i++) {
        PyObject *item = PyList_GET_ITEM(items, i);
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 6)
            return run_type_error("an item that is not a tuple of 6 str");
        for (int j = 0; j < 6; j++)
            if (!PyUnicode_Check(PyTuple_GET_ITEM(item, j)))
                return run_type_error("an item that is not a tuple of 6 str");
        PyObject *target = PyTuple_GET_ITEM(item, 4);
        if (PyUnicode_GET_LENGTH(target) == 0)
            return PyLong_FromSsize_t(i);  /* a line of another shape */
        int known = PySequence_Contains(names, target);
        if (known < 0)
            return NULL;
        if (!known)
            continue;
        PyObject *attrs = NULL, *dst = PyDict_GetItemWithError(node_of, target);  /* borrowed */
        Py_ssize_t tlen = PyUnicode_GET_LENGTH(target);
        if (dst == NULL && PyErr_Occurred())
            return NULL;
        if (dst != NULL) {
            Py_INCREF(dst);
        } else if (PyUnicode_IS_ASCII(target) && run_chain((const char *)PyUnicode_DATA(target), tlen)) {
            dst = service_node(target, tlen, prefix, family, table, nodes, succ, node_of, &attrs);
            if (dst == NULL)
                return NULL;
            Py_INCREF(dst);
        } else {
            dst = PyObject_CallOneArg(node_for, target);
            if (dst == NULL)
                return NULL;
        }
        int same = PyObject_RichCompareBool(dst, src, Py_EQ);
        if (same != 0) {
            Py_DECREF(dst);
            if (same < 0)
                return NULL;
            continue;
        }
        PyObject *edge = PyDict_New(), *line = PyLong_FromSsize_t(first + i);
        PyObject *match = entry_match(PyTuple_GET_ITEM(item, 0), PyTuple_GET_ITEM(item, 1), PyTuple_GET_ITEM(item, 3));
        if (edge == NULL || line == NULL || match == NULL || PyDict_SetItem(edge, k_line, line) < 0
            || PyDict_SetItem(edge, k_match, match) < 0 || PyDict_SetItem(edge, k_goto, Py_False) < 0
            || PyDict_SetItem(edge, k_share, v_empty) < 0 || PyDict_SetItem(edge, k_affinity, v_empty) < 0
            || PyDict_SetItem(edge, k_masquerade, Py_False) < 0 || PyDict_SetItem(edge, k_note, v_empty) < 0) {
            Py_XDECREF(edge);
            Py_XDECREF(line);
            Py_XDECREF(match);
            Py_DECREF(dst);
            return NULL;
        }
        Py_DECREF(line);
        Py_DECREF(match);
        PyObject *to = PyDict_GetItemWithError(out, dst);  /* borrowed */
        int bad;
        if (to == NULL) {
            PyObject *fresh = PyErr_Occurred() ? NULL : PyList_New(1);
            bad = fresh == NULL;
            if (!bad) {
                Py_INCREF(edge);
                PyList_SET_ITEM(fresh, 0, edge);
                bad = PyDict_SetItem(out, dst, fresh) < 0;
                Py_DECREF(fresh);
            }
        } else {
            bad = !PyList_Check(to) || PyList_Append(to, edge) < 0;
            if (!PyList_Check(to))
                run_type_error("a node's edges to another that are not a list");
        }
        Py_DECREF(edge);
        if (!bad && naming) {
            if (attrs == NULL) {
                attrs = PyDict_GetItemWithError(nodes, dst);  /* borrowed: nodes[dst] */
                if (attrs == NULL && !PyErr_Occurred())
                    PyErr_SetObject(PyExc_KeyError, dst);
                bad = attrs == NULL || (!PyDict_Check(attrs) && run_type_error("a node that is not a dict") == NULL);
            }
            bad = bad || entry_name(attrs, PyTuple_GET_ITEM(item, 2)) < 0;
        }
        Py_DECREF(dst);
        if (bad)
            return NULL;
    }
    return PyLong_FromSsize_t(PyList_GET_SIZE(items));
}

/* --- service_lines, plain_edge_lines: render.dot's templates, compiled (perf-graph2)
 *
 * service_lines(pairs, start, top, style) -> the index of the first node left
 * to the caller. For the (id, attrs) pairs of pairs[start:] as long as each is
 * a service node (attrs a dict, "type" the str "service", "endpoints" an int
 * or absent, "label" a str or absent) whose id and label are plain (printable
 * ASCII without a quote or backslash; the label may hold tabs and newlines):
 * appends '"id" [label="<label>\n<n> endpoint(s)"' + style to ``top``, the
 * label's newlines written as \n. Reference: render.dot._service_lines.
 *
 * plain_edge_lines(triples, start, out) -> the index of the first edge left to
 * the caller. For the (u, v, attrs) triples of triples[start:] as long as each
 * has no share, affinity, goto, masquerade or note (all false or absent), a
 * "match" that is a str or absent, a "line" that is an int or a str, and
 * plain ids and tooltip: appends '"u" -> "v" [tooltip="line L[: M]"];\n' (with
 * ", label=DNAT" when the match is DNAT) to ``out``. Reference:
 * render.dot._plain_edge_lines.
 *
 * Anything else is left to the caller (the general writer), so the bytes are
 * the same; a first argument that is not a list raises TypeError.
 */
static int plain_char(unsigned char c, int text)
{
    return (c >= 0x20 && c <= 0x7e && c != '"' && c != '\\') || (text && (c == '\t' || c == '\n'));
}

/* The ASCII bytes of ``s`` and their count of newlines when every one is plain, else NULL. */
static const char *plain_str(PyObject *s, int text, Py_ssize_t *len, Py_ssize_t *newlines)
{
    if (!PyUnicode_CheckExact(s) || !PyUnicode_IS_ASCII(s))
        return NULL;
    const char *p = (const char *)PyUnicode_DATA(s);
    Py_ssize_t n = PyUnicode_GET_LENGTH(s), nl = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!plain_char((unsigned char)p[i], text))
            return NULL;
        nl += p[i] == '\n';
    }
    *len = n;
    if (newlines != NULL)
        *newlines = nl;
    return p;
}

/* Copy s[0:n] to w, newlines written as backslash-n; returns the end. */
static char *put_escaped(char *w, const char *s, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n; i++) {
        if (s[i] == '\n') {
            *w++ = '\\';
            *w++ = 'n';
        } else {
            *w++ = s[i];
        }
    }
    return w;
}

static char *put(char *w, const char *s, Py_ssize_t n)
{
    memcpy(w, s, (size_t)n);
    return w + n;
}

/* The attribute names the two read, interned once. */
enum { A_TYPE, A_ENDPOINTS, A_LABEL, A_SHARE, A_AFFINITY, A_GOTO, A_MASQUERADE, A_NOTE, A_MATCH, A_LINE, A_COUNT };
static PyObject *dot_keys[A_COUNT], *dot_one;

static int dot_strings(void)
{
    static const char *names[A_COUNT] = {"type", "endpoints", "label", "share", "affinity", "goto", "masquerade",
                                         "note", "match", "line"};
    if (dot_one != NULL)
        return 0;
    for (int k = 0; k < A_COUNT; k++)
        if (dot_keys[k] == NULL && (dot_keys[k] = PyUnicode_InternFromString(names[k])) == NULL)
            return -1;
    dot_one = PyLong_FromLong(1);
    return dot_one == NULL ? -1 : 0;
}

/* attrs.get(key) (borrowed, NULL when absent), or NULL with an exception set (*err = 1). */
static PyObject *get_item(PyObject *attrs, int key, int *err)
{
    PyObject *v = PyDict_GetItemWithError(attrs, dot_keys[key]);
    if (v == NULL && PyErr_Occurred())
        *err = 1;
    return v;
}

static PyObject *service_lines(PyObject *Py_UNUSED(self), PyObject *args)
{
    PyObject *pairs, *top, *style;
    Py_ssize_t start;
    if (!PyArg_ParseTuple(args, "O!nO!U:service_lines", &PyList_Type, &pairs, &start, &PyList_Type, &top, &style))
        return NULL;
    if (dot_strings() < 0)
        return NULL;
    Py_ssize_t slen;
    const char *st = PyUnicode_IS_ASCII(style) ? (const char *)PyUnicode_DATA(style) : NULL;
    if (st == NULL)
        return PyLong_FromSsize_t(start < 0 ? 0 : start);
    slen = PyUnicode_GET_LENGTH(style);
    Py_ssize_t i = start < 0 ? 0 : start;
    for (; i < PyList_GET_SIZE(pairs); i++) {
        PyObject *pair = PyList_GET_ITEM(pairs, i);
        if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2 || !PyDict_Check(PyTuple_GET_ITEM(pair, 1)))
            break;
        PyObject *node = PyTuple_GET_ITEM(pair, 0), *attrs = PyTuple_GET_ITEM(pair, 1);
        int err = 0;
        PyObject *type = get_item(attrs, A_TYPE, &err);
        if (err)
            return NULL;
        if (type == NULL || !PyUnicode_CheckExact(type) || PyUnicode_CompareWithASCIIString(type, "service") != 0)
            break;
        PyObject *count = get_item(attrs, A_ENDPOINTS, &err), *label = get_item(attrs, A_LABEL, &err);
        if (err)
            return NULL;
        if ((count != NULL && !PyLong_CheckExact(count)) || (label != NULL && !PyUnicode_CheckExact(label)))
            break;
        Py_ssize_t idlen = 0, lablen = 0, nl = 0, dlen;
        const char *id = plain_str(node, 0, &idlen, NULL);
        const char *lab = label == NULL ? "" : plain_str(label, 1, &lablen, &nl);
        if (id == NULL || lab == NULL)
            break;
        int one = 0;
        PyObject *digits;
        if (count == NULL) {
            digits = PyUnicode_FromString("0");
        } else {
            one = PyObject_RichCompareBool(count, dot_one, Py_EQ);
            if (one < 0)
                return NULL;
            digits = PyObject_Str(count);
        }
        if (digits == NULL)
            return NULL;
        const char *d = (const char *)PyUnicode_DATA(digits);
        dlen = PyUnicode_GET_LENGTH(digits);
        /* '"' id '" [label="' lab '\n' digits ' endpoint' ['s'] '"' style */
        Py_ssize_t total = 1 + idlen + 10 + lablen + nl + 2 + dlen + 9 + (one ? 0 : 1) + 1 + slen;
        PyObject *line = PyUnicode_New(total, 127);
        if (line == NULL) {
            Py_DECREF(digits);
            return NULL;
        }
        char *w = (char *)PyUnicode_DATA(line);
        w = put(w, "\"", 1);
        w = put(w, id, idlen);
        w = put(w, "\" [label=\"", 10);
        w = put_escaped(w, lab, lablen);
        w = put(w, "\\n", 2);
        w = put(w, d, dlen);
        w = put(w, " endpoint", 9);
        if (!one)
            w = put(w, "s", 1);
        w = put(w, "\"", 1);
        put(w, st, slen);
        Py_DECREF(digits);
        int bad = PyList_Append(top, line);
        Py_DECREF(line);
        if (bad < 0)
            return NULL;
    }
    return PyLong_FromSsize_t(i < PyList_GET_SIZE(pairs) ? i : PyList_GET_SIZE(pairs));
}

static PyObject *plain_edge_lines(PyObject *Py_UNUSED(self), PyObject *args)
{
    PyObject *triples, *out;
    Py_ssize_t start;
    if (!PyArg_ParseTuple(args, "O!nO!:plain_edge_lines", &PyList_Type, &triples, &start, &PyList_Type, &out))
        return NULL;
    if (dot_strings() < 0)
        return NULL;
    Py_ssize_t i = start < 0 ? 0 : start;
    for (; i < PyList_GET_SIZE(triples); i++) {
        PyObject *t = PyList_GET_ITEM(triples, i);
        if (!PyTuple_Check(t) || PyTuple_GET_SIZE(t) != 3 || !PyDict_Check(PyTuple_GET_ITEM(t, 2)))
            break;
        PyObject *u = PyTuple_GET_ITEM(t, 0), *v = PyTuple_GET_ITEM(t, 1), *attrs = PyTuple_GET_ITEM(t, 2);
        int err = 0, set = 0;
        for (int f = 0; f < 5 && !set; f++) {
            PyObject *x = get_item(attrs, A_SHARE + f, &err);
            if (err)
                return NULL;
            if (x != NULL) {
                set = PyObject_IsTrue(x);
                if (set < 0)
                    return NULL;
            }
        }
        if (set)
            break;
        PyObject *match = get_item(attrs, A_MATCH, &err), *lineno = get_item(attrs, A_LINE, &err);
        if (err)
            return NULL;
        if ((match != NULL && match != Py_None && !PyUnicode_CheckExact(match))
            || (lineno != NULL && !PyLong_CheckExact(lineno) && !PyUnicode_CheckExact(lineno)))
            break;
        Py_ssize_t ulen = 0, vlen = 0, mlen = 0, mnl = 0, llen = 0, lnl = 0;
        const char *us = plain_str(u, 0, &ulen, NULL), *vs = plain_str(v, 0, &vlen, NULL);
        const char *ms = match == NULL || match == Py_None ? "" : plain_str(match, 1, &mlen, &mnl);
        if (us == NULL || vs == NULL || ms == NULL)
            break;
        PyObject *ltext = lineno == NULL ? PyUnicode_FromString("") : PyLong_CheckExact(lineno)
                                                                        ? PyObject_Str(lineno)
                                                                        : (Py_INCREF(lineno), lineno);
        if (ltext == NULL)
            return NULL;
        const char *ls = plain_str(ltext, 1, &llen, &lnl);
        if (ls == NULL) {
            Py_DECREF(ltext);
            break;
        }
        int dnat = mlen == 4 && memcmp(ms, "DNAT", 4) == 0;
        /* '"' u '" -> "' v '" [tooltip="line ' L [': ' M] '"' [', label=DNAT'] '];\n' */
        Py_ssize_t total = 1 + ulen + 6 + vlen + 17 + llen + lnl + (mlen ? 2 + mlen + mnl : 0) + 1
                           + (dnat ? 12 : 0) + 3;
        PyObject *line = PyUnicode_New(total, 127);
        if (line == NULL) {
            Py_DECREF(ltext);
            return NULL;
        }
        char *w = (char *)PyUnicode_DATA(line);
        w = put(w, "\"", 1);
        w = put(w, us, ulen);
        w = put(w, "\" -> \"", 6);
        w = put(w, vs, vlen);
        w = put(w, "\" [tooltip=\"line ", 17);
        w = put_escaped(w, ls, llen);
        if (mlen) {
            w = put(w, ": ", 2);
            w = put_escaped(w, ms, mlen);
        }
        w = put(w, "\"", 1);
        if (dnat)
            w = put(w, ", label=DNAT", 12);
        put(w, "];\n", 3);
        Py_DECREF(ltext);
        int bad = PyList_Append(out, line);
        Py_DECREF(line);
        if (bad < 0)
            return NULL;
    }
    return PyLong_FromSsize_t(i < PyList_GET_SIZE(triples) ? i : PyList_GET_SIZE(triples));
}

static PyMethodDef methods[] = {
    {"edges", edges, METH_VARARGS, "chain -> its jump targets, for the chains graph._edge_pass answers."},
    {"line_counts", line_counts, METH_VARARGS, "lines holding a needle, those of them without another, "
                                               "a line starting blank (see check._line_counts)."},
    {"summary", summary, METH_VARARGS, "unreferenced chains, whether all targets are declared, whether every "
                                       "jump goes down the layers (see graph._summary_pass)."},
    {"overview_run", overview_run, METH_VARARGS, "the collapsed graph overview's plain service chains "
                                                 "(see graph._overview_run)."},
    {"entry_run", entry_run, METH_VARARGS, "the collapsed graph overview's edges from kube-proxy's entry rules "
                                           "(see graph._entry_run)."},
    {"service_lines", service_lines, METH_VARARGS, "DOT lines of plain service nodes "
                                                   "(see render.dot._service_lines)."},
    {"plain_edge_lines", plain_edge_lines, METH_VARARGS, "DOT lines of plain edges "
                                                         "(see render.dot._plain_edge_lines)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "svcinspect.dataplane.iptables._edges",
    "Optional compiled edge pass for svcinspect.graph (the pure-Python code is the fallback).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__edges(void)
{
    return PyModule_Create(&module);
}

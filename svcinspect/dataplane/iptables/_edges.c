/* Optional compiled edge pass for svcinspect.graph (the pure-Python functions
 * graph._edge_pass and graph._layered are the reference and the fallback;
 * tests/test_perf_edges.py compares the two).
 *
 *   edges(names, segs)                      -> ({chain: (targets...)}, [slow chains])
 *   layered(edges, names, builtins, layers) -> bool
 *
 * ``edges``: ``names`` is a list of chain names, ``segs`` the list of their
 * segment lists as the parser cut them (``[(first line, block)]``, one entry
 * per run of rules). A chain is answered when it is one ASCII block of whole
 * lines without a tab, "--jump" or "--goto", and every line's first " -j " or
 * " -g " is followed by a name that does not start with "-" and by a tail with
 * no quote and no other " -j "/" -g ": its value is the tuple of those names,
 * each once, in first-seen order. Any other chain goes to the slow list, in
 * order, for the general reader (that changes time, never answers).
 *
 * ``layered``: True when every (chain, target) of ``edges`` whose target is in
 * ``names`` goes from a lower layer to a strictly higher one: the rank of a
 * name is 0 for a name in ``builtins``, else that of the first (prefix, rank)
 * of ``layers`` it starts with, else 1.5 for "KUBE-" and -1 for anything else.
 *
 * Every scan is a bounded loop over a block's bytes with explicit lengths: no
 * recursion, no allocation beyond the result objects.
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
        /* Every 'j' and 'g' of the line: "--jump" or "--goto" declines the
         * block; " -j " / " -g " is a flag, and a line must hold exactly one
         * (a second one would sit in the tail after the first one's name). */
        Py_ssize_t f = -1, nj = NOT_YET, ng = NOT_YET, k = i;
        for (;;) {
            Py_ssize_t j = next_of(s, 'j', k, end, &nj), g = next_of(s, 'g', k, end, &ng);
            k = j < 0 ? g : g < 0 ? j : j < g ? j : g;
            if (k < 0)
                break;
            if (k - 2 >= i && s[k - 2] == '-' && s[k - 1] == '-' && k + 4 <= end
                && memcmp(s + k + 1, s[k] == 'j' ? "ump" : "oto", 3) == 0)
                goto decline;
            if (k - 2 >= i && s[k - 2] == ' ' && s[k - 1] == '-' && k + 1 < end && s[k + 1] == ' ') {
                if (f >= 0)
                    goto decline;
                f = k - 2;
            }
            k++;
        }
        if (f < 0)
            goto decline;
        Py_ssize_t a = f + 4, b = a;
        while (b < end && s[b] != ' ')
            b++;
        if (b == a || s[a] == '-' || (b < end && memchr(s + b, '"', (size_t)(end - b)) != NULL))
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

static PyObject *layered(PyObject *Py_UNUSED(self), PyObject *args)
{
    PyObject *edges_, *names, *builtins, *layers;
    if (!PyArg_ParseTuple(args, "O!OO!O!:layered", &PyDict_Type, &edges_, &names, &PyFrozenSet_Type, &builtins,
                          &PyTuple_Type, &layers))
        return NULL;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(layers); i++) {
        PyObject *layer = PyTuple_GET_ITEM(layers, i);
        if (!PyTuple_Check(layer) || PyTuple_GET_SIZE(layer) != 2 || !PyUnicode_Check(PyTuple_GET_ITEM(layer, 0))
            || !PyFloat_Check(PyTuple_GET_ITEM(layer, 1))) {
            PyErr_SetString(PyExc_TypeError, "layered() takes layers as ((str prefix, float rank), ...)");
            return NULL;
        }
    }
    Py_ssize_t pos = 0;
    PyObject *chain, *targets;
    while (PyDict_Next(edges_, &pos, &chain, &targets)) {
        if (!PyUnicode_Check(chain) || !PyTuple_Check(targets)) {
            PyErr_SetString(PyExc_TypeError, "layered() takes edges as {str: (str, ...)}");
            return NULL;
        }
        double rc = 0, rt = 0;
        int have_rc = 0;  /* the chain's rank, computed on its first target that is a chain */
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(targets); i++) {
            PyObject *t = PyTuple_GET_ITEM(targets, i);
            if (!PyUnicode_Check(t)) {
                PyErr_SetString(PyExc_TypeError, "layered() takes edges as {str: (str, ...)}");
                return NULL;
            }
            int in = PySequence_Contains(names, t);
            if (in < 0)
                return NULL;
            if (!in)
                continue;
            if (!have_rc) {
                if (rank(chain, builtins, layers, &rc) < 0)
                    return NULL;
                have_rc = 1;
            }
            if (rank(t, builtins, layers, &rt) < 0)
                return NULL;
            if (!(rc < rt))
                Py_RETURN_FALSE;
        }
    }
    Py_RETURN_TRUE;
}

static PyMethodDef methods[] = {
    {"edges", edges, METH_VARARGS, "chain -> its jump targets, for the chains graph._edge_pass answers."},
    {"layered", layered, METH_VARARGS, "whether every jump goes down kube-proxy's layers (see graph._layered)."},
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

/* Optional compiled scanner for svcinspect.parse.bulk (the pure-Python path is
 * the reference and the fallback; tests compare the two).
 *
 * Two functions read the blocks of rule lines the parser cut (one block per
 * chain, each a str of whole lines ending in "\n"):
 *
 *   dnat(seps)      -> {chain: "IP:port" or None}   like bulk._scan_dnat
 *   cascades(svcs)  -> {chain: [branch tuples]}     like bulk._scan_cascades
 *
 * ``seps`` and ``svcs`` are lists of (chain name, first line number, block).
 * Both read only what the pure-Python regexes read, byte for byte, and only on
 * ASCII blocks: a chain they do not answer for is left out of the dict and the
 * caller reads it with the general reader (that is always allowed; it changes
 * time, not answers). Every scan is a bounded loop over the block's bytes with
 * explicit lengths: no recursion, no allocation beyond the result objects.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

/* Python's \s for ASCII text (str.isspace): space, \t \n \v \f \r, \x1c-\x1f. */
static int is_space(unsigned char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f);
}

/* bulk._ODD within ASCII: \x0b \x0c \x1c \x1d \x1e. */
static int is_odd(unsigned char c)
{
    return c == 0x0b || c == 0x0c || (c >= 0x1c && c <= 0x1e);
}

static int is_b32(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= '2' && c <= '7');
}

static int is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

/* Does s[0:n] hold needle (length m) at position i? */
static int at(const char *s, Py_ssize_t n, Py_ssize_t i, const char *needle, Py_ssize_t m)
{
    return i >= 0 && m <= n - i && memcmp(s + i, needle, (size_t)m) == 0;
}

#define LEN(lit) ((Py_ssize_t)(sizeof(lit) - 1))
#define AT(s, n, i, lit) at((s), (n), (i), (lit), LEN(lit))

static Py_ssize_t find(const char *s, Py_ssize_t n, Py_ssize_t from, const char *needle, Py_ssize_t m)
{
    for (Py_ssize_t i = from; i + m <= n; i++)
        if (s[i] == needle[0] && memcmp(s + i, needle, (size_t)m) == 0)
            return i;
    return -1;
}

static Py_ssize_t rfind(const char *s, Py_ssize_t n, const char *needle, Py_ssize_t m)
{
    for (Py_ssize_t i = n - m; i >= 0; i--)
        if (s[i] == needle[0] && memcmp(s + i, needle, (size_t)m) == 0)
            return i;
    return -1;
}

/* (?:\[\d+:\d+\] )?  -> the offset after it (0 when absent or not that shape). */
static Py_ssize_t skip_counters(const char *s, Py_ssize_t n)
{
    Py_ssize_t i = 0;
    if (n == 0 || s[0] != '[')
        return 0;
    i = 1;
    if (i >= n || !is_digit((unsigned char)s[i]))
        return 0;
    while (i < n && is_digit((unsigned char)s[i]))
        i++;
    if (i >= n || s[i] != ':')
        return 0;
    i++;
    if (i >= n || !is_digit((unsigned char)s[i]))
        return 0;
    while (i < n && is_digit((unsigned char)s[i]))
        i++;
    if (!AT(s, n, i, "] "))
        return 0;
    return i + 2;
}

/* \S+ followed by a space: offset of that space, or -1. */
static Py_ssize_t token_then_space(const char *s, Py_ssize_t n, Py_ssize_t i)
{
    Py_ssize_t j = i;
    while (j < n && !is_space((unsigned char)s[j]))
        j++;
    if (j == i || j >= n || s[j] != ' ')
        return -1;
    return j;
}

/* KUBE-SEP-[A-Z2-7]{16} at s[i:i+25]? */
static int sep_name_at(const char *s, Py_ssize_t n, Py_ssize_t i)
{
    if (!AT(s, n, i, "KUBE-SEP-") || n - i < 25)
        return 0;
    for (Py_ssize_t k = i + 9; k < i + 25; k++)
        if (!is_b32((unsigned char)s[k]))
            return 0;
    return 1;
}

/* Unpack one (name, first, block) item; block as ASCII bytes. Returns 1 ok,
 * 0 when the block is not ASCII (not for us), -1 on a type error. */
static int unpack(PyObject *item, PyObject **name, Py_ssize_t *first, const char **data, Py_ssize_t *len)
{
    if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 3) {
        PyErr_SetString(PyExc_TypeError, "expected (chain, first line, block) tuples");
        return -1;
    }
    PyObject *n = PyTuple_GET_ITEM(item, 0), *f = PyTuple_GET_ITEM(item, 1), *b = PyTuple_GET_ITEM(item, 2);
    if (!PyUnicode_Check(n) || !PyLong_Check(f) || !PyUnicode_Check(b)) {
        PyErr_SetString(PyExc_TypeError, "expected (str, int, str) tuples");
        return -1;
    }
    *first = PyLong_AsSsize_t(f);
    if (*first == -1 && PyErr_Occurred())
        return -1;
    *name = n;
    if (PyUnicode_READY(b) < 0)
        return -1;
    if (!PyUnicode_IS_ASCII(b))
        return 0;
    *data = (const char *)PyUnicode_DATA(b);
    *len = PyUnicode_GET_LENGTH(b);
    return 1;
}

/* --- dnat ------------------------------------------------------------------- */

/* Is this line kube-proxy's DNAT for chain ``name`` (``bulk._SEP_DNAT_LINE``'s
 * first alternative)? Sets the destination's span. */
static int std_dnat(const char *s, Py_ssize_t n, const char *name, Py_ssize_t nlen, int name_ok,
                    Py_ssize_t *dst, Py_ssize_t *dlen)
{
    static const char tail[] = " -j DNAT --to-destination ";
    const Py_ssize_t tl = (Py_ssize_t)sizeof(tail) - 1;
    if (!name_ok)
        return 0;
    Py_ssize_t i = skip_counters(s, n);
    if (!AT(s, n, i, "-A ") || !at(s, n, i + 3, name, nlen) || !AT(s, n, i + 3 + nlen, " "))
        return 0;
    Py_ssize_t body = i + 3 + nlen + 1;
    Py_ssize_t k = rfind(s, n, tail, tl);
    if (k < body)
        return 0;
    Py_ssize_t d = k + tl;
    if (d >= n)
        return 0;
    for (Py_ssize_t j = d; j < n; j++)
        if (is_space((unsigned char)s[j]) || s[j] == '"')
            return 0;
    *dst = d;
    *dlen = n - d;
    return 1;
}

static PyObject *scan_dnat(PyObject *self, PyObject *seps)
{
    if (!PyList_Check(seps)) {
        PyErr_SetString(PyExc_TypeError, "dnat() takes a list");
        return NULL;
    }
    PyObject *out = PyDict_New();
    if (out == NULL)
        return NULL;
    Py_ssize_t count = PyList_GET_SIZE(seps);
    for (Py_ssize_t c = 0; c < count; c++) {
        PyObject *name;
        Py_ssize_t first, len = 0;
        const char *s = NULL;
        int ok = unpack(PyList_GET_ITEM(seps, c), &name, &first, &s, &len);
        if (ok < 0)
            goto fail;
        if (ok == 0)
            continue;
        Py_ssize_t nlen;
        const char *nm = PyUnicode_AsUTF8AndSize(name, &nlen);
        if (nm == NULL)
            goto fail;
        int name_ok = nlen == 25 && sep_name_at(nm, nlen, 0);
        PyObject *value = Py_None;
        int decided = 0, odd = 0;
        Py_ssize_t pos = 0;
        while (pos < len && !decided) {
            const char *nl = memchr(s + pos, '\n', (size_t)(len - pos));
            Py_ssize_t end = nl ? (Py_ssize_t)(nl - s) : len;
            const char *line = s + pos;
            Py_ssize_t ll = end - pos;
            if (find(line, ll, 0, "DNAT", 4) >= 0) {
                Py_ssize_t d, dl;
                decided = 1;
                if (std_dnat(line, ll, nm, nlen, name_ok, &d, &dl)) {
                    value = PyUnicode_FromStringAndSize(line + d, dl);
                    if (value == NULL)
                        goto fail;
                } else {
                    odd = 1;
                }
            }
            pos = end + 1;
        }
        if (odd)
            continue;
        int r = PyDict_SetItem(out, name, value);
        if (value != Py_None)
            Py_DECREF(value);
        if (r < 0)
            goto fail;
    }
    return out;
fail:
    Py_DECREF(out);
    return NULL;
}

/* --- cascades ---------------------------------------------------------------- */

typedef struct {
    Py_ssize_t c, cl;   /* comment token (with its quotes), -1 if none */
    Py_ssize_t p, pl;   /* probability */
    Py_ssize_t sec, sl; /* affinity seconds */
    Py_ssize_t t;       /* KUBE-SEP-... target (25 bytes) */
} branch_t;

/* services._SVC_BRANCH on one line (no newline in it); 1 when it matches. */
static int match_branch(const char *s, Py_ssize_t n, branch_t *b)
{
    b->c = b->p = b->sec = -1;
    b->cl = b->pl = b->sl = 0;
    Py_ssize_t i = skip_counters(s, n);
    if (!AT(s, n, i, "-A "))
        return 0;
    Py_ssize_t j = token_then_space(s, n, i + 3);
    if (j < 0)
        return 0;
    i = j + 1;
    if (AT(s, n, i, "-m comment --comment ")) {
        Py_ssize_t k = i + LEN("-m comment --comment ");
        if (k < n && s[k] == '"') {
            Py_ssize_t e = k + 1;
            while (e < n && s[e] != '"' && s[e] != '\\' && !is_odd((unsigned char)s[e]))
                e++;
            if (e >= n || s[e] != '"')
                return 0;
            e++;
            if (!AT(s, n, e, " "))
                return 0;
            b->c = k;
            b->cl = e - k;
            i = e + 1;
        } else {
            Py_ssize_t e = k;
            while (e < n && !is_space((unsigned char)s[e]) && s[e] != '"')
                e++;
            if (e == k || !AT(s, n, e, " "))
                return 0;
            b->c = k;
            b->cl = e - k;
            i = e + 1;
        }
    }
    if (AT(s, n, i, "-m statistic --mode random --probability ")) {
        Py_ssize_t k = i + LEN("-m statistic --mode random --probability "), e = k;
        while (e < n && (is_digit((unsigned char)s[e]) || s[e] == '.'))
            e++;
        if (e == k || !AT(s, n, e, " "))
            return 0;
        b->p = k;
        b->pl = e - k;
        i = e + 1;
    } else if (AT(s, n, i, "-m recent --rcheck --seconds ")) {
        Py_ssize_t k = i + LEN("-m recent --rcheck --seconds "), e = k;
        while (e < n && is_digit((unsigned char)s[e]))
            e++;
        if (e == k || !AT(s, n, e, " --reap --name "))
            return 0;
        b->sec = k;
        b->sl = e - k;
        e = token_then_space(s, n, e + LEN(" --reap --name "));
        if (e < 0 || !AT(s, n, e, " --mask "))
            return 0;
        k = e + LEN(" --mask ");
        e = k;
        while (e < n && (is_digit((unsigned char)s[e]) || s[e] == '.'))
            e++;
        if (e == k || !AT(s, n, e, " --rsource "))
            return 0;
        i = e + LEN(" --rsource ");
    } else if (AT(s, n, i, "-m recent --name ")) {
        Py_ssize_t e = token_then_space(s, n, i + LEN("-m recent --name "));
        if (e < 0 || !AT(s, n, e, " --rcheck --seconds "))
            return 0;
        Py_ssize_t k = e + LEN(" --rcheck --seconds ");
        e = k;
        while (e < n && is_digit((unsigned char)s[e]))
            e++;
        if (e == k || !AT(s, n, e, " --reap "))
            return 0;
        b->sec = k;
        b->sl = e - k;
        i = e + LEN(" --reap ");
    }
    if (!AT(s, n, i, "-j ") || n - (i + 3) != 25 || !sep_name_at(s, n, i + 3))
        return 0;
    b->t = i + 3;  /* "-j " */
    return 1;
}

/* bulk._CASCADE_LINE's "skip" alternative: ``[^\n ODD]* -j KUBE-MARK-(MASQ|DROP)$``.
 * Returns 1 for a skip line, 2 for one that makes the chain unsure, 0 otherwise. */
static int match_skip(const char *s, Py_ssize_t n)
{
    if (!(n >= 18 && (memcmp(s + n - 18, " -j KUBE-MARK-MASQ", 18) == 0
                      || memcmp(s + n - 18, " -j KUBE-MARK-DROP", 18) == 0)))
        return 0;
    for (Py_ssize_t k = 0; k < n; k++)
        if (is_odd((unsigned char)s[k]))
            return 0;
    if (find(s, n, 0, "--probability", 13) >= 0 || find(s, n, 0, "--rcheck", 8) >= 0)
        return 2;
    return 1;
}

static PyObject *branch_tuple(const char *s, const branch_t *b, Py_ssize_t line)
{
    PyObject *t = NULL, *ln = NULL, *text = NULL, *p = NULL, *sec = NULL, *ep = NULL;
    t = PyUnicode_FromStringAndSize(s + b->t, 25);
    ln = PyLong_FromSsize_t(line);
    text = Py_None;  /* the rule text is left out, as bulk._branches_of does */
    Py_INCREF(text);
    if (t == NULL || ln == NULL)
        goto fail;
    if (b->p >= 0) {
        p = PyUnicode_FromStringAndSize(s + b->p, b->pl);
        if (p != NULL)
            PyUnicode_InternInPlace(&p);  /* kube-proxy writes the same few strings everywhere */
    } else {
        p = Py_None;
        Py_INCREF(p);
    }
    if (p == NULL)
        goto fail;
    if (b->sec >= 0) {
        char buf[64];
        if (b->sl < (Py_ssize_t)sizeof(buf)) {
            memcpy(buf, s + b->sec, (size_t)b->sl);
            buf[b->sl] = 0;
            sec = PyLong_FromString(buf, NULL, 10);
        } else {
            PyObject *digits = PyUnicode_FromStringAndSize(s + b->sec, b->sl);
            sec = digits ? PyLong_FromUnicodeObject(digits, 10) : NULL;
            Py_XDECREF(digits);
        }
    } else {
        sec = Py_None;
        Py_INCREF(sec);
    }
    if (sec == NULL)
        goto fail;
    ep = Py_None;
    Py_INCREF(ep);
    if (b->c >= 0) {
        const char *c = s + b->c;
        Py_ssize_t cl = b->cl;
        while (cl > 0 && c[cl - 1] == '"')  /* c.rstrip('"') */
            cl--;
        Py_ssize_t k = rfind(c, cl, " -> ", 4);
        if (k >= 0) {
            Py_DECREF(ep);
            ep = PyUnicode_FromStringAndSize(c + k + 4, cl - k - 4);
            if (ep == NULL)
                goto fail;
        }
    }
    {
        PyObject *row = PyTuple_Pack(6, t, ln, text, p, sec, ep);
        Py_DECREF(t);
        Py_DECREF(ln);
        Py_DECREF(text);
        Py_DECREF(p);
        Py_DECREF(sec);
        Py_DECREF(ep);
        return row;
    }
fail:
    Py_XDECREF(t);
    Py_XDECREF(ln);
    Py_XDECREF(text);
    Py_XDECREF(p);
    Py_XDECREF(sec);
    Py_XDECREF(ep);
    return NULL;
}

static PyObject *scan_cascades(PyObject *self, PyObject *chains)
{
    if (!PyList_Check(chains)) {
        PyErr_SetString(PyExc_TypeError, "cascades() takes a list");
        return NULL;
    }
    PyObject *out = PyDict_New();
    if (out == NULL)
        return NULL;
    Py_ssize_t count = PyList_GET_SIZE(chains);
    for (Py_ssize_t c = 0; c < count; c++) {
        PyObject *name;
        Py_ssize_t first, len = 0;
        const char *s = NULL;
        int ok = unpack(PyList_GET_ITEM(chains, c), &name, &first, &s, &len);
        if (ok < 0)
            goto fail;
        if (ok == 0)
            continue;
        PyObject *rows = PyList_New(0);
        if (rows == NULL)
            goto fail;
        int sure = 1;
        Py_ssize_t pos = 0, line = first;
        while (pos < len) {
            const char *nl = memchr(s + pos, '\n', (size_t)(len - pos));
            Py_ssize_t end = nl ? (Py_ssize_t)(nl - s) : len;
            const char *ln = s + pos;
            Py_ssize_t ll = end - pos;
            branch_t b;
            if (ll > 0 && match_branch(ln, ll, &b)) {
                PyObject *row = branch_tuple(ln, &b, line);
                if (row == NULL || PyList_Append(rows, row) < 0) {
                    Py_XDECREF(row);
                    Py_DECREF(rows);
                    goto fail;
                }
                Py_DECREF(row);
            } else if (ll == 0 || match_skip(ln, ll) != 1) {
                sure = 0;
                break;
            }
            line++;
            pos = end + 1;
        }
        if (sure && PyDict_SetItem(out, name, rows) < 0) {
            Py_DECREF(rows);
            goto fail;
        }
        Py_DECREF(rows);
    }
    return out;
fail:
    Py_DECREF(out);
    return NULL;
}


/* --- segments ----------------------------------------------------------------- */

static int is_blank(unsigned char c)
{
    return c == ' ' || c == '\t';
}

/* [ \t]*(?:\[\d+:\d+\][ \t]*)?-A[ \t]+  at the start of a line: the offset of
 * the chain name after it, or -1. */
static Py_ssize_t rule_head(const char *s, Py_ssize_t n)
{
    Py_ssize_t i = 0;
    while (i < n && is_blank((unsigned char)s[i]))
        i++;
    if (i < n && s[i] == '[') {
        Py_ssize_t j = i + 1, k;
        k = j;
        while (j < n && is_digit((unsigned char)s[j]))
            j++;
        if (j > k && j < n && s[j] == ':') {
            k = ++j;
            while (j < n && is_digit((unsigned char)s[j]))
                j++;
            if (j > k && j < n && s[j] == ']') {
                j++;
                while (j < n && is_blank((unsigned char)s[j]))
                    j++;
                i = j;
            }
        }
    }
    if (!AT(s, n, i, "-A"))
        return -1;
    i += 2;
    if (i >= n || !is_blank((unsigned char)s[i]))
        return -1;
    while (i < n && is_blank((unsigned char)s[i]))
        i++;
    return i;
}

static int append4(PyObject *out, PyObject *empty, int slot, PyObject *v, PyObject *c)
{
    PyObject *t = PyTuple_New(4);
    if (t == NULL)
        return -1;
    for (int k = 0; k < 4; k++) {
        PyObject *x = k == slot ? v : (k == 1 && c != NULL) ? c : empty;
        Py_INCREF(x);
        PyTuple_SET_ITEM(t, k, x);
    }
    int r = PyList_Append(out, t);
    Py_DECREF(t);
    return r;
}

/* parse.iptables_save._SEGMENTS.findall(text) for ASCII text that ends in "\n":
 * (rule block, chain, declarations, other line) per match, "" for the groups
 * that did not take part. None for any other text (the caller uses the regex). */
static PyObject *scan_segments(PyObject *self, PyObject *text)
{
    if (!PyUnicode_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "segments() takes a str");
        return NULL;
    }
    if (PyUnicode_READY(text) < 0)
        return NULL;
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    const char *s = (const char *)PyUnicode_DATA(text);
    if (!PyUnicode_IS_ASCII(text) || n == 0 || s[n - 1] != '\n')
        Py_RETURN_NONE;
    PyObject *out = PyList_New(0), *empty = PyUnicode_FromStringAndSize("", 0);
    if (out == NULL || empty == NULL)
        goto fail;
    Py_ssize_t pos = 0;
    while (pos < n) {
        const char *nl = memchr(s + pos, '\n', (size_t)(n - pos));
        Py_ssize_t end = (Py_ssize_t)(nl - s) + 1;  /* after this line's "\n" (text ends in one) */
        Py_ssize_t h = rule_head(s + pos, end - 1 - pos);
        if (h >= 0) {
            Py_ssize_t c0 = pos + h, c1 = c0;
            while (c1 < end - 1 && !is_space((unsigned char)s[c1]))
                c1++;
            if (c1 > c0) {
                Py_ssize_t cl = c1 - c0, stop = end;
                /* (?:...-A[ \t]+(?P=c)(?=[ \t\n])[^\n]*\n)* */
                while (stop < n) {
                    const char *nl2 = memchr(s + stop, '\n', (size_t)(n - stop));
                    Py_ssize_t e2 = (Py_ssize_t)(nl2 - s) + 1;
                    Py_ssize_t h2 = rule_head(s + stop, e2 - 1 - stop);
                    if (h2 < 0)
                        break;
                    Py_ssize_t k = stop + h2;
                    if (!(k + cl < e2 && memcmp(s + k, s + c0, (size_t)cl) == 0
                          && (s[k + cl] == ' ' || s[k + cl] == '\t' || s[k + cl] == '\n')))
                        break;
                    stop = e2;
                }
                PyObject *block = PyUnicode_FromStringAndSize(s + pos, stop - pos);
                PyObject *chain = PyUnicode_FromStringAndSize(s + c0, cl);
                int r = (block && chain) ? append4(out, empty, 0, block, chain) : -1;
                Py_XDECREF(block);
                Py_XDECREF(chain);
                if (r < 0)
                    goto fail;
                pos = stop;
                continue;
            }
        }
        {   /* (?:^[ \t]*:[^\n]*\n)+ */
            Py_ssize_t stop = pos;
            while (stop < n) {
                Py_ssize_t i = stop;
                while (i < n && is_blank((unsigned char)s[i]))
                    i++;
                if (i >= n || s[i] != ':')
                    break;
                stop = (Py_ssize_t)((const char *)memchr(s + i, '\n', (size_t)(n - i)) - s) + 1;
            }
            if (stop > pos) {
                PyObject *decls = PyUnicode_FromStringAndSize(s + pos, stop - pos);
                int r = decls ? append4(out, empty, 2, decls, NULL) : -1;
                Py_XDECREF(decls);
                if (r < 0)
                    goto fail;
                pos = stop;
                continue;
            }
        }
        PyObject *other = PyUnicode_FromStringAndSize(s + pos, end - pos);
        int r = other ? append4(out, empty, 3, other, NULL) : -1;
        Py_XDECREF(other);
        if (r < 0)
            goto fail;
        pos = end;
    }
    Py_DECREF(empty);
    return out;
fail:
    Py_XDECREF(out);
    Py_XDECREF(empty);
    return NULL;
}

static PyMethodDef methods[] = {
    {"dnat", scan_dnat, METH_O, "chain -> DNAT destination of endpoint chains (see parse.bulk._scan_dnat)."},
    {"cascades", scan_cascades, METH_O, "chain -> cascade branches (see parse.bulk._scan_cascades)."},
    {"segments", scan_segments, METH_O, "parse.iptables_save._SEGMENTS.findall(text) for ASCII text, else None."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "svcinspect._scan",
    "Optional compiled scanner for svcinspect.parse.bulk (the pure-Python code is the fallback).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__scan(void)
{
    return PyModule_Create(&module);
}

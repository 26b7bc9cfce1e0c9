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
#include <structmember.h>
#include "_scan_shared.h"
#include <string.h>
#include <math.h>


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


/* --- fold: the parser's loop over a run of rule blocks --------------------------- */

static Py_ssize_t count_newlines(PyObject *block, PyObject *nl)
{
    if (PyUnicode_IS_ASCII(block)) {
        const char *s = (const char *)PyUnicode_DATA(block);
        Py_ssize_t n = PyUnicode_GET_LENGTH(block), c = 0;
        const char *p = s, *end = s + n;
        while ((p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
            c++;
            p++;
        }
        return c;
    }
    return PyUnicode_Count(block, nl, 0, PY_SSIZE_T_MAX);
}

/* fold(segments, start, chains, undeclared, lineno) -> (end, lineno, rule lines, blocks)
 *
 * What parse_iptables_save's loop does for each rule block of segments[start:],
 * up to the first item that is not one (``end``): the block goes to its chain's
 * entry in ``chains`` (a new ``[None, None, lineno, [], False]`` entry, noted in
 * ``undeclared``, for a chain not seen yet). */
static int lr3_starts(PyObject *name, const char *prefix);

/* fold(segments, start, chains, undeclared, lineno, last) -> (end, lineno, rule
 * lines, blocks, runs): the same fold, and ``runs`` what
 * ``kube_runs(segments, start, end, last, chains)`` gives after it (read as the
 * blocks are folded: one look-up of each chain, not two), or None where that
 * gives None (out of order, or a shape it leaves to Python). */
static PyObject *scan_fold(PyObject *self, PyObject *args)
{
    PyObject *segs, *chains, *undeclared, *last = NULL;
    Py_ssize_t i, lineno, lines = 0, blocks = 0;
    if (!PyArg_ParseTuple(args, "O!nO!O!n|O", &PyList_Type, &segs, &i, &PyDict_Type, &chains, &PyList_Type,
                          &undeclared, &lineno, &last))
        return NULL;
    /* the KUBE runs (with ``last``): in order so far, the last name, the two lists */
    int ordered = last != NULL && PyUnicode_Check(last);
    PyObject *prev = ordered ? last : NULL, *seps = NULL, *cascades = NULL;
    if (ordered && ((seps = PyList_New(0)) == NULL || (cascades = PyList_New(0)) == NULL)) {
        Py_XDECREF(seps);
        return NULL;
    }
    PyObject *nl = PyUnicode_FromStringAndSize("\n", 1);
    if (nl == NULL) {
        Py_XDECREF(seps);
        Py_XDECREF(cascades);
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(segs);
    if (i < 0)
        i = 0;
    for (; i < n; i++) {
        PyObject *item = PyList_GET_ITEM(segs, i);
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 4) {
            PyErr_SetString(PyExc_TypeError, "segments are 4-tuples");
            goto fail;
        }
        PyObject *block = PyTuple_GET_ITEM(item, 0), *chain = PyTuple_GET_ITEM(item, 1);
        if (!PyUnicode_Check(block) || !PyUnicode_Check(chain)) {
            PyErr_SetString(PyExc_TypeError, "segments hold str");
            goto fail;
        }
        if (PyUnicode_READY(block) < 0)
            goto fail;
        if (PyUnicode_GET_LENGTH(block) == 0)
            break;
        Py_ssize_t count = count_newlines(block, nl);
        if (count < 0)
            goto fail;
        PyObject *ln = PyLong_FromSsize_t(lineno);
        if (ln == NULL)
            goto fail;
        PyObject *entry = PyDict_GetItemWithError(chains, chain);  /* borrowed */
        if (entry == NULL) {
            if (PyErr_Occurred()) {
                Py_DECREF(ln);
                goto fail;
            }
            PyObject *runs = PyList_New(0);
            entry = runs ? PyList_New(5) : NULL;
            if (entry == NULL) {
                Py_XDECREF(runs);
                Py_DECREF(ln);
                goto fail;
            }
            Py_INCREF(Py_None);
            PyList_SET_ITEM(entry, 0, Py_None);
            Py_INCREF(Py_None);
            PyList_SET_ITEM(entry, 1, Py_None);
            Py_INCREF(ln);
            PyList_SET_ITEM(entry, 2, ln);
            PyList_SET_ITEM(entry, 3, runs);
            Py_INCREF(Py_False);
            PyList_SET_ITEM(entry, 4, Py_False);
            PyObject *note = PyTuple_Pack(2, chain, ln);
            int bad = note == NULL || PyDict_SetItem(chains, chain, entry) < 0 || PyList_Append(undeclared, note) < 0;
            Py_XDECREF(note);
            Py_DECREF(entry);  /* the dict holds it */
            if (bad) {
                Py_DECREF(ln);
                goto fail;
            }
        } else if (!PyList_Check(entry) || PyList_GET_SIZE(entry) != 5 || !PyList_Check(PyList_GET_ITEM(entry, 3))) {
            Py_DECREF(ln);
            PyErr_SetString(PyExc_TypeError, "chain entries are 5-item lists");
            goto fail;
        }
        PyObject *run = PyTuple_Pack(2, ln, block);
        Py_DECREF(ln);
        if (run == NULL || PyList_Append(PyList_GET_ITEM(entry, 3), run) < 0) {
            Py_XDECREF(run);
            goto fail;
        }
        Py_DECREF(run);
        lineno += count;
        lines += count;
        blocks++;
        if (ordered && PyUnicode_CheckExact(chain) && PyUnicode_CheckExact(block) && lr3_starts(chain, "KUBE-")) {
            /* kube_runs' two passes: the names strictly increasing, then the
             * endpoint and cascade chains with their first run's line */
            int gt = PyUnicode_Compare(chain, prev);
            if (gt == -1 && PyErr_Occurred())
                goto fail;
            if (gt <= 0) {
                ordered = 0;
                continue;
            }
            prev = chain;
            PyObject *into = NULL;
            if (lr3_starts(chain, "KUBE-SEP-"))
                into = seps;
            else if (lr3_starts(chain, "KUBE-SVC-") || lr3_starts(chain, "KUBE-SVL-") || lr3_starts(chain, "KUBE-XLB-"))
                into = cascades;
            if (into != NULL) {
                PyObject *first = PyList_GET_ITEM(PyList_GET_ITEM(entry, 3), 0);
                PyObject *item = PyTuple_Pack(3, chain, PyTuple_GET_ITEM(first, 0), block);
                if (item == NULL)
                    goto fail;
                int bad = PyList_Append(into, item);
                Py_DECREF(item);
                if (bad)
                    goto fail;
            }
        } else if (ordered && !(PyUnicode_CheckExact(chain) && PyUnicode_CheckExact(block))) {
            ordered = 0;  /* (kube_runs leaves such segments to Python) */
        }
    }
    Py_DECREF(nl);
    if (last == NULL)
        return Py_BuildValue("nnnn", i, lineno, lines, blocks);
    if (!ordered) {
        Py_XDECREF(seps);
        Py_XDECREF(cascades);
        return Py_BuildValue("nnnnO", i, lineno, lines, blocks, Py_None);
    }
    return Py_BuildValue("nnnn(ONN)", i, lineno, lines, blocks, prev, seps, cascades);
fail:
    Py_DECREF(nl);
    Py_XDECREF(seps);
    Py_XDECREF(cascades);
    return NULL;
}


/* --- declarations ------------------------------------------------------------------ */

/* fold_decls(decls, chains, lineno, no_counters) -> leftovers
 *
 * parse_iptables_save's loop over ``_DECL.findall(decls)`` for ASCII text: a
 * declaration of a chain not in ``chains`` becomes its entry
 * ``[policy or None, counters or None, line, [], True]`` here (counters "[0:0]"
 * as the shared ``no_counters`` tuple); every other one (an empty name, a chain
 * already there) is returned as ``(index, name, policy, packets, bytes)`` for
 * the Python loop, in order. None when ``decls`` is not ASCII. */
static PyObject *scan_fold_decls(PyObject *self, PyObject *args)
{
    PyObject *decls, *chains, *zero;
    Py_ssize_t lineno;
    if (!PyArg_ParseTuple(args, "UO!nO!", &decls, &PyDict_Type, &chains, &lineno, &PyTuple_Type, &zero))
        return NULL;
    if (PyUnicode_READY(decls) < 0)
        return NULL;
    if (!PyUnicode_IS_ASCII(decls))
        Py_RETURN_NONE;
    const char *s = (const char *)PyUnicode_DATA(decls);
    Py_ssize_t n = PyUnicode_GET_LENGTH(decls), pos = 0, index = 0;
    for (Py_ssize_t q = 0; q < n;) {  /* every line a declaration, checked before anything changes */
        while (q < n && is_blank((unsigned char)s[q]))
            q++;
        if (q >= n || s[q] != ':')
            Py_RETURN_NONE;
        const char *nl = memchr(s + q, '\n', (size_t)(n - q));
        q = nl ? (Py_ssize_t)(nl - s) + 1 : n;
    }
    PyObject *left = PyList_New(0);
    if (left == NULL)
        return NULL;
    while (pos < n) {
        const char *nl = memchr(s + pos, '\n', (size_t)(n - pos));
        Py_ssize_t end = nl ? (Py_ssize_t)(nl - s) : n, i = pos;
        /* ^[ \t]*:(\S*)(?:[ \t]+(\S+))?(?:[ \t]+\[(\d+):(\d+)\])?[^\n]*$ */
        while (i < end && is_blank((unsigned char)s[i]))
            i++;
        if (i >= end || s[i] != ':') {  /* cannot happen for a declaration run; leave it to the regex */
            Py_DECREF(left);
            Py_RETURN_NONE;
        }
        Py_ssize_t n0 = ++i;
        while (i < end && !is_space((unsigned char)s[i]))
            i++;
        Py_ssize_t n1 = i, p0 = -1, p1 = -1, k0 = -1, k1 = -1, b0 = -1, b1 = -1;
        Py_ssize_t j = i;
        while (j < end && is_blank((unsigned char)s[j]))
            j++;
        if (j > i && j < end && !is_space((unsigned char)s[j])) {
            p0 = j;
            while (j < end && !is_space((unsigned char)s[j]))
                j++;
            p1 = j;
            i = j;
        }
        j = i;
        while (j < end && is_blank((unsigned char)s[j]))
            j++;
        if (j > i && j < end && s[j] == '[') {
            Py_ssize_t q = j + 1;
            k0 = q;
            while (q < end && is_digit((unsigned char)s[q]))
                q++;
            k1 = q;
            if (k1 > k0 && q < end && s[q] == ':') {
                b0 = ++q;
                while (q < end && is_digit((unsigned char)s[q]))
                    q++;
                b1 = q;
                if (!(b1 > b0 && q < end && s[q] == ']'))
                    k0 = -1;
            } else {
                k0 = -1;
            }
        }
        PyObject *name = PyUnicode_FromStringAndSize(s + n0, n1 - n0);
        if (name == NULL)
            goto fail;
        PyObject *entry = n1 > n0 ? PyDict_GetItemWithError(chains, name) : NULL;
        if (entry == NULL && PyErr_Occurred()) {
            Py_DECREF(name);
            goto fail;
        }
        if (n1 > n0 && entry == NULL) {
            PyObject *policy, *counters, *ln, *runs, *e;
            if (p0 < 0 || (p1 - p0 == 1 && s[p0] == '-')) {
                policy = Py_None;
                Py_INCREF(policy);
            } else {
                policy = PyUnicode_FromStringAndSize(s + p0, p1 - p0);
            }
            if (k0 < 0) {
                counters = Py_None;
                Py_INCREF(counters);
            } else if (k1 - k0 == 1 && s[k0] == '0' && b1 - b0 == 1 && s[b0] == '0') {
                counters = zero;
                Py_INCREF(counters);
            } else {
                PyObject *pk = PyUnicode_FromStringAndSize(s + k0, k1 - k0);
                PyObject *by = PyUnicode_FromStringAndSize(s + b0, b1 - b0);
                counters = pk && by ? PyTuple_Pack(2, pk, by) : NULL;
                Py_XDECREF(pk);
                Py_XDECREF(by);
            }
            ln = PyLong_FromSsize_t(lineno + index);
            runs = PyList_New(0);
            e = PyList_New(5);
            if (policy == NULL || counters == NULL || ln == NULL || runs == NULL || e == NULL) {
                Py_XDECREF(policy);
                Py_XDECREF(counters);
                Py_XDECREF(ln);
                Py_XDECREF(runs);
                Py_XDECREF(e);
                Py_DECREF(name);
                goto fail;
            }
            PyList_SET_ITEM(e, 0, policy);
            PyList_SET_ITEM(e, 1, counters);
            PyList_SET_ITEM(e, 2, ln);
            PyList_SET_ITEM(e, 3, runs);
            Py_INCREF(Py_True);
            PyList_SET_ITEM(e, 4, Py_True);
            int r = PyDict_SetItem(chains, name, e);
            Py_DECREF(e);
            Py_DECREF(name);
            if (r < 0)
                goto fail;
        } else {
            PyObject *row = Py_BuildValue("(nNs#s#s#)", index, name, p0 < 0 ? "" : s + p0,
                                          p0 < 0 ? (Py_ssize_t)0 : p1 - p0, k0 < 0 ? "" : s + k0,
                                          k0 < 0 ? (Py_ssize_t)0 : k1 - k0, k0 < 0 ? "" : s + b0,
                                          k0 < 0 ? (Py_ssize_t)0 : b1 - b0);
            if (row == NULL || PyList_Append(left, row) < 0) {
                Py_XDECREF(row);
                goto fail;
            }
            Py_DECREF(row);
        }
        index++;
        pos = end + 1;
    }
    return left;
fail:
    Py_DECREF(left);
    return NULL;
}


/* --- jump targets --------------------------------------------------------------------- */

static int is_name_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || is_digit(c) || c == '_' || c == '.' || c == '-';
}

/* The targets of " -j KUBE-..." / " -g KUBE-..." in the ASCII block s[0:n], into
 * the set ``out``: every ``KUBE-[A-Za-z0-9_.-]+`` after " -j " or " -g " (the
 * regex's matches, which never overlap a name), looking for each "K" (rarer
 * than the "-" of every option). With ``chains`` (a dict), only the names it
 * does not hold. A name equal to the one seen just before (``*last``, kept
 * across blocks: the caller's list keeps them alive) gives the same answer and
 * is skipped (KUBE-MARK-MASQ in every endpoint chain). 0, or -1 on error. */
/* The jump target whose "K" may be s[pos]: the end of the KUBE-[A-Za-z0-9_.-]+
 * name when " -j " or " -g " comes just before it (the name then begins at
 * pos), else -1. Shared by add_jump_targets and _rawscan.c's scan. */
Py_ssize_t jump_target_end(const char *s, Py_ssize_t n, Py_ssize_t pos)
{
    Py_ssize_t k = pos - 3;  /* where the "-" of " -j " would be */
    if (!(k >= 1 && s[k - 1] == ' ' && s[k] == '-' && (s[k + 1] == 'j' || s[k + 1] == 'g') && s[k + 2] == ' '
          && AT(s, n, pos, "KUBE-") && pos + 5 < n && is_name_char((unsigned char)s[pos + 5])))
        return -1;
    Py_ssize_t e = pos + 5;
    while (e < n && is_name_char((unsigned char)s[e]))
        e++;
    return e;
}

static int add_jump_targets(const char *s, Py_ssize_t n, PyObject *out, PyObject *chains,
                            const char **last, Py_ssize_t *last_len)
{
    Py_ssize_t i = 0;
    while (i < n) {
        const char *p = memchr(s + i, 'K', (size_t)(n - i));
        if (p == NULL)
            break;
        Py_ssize_t k = (Py_ssize_t)(p - s) - 3;
        Py_ssize_t e = jump_target_end(s, n, k + 3);
        if (e >= 0) {
            i = e;
            if (e - (k + 3) == *last_len && memcmp(s + k + 3, *last, (size_t)*last_len) == 0)
                continue;
            *last = s + k + 3;
            *last_len = e - (k + 3);
            PyObject *name = PyUnicode_FromStringAndSize(s + k + 3, e - (k + 3));
            if (name == NULL)
                return -1;
            int known = chains != NULL ? PyDict_Contains(chains, name) : 0;
            if (known < 0 || (!known && PySet_Add(out, name) < 0)) {
                Py_DECREF(name);
                return -1;
            }
            Py_DECREF(name);
        } else {
            i = k + 4;
        }
    }
    return 0;
}

/* jump_targets(blocks) -> set, or None
 *
 * ``set(completeness._JUMP.findall(b))`` over the blocks: every
 * ``KUBE-[A-Za-z0-9_.-]+`` after " -j " or " -g ". None when a block is not
 * ASCII (the caller uses the regex). */
static PyObject *scan_jump_targets(PyObject *self, PyObject *blocks)
{
    if (!PyList_Check(blocks)) {
        PyErr_SetString(PyExc_TypeError, "jump_targets() takes a list of str");
        return NULL;
    }
    Py_ssize_t count = PyList_GET_SIZE(blocks);
    for (Py_ssize_t c = 0; c < count; c++) {
        PyObject *b = PyList_GET_ITEM(blocks, c);
        if (!PyUnicode_Check(b)) {
            PyErr_SetString(PyExc_TypeError, "jump_targets() takes a list of str");
            return NULL;
        }
        if (PyUnicode_READY(b) < 0)
            return NULL;
        if (!PyUnicode_IS_ASCII(b))
            Py_RETURN_NONE;
    }
    PyObject *out = PySet_New(NULL);
    if (out == NULL)
        return NULL;
    const char *last = NULL;  /* the name seen last (in a block the list keeps) */
    Py_ssize_t last_len = -1;
    for (Py_ssize_t c = 0; c < count; c++) {
        PyObject *b = PyList_GET_ITEM(blocks, c);
        if (add_jump_targets((const char *)PyUnicode_DATA(b), PyUnicode_GET_LENGTH(b), out, NULL,
                             &last, &last_len) < 0) {
            Py_DECREF(out);
            return NULL;
        }
    }
    return out;
}

/* --- services: one service port's endpoint shares (issue 14, services) -------------
 *
 *   uniform_shares(rows, dnat, cls, known)    like bulk._uniform_shares
 *
 * ``rows``: a cascade's branch tuples from cascades() (sep, line, text,
 * probability, affinity seconds, comment endpoint); ``dnat``: dnat()'s map;
 * ``cls``: the EndpointShare class, built without its __init__ (the fields are
 * set as object.__setattr__ sets them, one object per endpoint); ``known``:
 * {tuple of the cascade's probability strings: its one share, or None when the
 * cascade is not uniform}. Returns (shares tuple, affinity), or (None,
 * probabilities) when ``known`` has no entry yet, or None for anything that
 * needs a warning or the general reader.
 */
static PyObject *share_fields[5];  /* "endpoint", "sep", "share", "probability", "line" */

static int share_names(void)
{
    static const char *names[5] = {"endpoint", "sep", "share", "probability", "line"};
    for (int i = 0; i < 5; i++)
        if (share_fields[i] == NULL && (share_fields[i] = PyUnicode_InternFromString(names[i])) == NULL)
            return -1;
    return 0;
}

/* Where object.__setattr__(obj, name, v) stores v for objects of ``type``: the
 * byte offset of the slot when ``name`` is one of the type's own writable
 * object slots (a member descriptor, as @dataclass(slots=True) makes), else -1
 * (then PyObject_GenericSetAttr sets it). Storing at the offset is what the
 * descriptor's setter does for a fresh object, without the look-up per field
 * (perf-services2). */
static Py_ssize_t slot_offset(PyTypeObject *type, PyObject *name)
{
    PyObject *d = _PyType_Lookup(type, name);  /* borrowed */
    if (d == NULL || !Py_IS_TYPE(d, &PyMemberDescr_Type) || PyDescr_TYPE(d) != type)
        return -1;
    PyMemberDef *m = ((PyMemberDescrObject *)d)->d_member;
    if (m->type != T_OBJECT_EX || (m->flags & READONLY) || m->offset <= 0)
        return -1;
    return m->offset;
}

/* object.__setattr__(obj, name, v) on a fresh object: at ``offset`` (from
 * slot_offset, -1 for none) or through the generic setter. */
static int set_field(PyObject *obj, Py_ssize_t offset, PyObject *name, PyObject *v)
{
    if (offset < 0)
        return PyObject_GenericSetAttr(obj, name, v);
    PyObject **addr = (PyObject **)((char *)obj + offset);
    PyObject *old = *addr;
    *addr = Py_NewRef(v);
    Py_XDECREF(old);
    return 0;
}

static PyObject *scan_uniform_shares(PyObject *self, PyObject *args)
{
    PyObject *rows, *dnat, *cls, *known;
    if (!PyArg_ParseTuple(args, "O!O!O!O!:uniform_shares", &PyList_Type, &rows, &PyDict_Type, &dnat,
                          &PyType_Type, &cls, &PyDict_Type, &known))
        return NULL;
    if (share_names() < 0)
        return NULL;
    if (!(((PyTypeObject *)cls)->tp_flags & Py_TPFLAGS_HEAPTYPE) || ((PyTypeObject *)cls)->tp_base != &PyBaseObject_Type
            || ((PyTypeObject *)cls)->tp_new != PyBaseObject_Type.tp_new) {
        PyErr_SetString(PyExc_TypeError, "uniform_shares() makes objects of a plain class (EndpointShare)");
        return NULL;
    }
    Py_ssize_t count = PyList_GET_SIZE(rows);
    PyObject *affinity = Py_None;  /* borrowed from a row, which the list keeps */
    Py_ssize_t n = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *row = PyList_GET_ITEM(rows, i);
        if (!PyTuple_Check(row) || PyTuple_GET_SIZE(row) != 6) {
            PyErr_SetString(PyExc_TypeError, "uniform_shares() rows are 6-tuples");
            return NULL;
        }
        if (PyTuple_GET_ITEM(row, 4) != Py_None)
            affinity = PyTuple_GET_ITEM(row, 4);
        else
            n++;
    }
    if (n == 0)
        Py_RETURN_NONE;
    PyObject *probs = PyTuple_New(n);
    if (probs == NULL)
        return NULL;
    for (Py_ssize_t i = 0, k = 0; i < count; i++) {
        PyObject *row = PyList_GET_ITEM(rows, i);
        if (PyTuple_GET_ITEM(row, 4) == Py_None) {
            PyObject *p = PyTuple_GET_ITEM(row, 3);
            Py_INCREF(p);
            PyTuple_SET_ITEM(probs, k++, p);
        }
    }
    PyObject *share = PyDict_GetItemWithError(known, probs);  /* borrowed */
    if (share == NULL) {
        if (PyErr_Occurred()) {
            Py_DECREF(probs);
            return NULL;
        }
        PyObject *r = PyTuple_Pack(2, Py_None, probs);
        Py_DECREF(probs);
        return r;
    }
    Py_DECREF(probs);
    if (share == Py_None)
        Py_RETURN_NONE;
    Py_INCREF(share);  /* held while objects are made: known may change under a __setattr__ */
    PyTypeObject *type = (PyTypeObject *)cls;
    Py_ssize_t offsets[5];
    for (int f = 0; f < 5; f++)
        offsets[f] = slot_offset(type, share_fields[f]);
    PyObject *out = PyTuple_New(n);
    if (out == NULL) {
        Py_DECREF(share);
        return NULL;
    }
    for (Py_ssize_t i = 0, k = 0; i < count; i++) {
        PyObject *row = PyList_GET_ITEM(rows, i);
        if (PyTuple_GET_ITEM(row, 4) != Py_None)
            continue;
        PyObject *sep = PyTuple_GET_ITEM(row, 0), *said = PyTuple_GET_ITEM(row, 5);
        PyObject *endpoint = PyDict_GetItemWithError(dnat, sep);  /* borrowed */
        if (endpoint == NULL && PyErr_Occurred())
            goto fail;
        if (endpoint == NULL || endpoint == Py_None)  /* not read by the bulk pass, or no DNAT: Python decides */
            goto decline;
        if (said != Py_None) {
            int truthy = PyObject_IsTrue(said);
            if (truthy < 0)
                goto fail;
            if (truthy) {
                int same = PyObject_RichCompareBool(said, endpoint, Py_EQ);
                if (same < 0)
                    goto fail;
                if (!same)  /* the comment disagrees with the DNAT: a warning */
                    goto decline;
            }
        }
        PyObject *obj = type->tp_alloc(type, 0);
        if (obj == NULL)
            goto fail;
        PyTuple_SET_ITEM(out, k++, obj);
        PyObject *values[5] = {endpoint, sep, share, PyTuple_GET_ITEM(row, 3), PyTuple_GET_ITEM(row, 1)};
        for (int f = 0; f < 5; f++)
            if (set_field(obj, offsets[f], share_fields[f], values[f]) < 0)
                goto fail;
    }
    Py_DECREF(share);
    {
        PyObject *r = PyTuple_Pack(2, out, affinity);
        Py_DECREF(out);
        return r;
    }
decline:
    Py_DECREF(share);
    Py_DECREF(out);
    Py_RETURN_NONE;
fail:
    Py_DECREF(share);
    Py_DECREF(out);
    return NULL;
}
/*   json_floats_may_differ(data)    like render.json._orjson_may_differ_py
 *
 * Whether bytes ``data`` hold "0.0000" or a digit followed by "e": where
 * orjson may spell a float unlike json.dumps (1e-05, 1e+16).
 */
static PyObject *scan_json_floats_may_differ(PyObject *self, PyObject *data)
{
    if (!PyBytes_Check(data)) {
        PyErr_SetString(PyExc_TypeError, "json_floats_may_differ() takes bytes");
        return NULL;
    }
    const char *s = PyBytes_AS_STRING(data);
    Py_ssize_t n = PyBytes_GET_SIZE(data);
    for (Py_ssize_t i = 0; i < n; i++) {
        const char *p = memchr(s + i, 'e', (size_t)(n - i));
        if (p == NULL)
            break;
        i = p - s;
        if (i > 0 && is_digit((unsigned char)s[i - 1]))
            Py_RETURN_TRUE;
    }
    for (Py_ssize_t i = 0; i + 6 <= n; i++) {
        const char *p = memchr(s + i, '0', (size_t)(n - i));
        if (p == NULL)
            break;
        i = p - s;
        if (AT(s, n, i, "0.0000"))
            Py_RETURN_TRUE;
    }
    Py_RETURN_FALSE;
}
/*   new_frozen(cls, names, values)    like cls(*values)
 *
 * An object of a frozen dataclass of svcinspect.model (EndpointPoint,
 * ServicePortRules) built without its __init__: every field of ``names`` (all
 * of them, in order) set to the value at the same place of ``values``, as the
 * generated __init__ sets them (object.__setattr__). Only for classes whose
 * __init__ does nothing else (no __post_init__, no default factories).
 */
static PyObject *scan_new_frozen(PyObject *self, PyObject *args)
{
    PyObject *cls, *names, *values;
    if (!PyArg_ParseTuple(args, "O!O!O!:new_frozen", &PyType_Type, &cls, &PyTuple_Type, &names, &PyTuple_Type, &values))
        return NULL;
    PyTypeObject *type = (PyTypeObject *)cls;
    if (!(type->tp_flags & Py_TPFLAGS_HEAPTYPE) || type->tp_base != &PyBaseObject_Type
            || type->tp_new != PyBaseObject_Type.tp_new) {
        PyErr_SetString(PyExc_TypeError, "new_frozen() makes objects of a plain class");
        return NULL;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(names);
    if (PyTuple_GET_SIZE(values) != n) {
        PyErr_SetString(PyExc_TypeError, "new_frozen() takes as many values as names");
        return NULL;
    }
    PyObject *obj = type->tp_alloc(type, 0);
    if (obj == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *name = PyTuple_GET_ITEM(names, i);
        if (!PyUnicode_Check(name)) {
            PyErr_SetString(PyExc_TypeError, "new_frozen() field names are str");
            Py_DECREF(obj);
            return NULL;
        }
        if (set_field(obj, slot_offset(type, name), name, PyTuple_GET_ITEM(values, i)) < 0) {
            Py_DECREF(obj);
            return NULL;
        }
    }
    return obj;
}
/* --- end of services ----------------------------------------------------------------- */
/* --- dump_shapes: render.iptables._shapes_of, compiled ------------------------
 *
 * dump_shapes(text, counted) -> ({template: first line}, plain) or None
 *
 * The templates of render.iptables._TEMPLATE_SUBS, applied one after the other
 * exactly as the regexes are (each pass a left-to-right, non-overlapping scan
 * of one pattern, the counters pass only when ``counted``), then the lines of
 * the result: each distinct template (in order of first appearance) mapped to
 * the first line of ``text`` that has it; ``plain`` is render.iptables._plain.
 * None for text that is not ASCII (the regexes then run, and decide).
 */

typedef struct {
    char *buf;
    Py_ssize_t len;
} shape_buf;

/* memmem search for needle (length m >= 1) in s[from:n]. */
static Py_ssize_t shape_find(const char *s, Py_ssize_t n, Py_ssize_t from, const char *needle, Py_ssize_t m)
{
    if (from + m > n)
        return -1;
    const char *p = memmem(s + from, (size_t)(n - from), needle, (size_t)m);
    return p == NULL ? -1 : p - s;
}

/* One counter of ^\[(?:0|[1-9][0-9]*):(?:0|[1-9][0-9]*)\] : the end of the
 * number starting at i, or -1. */
static Py_ssize_t shape_count(const char *s, Py_ssize_t n, Py_ssize_t i)
{
    if (i >= n || !is_digit((unsigned char)s[i]))
        return -1;
    if (s[i] == '0')
        return i + 1;
    i++;
    while (i < n && is_digit((unsigned char)s[i]))
        i++;
    return i;
}

/* ^\[N:N\] (re.M) -> "[N:N] " */
static Py_ssize_t shape_pass_counters(const char *s, Py_ssize_t n, char *o)
{
    Py_ssize_t i = 0, w = 0;
    while (i < n) {
        /* i is a line start */
        if (s[i] == '[') {
            Py_ssize_t a = shape_count(s, n, i + 1);
            if (a >= 0 && a < n && s[a] == ':') {
                Py_ssize_t b = shape_count(s, n, a + 1);
                if (b >= 0 && b + 1 < n && s[b] == ']' && s[b + 1] == ' ') {
                    memcpy(o + w, "[N:N] ", 6);
                    w += 6;
                    i = b + 2;
                }
            }
        }
        const char *nl = memchr(s + i, '\n', (size_t)(n - i));
        Py_ssize_t e = nl == NULL ? n : (nl - s) + 1;
        memcpy(o + w, s + i, (size_t)(e - i));
        w += e - i;
        i = e;
    }
    return w;
}

/* The generic literal-led pass: at each occurrence of lit, ``match`` gives the
 * end of the match (or -1); the match is replaced by repl. */
typedef Py_ssize_t (*shape_matcher)(const char *s, Py_ssize_t n, Py_ssize_t after);

static Py_ssize_t shape_pass(const char *s, Py_ssize_t n, char *o, const char *lit, Py_ssize_t m,
                             shape_matcher match, const char *repl)
{
    Py_ssize_t i = 0, w = 0, from = 0;
    Py_ssize_t r = (Py_ssize_t)strlen(repl);
    for (;;) {
        Py_ssize_t k = shape_find(s, n, from, lit, m);
        if (k < 0)
            break;
        Py_ssize_t e = match(s, n, k + m);
        if (e < 0) {
            from = k + 1;
            continue;
        }
        memcpy(o + w, s + i, (size_t)(k - i));
        w += k - i;
        memcpy(o + w, repl, (size_t)r);
        w += r;
        i = from = e;
    }
    memcpy(o + w, s + i, (size_t)(n - i));
    return w + n - i;
}

/* "[^"\\\n ODD]*" after ' --comment ' */
static Py_ssize_t shape_m_comment(const char *s, Py_ssize_t n, Py_ssize_t j)
{
    while (j < n && s[j] != '"' && s[j] != '\\' && s[j] != '\n' && !is_odd((unsigned char)s[j]))
        j++;
    return j < n && s[j] == '"' ? j + 1 : -1;
}

/* [A-Z2-7]{16} */
static Py_ssize_t shape_m_hash(const char *s, Py_ssize_t n, Py_ssize_t j)
{
    if (n - j < 16)
        return -1;
    for (Py_ssize_t k = j; k < j + 16; k++)
        if (!is_b32((unsigned char)s[k]))
            return -1;
    return j + 16;
}

/* _OCTET followed by ``next``: the octet is the whole digit run. */
static Py_ssize_t shape_octet(const char *s, Py_ssize_t n, Py_ssize_t j, char next)
{
    Py_ssize_t k = j;
    while (k < n && is_digit((unsigned char)s[k]))
        k++;
    Py_ssize_t d = k - j;
    if (d < 1 || d > 3 || k >= n || s[k] != next)
        return -1;
    if (d > 1 && s[j] == '0')
        return -1;
    if (d == 3 && (s[j] - '0') * 100 + (s[j + 1] - '0') * 10 + (s[j + 2] - '0') > 255)
        return -1;
    return k + 1;
}

/* _ADDR32: dotted quad, /32, then a blank (not consumed) */
static Py_ssize_t shape_m_addr(const char *s, Py_ssize_t n, Py_ssize_t j)
{
    for (int q = 0; q < 3; q++) {
        j = shape_octet(s, n, j, '.');
        if (j < 0)
            return -1;
    }
    j = shape_octet(s, n, j, '/');
    if (j < 0 || n - j < 3 || s[j] != '3' || s[j + 1] != '2' || s[j + 2] != ' ')
        return -1;
    return j + 2;
}

static int shape_arg_char(unsigned char c)
{
    return is_digit(c) || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '.' || c == ':' || c == '/';
}

/* _ARG: [0-9][0-9A-Za-z.:/]*(?= |$) */
static Py_ssize_t shape_m_arg(const char *s, Py_ssize_t n, Py_ssize_t j)
{
    if (j >= n || !is_digit((unsigned char)s[j]))
        return -1;
    j++;
    while (j < n && shape_arg_char((unsigned char)s[j]))
        j++;
    return (j == n || s[j] == ' ' || s[j] == '\n') ? j : -1;
}

static const char *const shape_hash_lits[] = {"KUBE-SEP-", "KUBE-SVC-", "KUBE-SVL-", "KUBE-EXT-", "KUBE-FW-", "KUBE-XLB-"};
static const char *const shape_hash_reps[] = {"KUBE-SEP-H", "KUBE-SVC-H", "KUBE-SVL-H", "KUBE-EXT-H", "KUBE-FW-H", "KUBE-XLB-H"};
static const char *const shape_arg_lits[] = {" --dport ", " --sport ", " --probability ", " --to-destination ",
                                             " --to-source ", " --seconds ", " --mask ", " --mark ", " --set-xmark "};
static const char *const shape_arg_reps[] = {" --dport N", " --sport N", " --probability N", " --to-destination N",
                                             " --to-source N", " --seconds N", " --mask N", " --mark N", " --set-xmark N"};

/* render.iptables._plain for ASCII text */
static int shape_plain(const char *s, Py_ssize_t n)
{
    if (n > 0 && s[0] == ' ')
        return 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\t' || is_odd(c))
            return 0;
        if (c == '\n' && ((i > 0 && s[i - 1] == ' ') || (i + 1 < n && s[i + 1] == ' ')))
            return 0;
    }
    return 1;
}

/* Python's keyed bytes hash (SipHash, seeded per process): the names are
 * input, and a fixed hash lets names be made to collide in the table's low
 * bits (see tests/test_hostile_hash.py). */
static size_t idx_hash(const char *s, Py_ssize_t n)
{
    return (size_t)_Py_HashBytes(s, n);
}

/* render.iptables._distinct: no two lines alike (their counters aside when
 * ``counted``: from a leading "[" up to the first "] "); -1 without memory. */
static int shape_distinct(const char *s, Py_ssize_t n, int counted)
{
    Py_ssize_t lines = 0;
    for (Py_ssize_t i = 0; i < n; i++)
        lines += s[i] == '\n';
    lines += 1;
    size_t mask = 15;
    while (mask + 1 < (size_t)lines * 2)
        mask = mask * 2 + 1;
    Py_ssize_t *at = PyMem_Malloc((mask + 1) * sizeof(Py_ssize_t) * 2); /* (offset + 1, length) per slot */
    if (at == NULL)
        return -1;
    memset(at, 0, (mask + 1) * sizeof(Py_ssize_t) * 2);
    int distinct = 1;
    Py_ssize_t a = 0;
    while (a < n) {
        const char *nl = memchr(s + a, '\n', (size_t)(n - a));
        Py_ssize_t e = nl == NULL ? n : nl - s, b = a;
        if (counted && e > a && s[a] == '[') {
            for (Py_ssize_t k = a + 1; k + 1 < e; k++)
                if (s[k] == ']' && s[k + 1] == ' ') {
                    b = k + 2;
                    break;
                }
        }
        Py_ssize_t len = e - b;
        if (nl == NULL && len == 0)
            break; /* split_lines drops an empty last line (here, counters with no rule after them) */
        size_t h = (size_t)_Py_HashBytes(s + b, len) & mask;
        for (; at[2 * h] != 0; h = (h + 1) & mask)
            if (at[2 * h + 1] == len && memcmp(s + at[2 * h] - 1, s + b, (size_t)len) == 0) {
                distinct = 0;
                break;
            }
        if (!distinct)
            break;
        at[2 * h] = b + 1;
        at[2 * h + 1] = len;
        if (nl == NULL)
            break;
        a = e + 1;
    }
    PyMem_Free(at);
    return distinct;
}

static PyObject *scan_dump_shapes(PyObject *self, PyObject *args)
{
    PyObject *text;
    int counted;
    if (!PyArg_ParseTuple(args, "Up:dump_shapes", &text, &counted))
        return NULL;
    if (!PyUnicode_IS_ASCII(text))
        Py_RETURN_NONE;
    const char *src = (const char *)PyUnicode_DATA(text);
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    /* Only the comment pass grows the text: one byte per match of >= 13 bytes. */
    Py_ssize_t cap = n + n / 13 + 16;
    char *a = PyMem_Malloc((size_t)cap), *b = PyMem_Malloc((size_t)cap);
    if (a == NULL || b == NULL) {
        PyMem_Free(a);
        PyMem_Free(b);
        return PyErr_NoMemory();
    }
    const char *cur = src;
    Py_ssize_t len = n;
    char *out = a;
#define SHAPE_SWAP(newlen) do { len = (newlen); cur = out; out = (out == a) ? b : a; } while (0)
    if (counted)
        SHAPE_SWAP(shape_pass_counters(cur, len, out));
    SHAPE_SWAP(shape_pass(cur, len, out, " --comment \"", LEN(" --comment \""), shape_m_comment, " --comment \"C\""));
    for (size_t k = 0; k < sizeof(shape_hash_lits) / sizeof(shape_hash_lits[0]); k++)
        SHAPE_SWAP(shape_pass(cur, len, out, shape_hash_lits[k], (Py_ssize_t)strlen(shape_hash_lits[k]), shape_m_hash,
                              shape_hash_reps[k]));
    SHAPE_SWAP(shape_pass(cur, len, out, " -s ", 4, shape_m_addr, " -s A/32"));
    SHAPE_SWAP(shape_pass(cur, len, out, " -d ", 4, shape_m_addr, " -d A/32"));
    for (size_t k = 0; k < sizeof(shape_arg_lits) / sizeof(shape_arg_lits[0]); k++)
        SHAPE_SWAP(shape_pass(cur, len, out, shape_arg_lits[k], (Py_ssize_t)strlen(shape_arg_lits[k]), shape_m_arg,
                              shape_arg_reps[k]));
#undef SHAPE_SWAP
    PyObject *first = PyDict_New();
    if (first == NULL)
        goto fail;
    /* The lines of cur (templates) and of src (the text) correspond one to one:
     * no pass adds or removes a newline. split_lines drops one trailing empty line. */
    Py_ssize_t ti = 0, si = 0;
    while (ti < len || si < n) {
        const char *tn = memchr(cur + ti, '\n', (size_t)(len - ti));
        const char *sn = memchr(src + si, '\n', (size_t)(n - si));
        Py_ssize_t te = tn == NULL ? len : tn - cur, se = sn == NULL ? n : sn - src;
        if ((tn == NULL) != (sn == NULL)) { /* never (no pass adds or removes a newline): as _shapes_of, None */
            Py_DECREF(first);
            PyMem_Free(a);
            PyMem_Free(b);
            Py_RETURN_NONE;
        }
        PyObject *key = PyUnicode_FromStringAndSize(cur + ti, te - ti);
        if (key == NULL) {
            Py_DECREF(first);
            goto fail;
        }
        int has = PyDict_Contains(first, key);
        if (has == 0) {
            PyObject *line = PyUnicode_FromStringAndSize(src + si, se - si);
            if (line == NULL || PyDict_SetItem(first, key, line) < 0) {
                Py_XDECREF(line);
                Py_DECREF(key);
                Py_DECREF(first);
                goto fail;
            }
            Py_DECREF(line);
        }
        Py_DECREF(key);
        if (has < 0) {
            Py_DECREF(first);
            goto fail;
        }
        if (tn == NULL)
            break;
        ti = te + 1;
        si = se + 1;
    }
    PyMem_Free(a);
    PyMem_Free(b);
    int distinct = shape_distinct(src, n, counted);
    if (distinct < 0) {
        Py_DECREF(first);
        return PyErr_NoMemory();
    }
    return Py_BuildValue("(NOO)", first, shape_plain(src, n) ? Py_True : Py_False, distinct ? Py_True : Py_False);
fail:
    PyMem_Free(a);
    PyMem_Free(b);
    return NULL;
}

/* --- the dump index (dataplane/iptables/index.py), compiled -------------------
 *
 * count_all(data, specs)  -> [data.count(needle, start, end) for needle, start, end in specs]
 * rule_names(data, start, end, keys, counted)
 *                          -> index._rule_names(...): {key: how many rule lines of
 *                             chain key} over the lines of [start - 1, end)
 *
 * ``data`` is bytes. count_all counts non-overlapping occurrences like
 * bytes.count (indices adjusted like a slice); an empty needle raises
 * ValueError (the caller never asks). rule_names returns None when a key is
 * empty or holds a blank or newline (then the regex runs).
 */

static void idx_adjust(Py_ssize_t *start, Py_ssize_t *end, Py_ssize_t len)
{
    if (*end > len)
        *end = len;
    else if (*end < 0) {
        *end += len;
        if (*end < 0)
            *end = 0;
    }
    if (*start < 0) {
        *start += len;
        if (*start < 0)
            *start = 0;
    }
}

static Py_ssize_t idx_count(const char *s, Py_ssize_t len, const char *needle, Py_ssize_t m, Py_ssize_t start,
                            Py_ssize_t end)
{
    idx_adjust(&start, &end, len);
    if (end - start < m)
        return 0;
    Py_ssize_t n = 0;
    if (m == 1) {
        const char *p = s + start, *e = s + end;
        while (p < e && (p = memchr(p, needle[0], (size_t)(e - p))) != NULL) {
            n++;
            p++;
        }
        return n;
    }
    /* The needles of the index start with a byte found about once a line
     * ("\n", "]"): memchr to each, then compare (memmem is slower for them). */
    Py_ssize_t i = start;
    while (end - i >= m) {
        const char *p = memchr(s + i, needle[0], (size_t)(end - i - m + 1));
        if (p == NULL)
            break;
        i = p - s;
        if (memcmp(p + 1, needle + 1, (size_t)(m - 1)) == 0) {
            n++;
            i += m;
        } else {
            i++;
        }
    }
    return n;
}

static PyObject *scan_count_all(PyObject *self, PyObject *args)
{
    Py_buffer data;
    PyObject *specs;
    if (!PyArg_ParseTuple(args, "y*O!:count_all", &data, &PyList_Type, &specs))
        return NULL;
    Py_ssize_t k = PyList_GET_SIZE(specs);
    PyObject *out = PyList_New(k);
    if (out == NULL)
        goto done;
    for (Py_ssize_t i = 0; i < k; i++) {
        PyObject *spec = PyList_GET_ITEM(specs, i);
        const char *needle;
        Py_ssize_t m, start, end;
        if (!PyTuple_Check(spec) || !PyArg_ParseTuple(spec, "y#nn:count_all spec", &needle, &m, &start, &end)) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_TypeError, "count_all: each spec is (bytes, start, end)");
            Py_CLEAR(out);
            goto done;
        }
        if (m == 0) {
            PyErr_SetString(PyExc_ValueError, "count_all: empty needle");
            Py_CLEAR(out);
            goto done;
        }
        PyObject *c = PyLong_FromSsize_t(idx_count((const char *)data.buf, data.len, needle, m, start, end));
        if (c == NULL) {
            Py_CLEAR(out);
            goto done;
        }
        PyList_SET_ITEM(out, i, c);
    }
done:
    PyBuffer_Release(&data);
    return out;
}

static PyObject *scan_rule_names(PyObject *self, PyObject *args)
{
    Py_buffer data;
    Py_ssize_t start, end;
    PyObject *keys;
    int counted;
    if (!PyArg_ParseTuple(args, "y*nnOp:rule_names", &data, &start, &end, &keys, &counted))
        return NULL;
    Py_ssize_t *slots = NULL;
    PyObject *out = NULL, *seq = PySequence_Fast(keys, "rule_names: keys must be iterable");
    if (seq == NULL)
        goto done;
    Py_ssize_t nk = PySequence_Fast_GET_SIZE(seq);
    for (Py_ssize_t i = 0; i < nk; i++) {
        PyObject *key = PySequence_Fast_GET_ITEM(seq, i);
        if (!PyBytes_Check(key)) {
            PyErr_SetString(PyExc_TypeError, "rule_names: keys must be bytes");
            goto done;
        }
        Py_ssize_t kl = PyBytes_GET_SIZE(key);
        const char *kb = PyBytes_AS_STRING(key);
        if (kl == 0 || memchr(kb, ' ', (size_t)kl) != NULL || memchr(kb, '\n', (size_t)kl) != NULL) {
            out = Py_None;
            Py_INCREF(out);
            goto done;
        }
    }
    /* the keys in an open-addressing table of their hashes: a line's name is
     * compared with the key of its slot only */
    size_t mask = 15;
    while (mask + 1 < (size_t)nk * 4)
        mask = mask * 2 + 1;
    slots = PyMem_Calloc(mask + 1, sizeof(Py_ssize_t));
    if (slots == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t k = 0; k < nk; k++) {
        PyObject *key = PySequence_Fast_GET_ITEM(seq, k);
        size_t h = idx_hash(PyBytes_AS_STRING(key), PyBytes_GET_SIZE(key)) & mask;
        while (slots[h] != 0)
            h = (h + 1) & mask;
        slots[h] = k + 1;
    }
    out = PyDict_New();
    if (out == NULL)
        goto done;
    const char *s = (const char *)data.buf;
    Py_ssize_t len = data.len;
    Py_ssize_t endpos = end;
    Py_ssize_t pos = start - 1;
    idx_adjust(&pos, &endpos, len);
    while (pos < endpos) {
        const char *nl = memchr(s + pos, '\n', (size_t)(endpos - pos));
        if (nl == NULL)
            break;
        Py_ssize_t i = (nl - s) + 1;
        pos = i;
        if (counted) {
            if (i >= endpos || s[i] != '[')
                continue;
            Py_ssize_t j = i + 1, d = j;
            while (j < endpos && is_digit((unsigned char)s[j]))
                j++;
            if (j == d || j >= endpos || s[j] != ':')
                continue;
            d = ++j;
            while (j < endpos && is_digit((unsigned char)s[j]))
                j++;
            if (j == d || endpos - j < 2 || s[j] != ']' || s[j + 1] != ' ')
                continue;
            i = j + 2;
        }
        if (endpos - i < 3 || s[i] != '-' || s[i + 1] != 'A' || s[i + 2] != ' ')
            continue;
        i += 3;
        Py_ssize_t e = i;
        while (e < endpos && s[e] != ' ' && s[e] != '\n')
            e++;
        if (e >= endpos || e == i)
            continue; /* the lookahead needs a blank or newline before endpos */
        Py_ssize_t nl_ = e - i;
        size_t h = idx_hash(s + i, nl_) & mask;
        for (; slots[h] != 0; h = (h + 1) & mask) {
            PyObject *key = PySequence_Fast_GET_ITEM(seq, slots[h] - 1);
            if (PyBytes_GET_SIZE(key) == nl_ && memcmp(PyBytes_AS_STRING(key), s + i, (size_t)nl_) == 0) {
                PyObject *was = PyDict_GetItemWithError(out, key);
                if (was == NULL && PyErr_Occurred())
                    goto fail;
                PyObject *now = PyLong_FromSsize_t(was == NULL ? 1 : PyLong_AsSsize_t(was) + 1);
                if (now == NULL || PyDict_SetItem(out, key, now) < 0) {
                    Py_XDECREF(now);
                    goto fail;
                }
                Py_DECREF(now);
                break;
            }
        }
        pos = e;
    }
    goto done;
fail:
    Py_CLEAR(out);
done:
    PyMem_Free(slots);
    Py_XDECREF(seq);
    PyBuffer_Release(&data);
    return out;
}

/* --- overview_tally: graph._tally, compiled -----------------------------------
 *
 * overview_tally(block) -> (lines, masquerade jumps, endpoint jumps, of them
 * after --rcheck), None for a block that is not clean (graph._clean_block), or
 * False for text that is not ASCII (then the regexes run).
 */

static int tally_sep_suffix(const char *s, Py_ssize_t a, Py_ssize_t e)
{
    /* the line s[a:e] ends with " -j KUBE-SEP-" and 16 base32 characters */
    if (e - a < 29 || memcmp(s + e - 29, " -j KUBE-SEP-", 13) != 0)
        return 0;
    for (Py_ssize_t k = e - 16; k < e; k++)
        if (!is_b32((unsigned char)s[k]))
            return 0;
    return 1;
}

static PyObject *scan_overview_tally(PyObject *self, PyObject *block)
{
    if (!PyUnicode_Check(block)) {
        PyErr_SetString(PyExc_TypeError, "overview_tally: a str block");
        return NULL;
    }
    if (!PyUnicode_IS_ASCII(block))
        Py_RETURN_FALSE;
    const char *s = (const char *)PyUnicode_DATA(block);
    Py_ssize_t n = PyUnicode_GET_LENGTH(block);
    if (n == 0 || s[n - 1] != '\n' || s[0] == ' ' || memchr(s, '\t', (size_t)n) != NULL)
        Py_RETURN_NONE;
    Py_ssize_t lines = 0, masq = 0, seps = 0, rchecks = 0, a = 0;
    while (a < n) {
        const char *nl = memchr(s + a, '\n', (size_t)(n - a));
        Py_ssize_t e = nl - s; /* the block ends with a newline: never NULL */
        if ((e > a && s[e - 1] == ' ') || (e + 1 < n && s[e + 1] == ' '))
            Py_RETURN_NONE; /* " \n" or "\n " */
        lines++;
        if (e - a >= 18 && memcmp(s + e - 18, " -j KUBE-MARK-MASQ", 18) == 0)
            masq++;
        if (tally_sep_suffix(s, a, e)) {
            seps++;
            for (Py_ssize_t k = a; k + 8 <= e - 29; k++)
                if (s[k] == '-' && memcmp(s + k, "--rcheck", 8) == 0) {
                    rchecks++;
                    break;
                }
        }
        a = e + 1;
    }
    return Py_BuildValue("(nnnn)", lines, masq, seps, rchecks);
}

/* --- services round 2 (perf-services2) ----------------------------------------------
 *
 * single_blocks(entries, prefixes) -> list, or None
 *
 * parse.LazyChains._single_blocks_py: [(name, first line, block)] of every
 * chain of ``entries`` (the parser's {name: [policy, counters, line, runs,
 * declared]}) named with one of ``prefixes`` (a str or a tuple of str) whose
 * runs are one (first line, block) pair with the block ending in "\n", in dict
 * order. None when an entry is not of that shape (then the Python loop runs).
 */
static int sb_prefixed(PyObject *name, PyObject *prefixes)
{
    if (PyUnicode_Check(prefixes))
        return (int)PyUnicode_Tailmatch(name, prefixes, 0, PY_SSIZE_T_MAX, -1);
    Py_ssize_t n = PyTuple_GET_SIZE(prefixes);
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t hit = PyUnicode_Tailmatch(name, PyTuple_GET_ITEM(prefixes, i), 0, PY_SSIZE_T_MAX, -1);
        if (hit != 0)
            return (int)hit;
    }
    return 0;
}

static PyObject *scan_single_blocks(PyObject *self, PyObject *args)
{
    PyObject *entries, *prefixes;
    if (!PyArg_ParseTuple(args, "O!O:single_blocks", &PyDict_Type, &entries, &prefixes))
        return NULL;
    if (PyTuple_Check(prefixes)) {
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(prefixes); i++)
            if (!PyUnicode_Check(PyTuple_GET_ITEM(prefixes, i))) {
                PyErr_SetString(PyExc_TypeError, "single_blocks() prefixes are str");
                return NULL;
            }
    } else if (!PyUnicode_Check(prefixes)) {
        PyErr_SetString(PyExc_TypeError, "single_blocks() takes a str or a tuple of str");
        return NULL;
    }
    PyObject *out = PyList_New(0);
    if (out == NULL)
        return NULL;
    Py_ssize_t pos = 0;
    PyObject *name, *entry;
    while (PyDict_Next(entries, &pos, &name, &entry)) {  /* borrowed; nothing here runs Python code */
        if (!PyUnicode_Check(name))
            goto other;
        int hit = sb_prefixed(name, prefixes);
        if (hit < 0)
            goto fail;
        if (!hit)
            continue;
        if (!PyList_CheckExact(entry) || PyList_GET_SIZE(entry) < 4)
            goto other;
        PyObject *runs = PyList_GET_ITEM(entry, 3);
        if (!PyList_CheckExact(runs))
            goto other;
        if (PyList_GET_SIZE(runs) != 1)
            continue;
        PyObject *run = PyList_GET_ITEM(runs, 0);
        if (!PyTuple_CheckExact(run) || PyTuple_GET_SIZE(run) != 2 || !PyUnicode_CheckExact(PyTuple_GET_ITEM(run, 1)))
            goto other;
        PyObject *block = PyTuple_GET_ITEM(run, 1);
        Py_ssize_t n = PyUnicode_GET_LENGTH(block);
        if (n == 0 || PyUnicode_READ_CHAR(block, n - 1) != '\n')
            continue;
        PyObject *item = PyTuple_Pack(3, name, PyTuple_GET_ITEM(run, 0), block);
        if (item == NULL)
            goto fail;
        int r = PyList_Append(out, item);
        Py_DECREF(item);
        if (r < 0)
            goto fail;
    }
    return out;
other:
    Py_DECREF(out);
    Py_RETURN_NONE;
fail:
    Py_DECREF(out);
    return NULL;
}

/* endpoints_text(endpoints, share_texts) -> bytes, or None
 *
 * What json.dumps(render.json._endpoints_json(endpoints), separators=(",",
 * ":")).encode() writes, for a tuple of EndpointShare objects: the list of
 * {"endpoint", "share", "fraction", "probability", "chain", "line"} objects.
 * share_texts(e) -> (share float or None, fraction str or None) is called once
 * per run of endpoints with the same share object. None (the caller builds the
 * dicts) unless every string is printable ASCII without '"' or '\\' (written
 * as is, where json.dumps escapes nothing), every share a finite float (written
 * as its repr, as json.dumps writes it) or None, and every line an int that
 * fits in 64 bits.
 */
typedef struct {
    char *buf;
    Py_ssize_t len, cap;
} et_buf;

static int et_put(et_buf *b, const char *s, Py_ssize_t n)
{
    if (b->len + n > b->cap) {
        Py_ssize_t cap = b->cap * 2 > b->len + n ? b->cap * 2 : b->len + n + 256;
        char *nb = PyMem_Realloc(b->buf, (size_t)cap);
        if (nb == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        b->buf = nb;
        b->cap = cap;
    }
    memcpy(b->buf + b->len, s, (size_t)n);
    b->len += n;
    return 0;
}

#define ET_LIT(b, lit) et_put((b), (lit), LEN(lit))

/* A JSON string or null for ``v``: 1 written, 0 not plain (the caller gives up), -1 error. */
static int et_string(et_buf *b, PyObject *v)
{
    if (v == Py_None)
        return ET_LIT(b, "null") < 0 ? -1 : 1;
    if (!PyUnicode_CheckExact(v) || !PyUnicode_IS_ASCII(v))
        return 0;
    const char *s = (const char *)PyUnicode_DATA(v);
    Py_ssize_t n = PyUnicode_GET_LENGTH(v);
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c > 0x7e || c == '"' || c == '\\')
            return 0;
    }
    if (ET_LIT(b, "\"") < 0 || et_put(b, s, n) < 0 || ET_LIT(b, "\"") < 0)
        return -1;
    return 1;
}

static PyObject *et_attrs[5];  /* "share", "endpoint", "probability", "sep", "line" */

/* e.<et_attrs[k]> (a new reference): read at the slot's offset when ``e`` is of
 * the type ``offsets`` were found for, else (or for an unset slot) by getattr. */
static PyObject *et_get(PyObject *e, PyTypeObject *type, const Py_ssize_t *offsets, int k)
{
    if (Py_TYPE(e) == type && offsets[k] > 0) {
        PyObject *v = *(PyObject **)((char *)e + offsets[k]);
        if (v != NULL)
            return Py_NewRef(v);
    }
    return PyObject_GetAttr(e, et_attrs[k]);
}

static PyObject *scan_endpoints_text(PyObject *self, PyObject *args)
{
    PyObject *endpoints, *texts;
    if (!PyArg_ParseTuple(args, "O!O:endpoints_text", &PyTuple_Type, &endpoints, &texts))
        return NULL;
    static const char *names[5] = {"share", "endpoint", "probability", "sep", "line"};
    for (int i = 0; i < 5; i++)
        if (et_attrs[i] == NULL && (et_attrs[i] = PyUnicode_InternFromString(names[i])) == NULL)
            return NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(endpoints);
    PyTypeObject *type = n > 0 ? Py_TYPE(PyTuple_GET_ITEM(endpoints, 0)) : NULL;
    Py_ssize_t offsets[5] = {-1, -1, -1, -1, -1};
    if (type != NULL)
        for (int k = 0; k < 5; k++)
            offsets[k] = slot_offset(type, et_attrs[k]);
    et_buf b = {NULL, 0, 0};
    if (n > 0 && n < PY_SSIZE_T_MAX / 256) {  /* room for kube-proxy's endpoints at once */
        b.cap = 2 + 192 * n;
        if ((b.buf = PyMem_Malloc((size_t)b.cap)) == NULL)
            return PyErr_NoMemory();
    }
    PyObject *last = NULL;                 /* the share object of the run (a new reference) */
    char share_text[64], fraction_text[64];
    Py_ssize_t share_len = 0, fraction_len = 0;
    int plain_run = 0;                     /* the run's share and fraction can be written */
    PyObject *result = NULL;
    if (ET_LIT(&b, "[") < 0)
        goto done;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *e = PyTuple_GET_ITEM(endpoints, i);
        PyObject *s = et_get(e, type, offsets, 0);
        if (s == NULL)
            goto done;
        if (s != last) {
            Py_XSETREF(last, s);
            plain_run = 0;
            PyObject *pair = PyObject_CallOneArg(texts, e);
            if (pair == NULL)
                goto done;
            if (!PyTuple_CheckExact(pair) || PyTuple_GET_SIZE(pair) != 2) {
                Py_DECREF(pair);
                PyErr_SetString(PyExc_TypeError, "endpoints_text(): share_texts returns a pair");
                goto done;
            }
            PyObject *f = PyTuple_GET_ITEM(pair, 0), *fr = PyTuple_GET_ITEM(pair, 1);
            int ok = 1;
            if (f == Py_None) {
                memcpy(share_text, "null", 4);
                share_len = 4;
            } else if (PyFloat_CheckExact(f) && isfinite(PyFloat_AS_DOUBLE(f))) {
                PyObject *r = PyObject_Repr(f);
                if (r == NULL) {
                    Py_DECREF(pair);
                    goto done;
                }
                Py_ssize_t rn = PyUnicode_GET_LENGTH(r);
                if (PyUnicode_IS_ASCII(r) && rn < (Py_ssize_t)sizeof(share_text)) {
                    memcpy(share_text, PyUnicode_DATA(r), (size_t)rn);
                    share_len = rn;
                } else {
                    ok = 0;
                }
                Py_DECREF(r);
            } else {
                ok = 0;
            }
            if (ok) {
                et_buf fb = {NULL, 0, 0};
                int w = et_string(&fb, fr);
                if (w < 0) {
                    PyMem_Free(fb.buf);
                    Py_DECREF(pair);
                    goto done;
                }
                if (w == 1 && fb.len <= (Py_ssize_t)sizeof(fraction_text)) {
                    memcpy(fraction_text, fb.buf, (size_t)fb.len);
                    fraction_len = fb.len;
                } else {
                    ok = 0;
                }
                PyMem_Free(fb.buf);
            }
            Py_DECREF(pair);
            plain_run = ok;
        } else {
            Py_DECREF(s);
        }
        if (!plain_run)
            goto decline;
        if ((i > 0 && ET_LIT(&b, ",") < 0) || ET_LIT(&b, "{\"endpoint\":") < 0)
            goto done;
        PyObject *v[3];  /* endpoint, probability, sep */
        for (int k = 0; k < 3; k++)
            if ((v[k] = et_get(e, type, offsets, k + 1)) == NULL) {
                for (int j = 0; j < k; j++)
                    Py_DECREF(v[j]);
                goto done;
            }
        int w = et_string(&b, v[0]);
        if (w == 1)
            w = (ET_LIT(&b, ",\"share\":") < 0 || et_put(&b, share_text, share_len) < 0
                 || ET_LIT(&b, ",\"fraction\":") < 0 || et_put(&b, fraction_text, fraction_len) < 0
                 || ET_LIT(&b, ",\"probability\":") < 0) ? -1 : 1;
        if (w == 1)
            w = et_string(&b, v[1]);
        if (w == 1)
            w = ET_LIT(&b, ",\"chain\":") < 0 ? -1 : 1;
        if (w == 1)
            w = v[2] == Py_None ? 0 : et_string(&b, v[2]);
        for (int k = 0; k < 3; k++)
            Py_DECREF(v[k]);
        if (w < 0)
            goto done;
        if (w == 0)
            goto decline;
        PyObject *line = et_get(e, type, offsets, 4);
        if (line == NULL)
            goto done;
        if (!PyLong_CheckExact(line)) {
            Py_DECREF(line);
            goto decline;
        }
        int overflow = 0;
        long long value = PyLong_AsLongLongAndOverflow(line, &overflow);
        Py_DECREF(line);
        if (overflow)
            goto decline;
        if (value == -1 && PyErr_Occurred())
            goto done;
        char num[32];  /* ,"line":<value>} written backwards from the end (no snprintf per endpoint) */
        char *q = num + sizeof(num);
        *--q = '}';
        unsigned long long mag = value < 0 ? 0ULL - (unsigned long long)value : (unsigned long long)value;
        do {
            *--q = (char)('0' + mag % 10);
            mag /= 10;
        } while (mag);
        if (value < 0)
            *--q = '-';
        if (ET_LIT(&b, ",\"line\":") < 0 || et_put(&b, q, num + sizeof(num) - q) < 0)
            goto done;
    }
    if (ET_LIT(&b, "]") < 0)
        goto done;
    result = PyBytes_FromStringAndSize(b.buf, b.len);
    goto done;
decline:
    result = Py_NewRef(Py_None);
done:
    Py_XDECREF(last);
    PyMem_Free(b.buf);
    return result;
}
/* b32_16(digest) -> str
 *
 * kubeproxy._b32_16_py: the first 16 characters of base64.b32encode(digest),
 * i.e. the first 10 bytes of ``digest`` (bytes of at least 10) in RFC 4648
 * base32, as kube-proxy names its chains.
 */
static PyObject *scan_b32_16(PyObject *self, PyObject *digest)
{
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    if (!PyBytes_Check(digest) || PyBytes_GET_SIZE(digest) < 10) {
        PyErr_SetString(PyExc_TypeError, "b32_16() takes bytes of at least 10");
        return NULL;
    }
    const unsigned char *d = (const unsigned char *)PyBytes_AS_STRING(digest);
    char out[16];
    for (int half = 0; half < 2; half++) {  /* 5 bytes -> 8 characters, twice */
        const unsigned char *b = d + 5 * half;
        unsigned long long v = ((unsigned long long)b[0] << 32) | ((unsigned long long)b[1] << 24)
            | ((unsigned long long)b[2] << 16) | ((unsigned long long)b[3] << 8) | (unsigned long long)b[4];
        for (int k = 0; k < 8; k++)
            out[8 * half + k] = alphabet[(v >> (35 - 5 * k)) & 31];
    }
    return PyUnicode_FromStringAndSize(out, 16);
}
/* --- end of services round 2 ------------------------------------------------------- */

/* --- live services round 3 --------------------------------------------------------- */
/* save_tally(piece) -> (rules, chains, total, canary, kube_proxy, tables), or None
 *
 * sources.command._tally_py in one pass over a str of 1-byte kind (None for any
 * other kind: the caller counts with str.count):
 *   rules      = piece.count("-A KUBE-")      (non-overlapping, as str.count)
 *   chains     = piece.count("\n:KUBE-") + piece.startswith(":KUBE-")
 *   total      = piece.count("-A ")
 *   canary     = ":KUBE-PROXY-CANARY " in piece
 *   kube_proxy = ":KUBE-SERVICES " in piece
 *   tables     = piece.startswith("*") or "\n*" in piece
 * "-A " and "\n:KUBE-" cannot overlap themselves, so every occurrence counts;
 * "-A KUBE-" can (its last "-" may begin the next), so one counts only from
 * the end of the previous one.
 */
static PyObject *scan_save_tally(PyObject *self, PyObject *piece)
{
    if (!PyUnicode_Check(piece)) {
        PyErr_SetString(PyExc_TypeError, "save_tally() takes a str");
        return NULL;
    }
    if (PyUnicode_KIND(piece) != PyUnicode_1BYTE_KIND)
        Py_RETURN_NONE;
    const unsigned char *s = PyUnicode_1BYTE_DATA(piece);
    Py_ssize_t n = PyUnicode_GET_LENGTH(piece);
    save_tally_t t = {0, 0, 0, 0, 0, n > 0 && s[0] == '*'};
    Py_ssize_t rules_from = 0;
    if (n >= 6 && memcmp(s, ":KUBE-", 6) == 0)
        t.chains++;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (s[i] == '\n') {
            if (i + 7 <= n && memcmp(s + i + 1, ":KUBE-", 6) == 0)
                t.chains++;
            else if (i + 1 < n && s[i + 1] == '*')
                t.tables = 1;
        } else {
            save_tally_step(&t, (const char *)s, n, i, &rules_from);
        }
    }
    return Py_BuildValue("(nnnOOO)", t.rules, t.chains, t.total, t.canary ? Py_True : Py_False,
                         t.kube_proxy ? Py_True : Py_False, t.tables ? Py_True : Py_False);
}


/* lr3_starts(name, prefix): does str ``name`` (any kind) begin with ASCII ``prefix``? */
static int lr3_starts(PyObject *name, const char *prefix)
{
    Py_ssize_t m = (Py_ssize_t)strlen(prefix);
    if (PyUnicode_GET_LENGTH(name) < m)
        return 0;
    int kind = PyUnicode_KIND(name);
    const void *data = PyUnicode_DATA(name);
    for (Py_ssize_t k = 0; k < m; k++)
        if (PyUnicode_READ(kind, data, k) != (Py_UCS4)(unsigned char)prefix[k])
            return 0;
    return 1;
}

/* kube_runs(segs, start, end, last, chains) -> (last, seps, cascades), or None
 *
 * stream._kube_runs_py for the ordered case: the rule blocks segs[start:end]
 * (tuples (block, chain, ...)) whose chain begins "KUBE-", when their names are
 * strictly increasing and the first is greater than ``last``: the last of them
 * (``last`` itself if none), and (chain, chains[chain][3][0][0], block) of the
 * KUBE-SEP- ones and of the KUBE-SVC-/KUBE-SVL-/KUBE-XLB- ones, in order.
 * None: out of order, or anything of another shape (the Python code decides).
 */
static PyObject *scan_kube_runs(PyObject *self, PyObject *args)
{
    PyObject *segs, *last, *chains;
    Py_ssize_t start, end;
    if (!PyArg_ParseTuple(args, "OnnOO", &segs, &start, &end, &last, &chains))
        return NULL;
    if (!PyList_Check(segs) || !PyUnicode_Check(last) || !PyDict_Check(chains)
        || start < 0 || end > PyList_GET_SIZE(segs) || start > end)
        Py_RETURN_NONE;
    PyObject *prev = last;
    for (Py_ssize_t i = start; i < end; i++) {  /* the order first: nothing is built out of order */
        PyObject *seg = PyList_GET_ITEM(segs, i);
        if (!PyTuple_Check(seg) || PyTuple_GET_SIZE(seg) < 2 || !PyUnicode_CheckExact(PyTuple_GET_ITEM(seg, 1))
            || !PyUnicode_CheckExact(PyTuple_GET_ITEM(seg, 0)))
            Py_RETURN_NONE;
        PyObject *name = PyTuple_GET_ITEM(seg, 1);
        if (!lr3_starts(name, "KUBE-"))
            continue;
        int gt = PyUnicode_Compare(name, prev);
        if (gt == -1 && PyErr_Occurred())
            return NULL;
        if (gt <= 0)
            Py_RETURN_NONE;
        prev = name;
    }
    PyObject *seps = PyList_New(0), *cascades = PyList_New(0);
    if (seps == NULL || cascades == NULL)
        goto fail;
    for (Py_ssize_t i = start; i < end; i++) {
        PyObject *seg = PyList_GET_ITEM(segs, i);
        PyObject *name = PyTuple_GET_ITEM(seg, 1);
        PyObject *into;
        if (lr3_starts(name, "KUBE-SEP-"))
            into = seps;
        else if (lr3_starts(name, "KUBE-SVC-") || lr3_starts(name, "KUBE-SVL-") || lr3_starts(name, "KUBE-XLB-"))
            into = cascades;
        else
            continue;
        PyObject *entry = PyDict_GetItemWithError(chains, name);
        if (entry == NULL) {
            if (PyErr_Occurred())
                goto fail;
            goto decline;
        }
        if (!PyList_Check(entry) || PyList_GET_SIZE(entry) < 4)
            goto decline;
        PyObject *runs = PyList_GET_ITEM(entry, 3);
        if (!PyList_Check(runs) || PyList_GET_SIZE(runs) < 1)
            goto decline;
        PyObject *run = PyList_GET_ITEM(runs, 0);
        if (!PyTuple_Check(run) || PyTuple_GET_SIZE(run) < 1)
            goto decline;
        PyObject *item = PyTuple_Pack(3, name, PyTuple_GET_ITEM(run, 0), PyTuple_GET_ITEM(seg, 0));
        if (item == NULL)
            goto fail;
        int bad = PyList_Append(into, item);
        Py_DECREF(item);
        if (bad)
            goto fail;
    }
    PyObject *result = Py_BuildValue("(ONN)", prev, seps, cascades);
    return result;
decline:
    Py_DECREF(seps);
    Py_DECREF(cascades);
    Py_RETURN_NONE;
fail:
    Py_XDECREF(seps);
    Py_XDECREF(cascades);
    return NULL;
}

/* new_jump_targets(segs, start, end, chains) -> set, or None
 *
 * {name for name in jump_targets([seg[0] for seg in segs[start:end]]) if name
 * not in chains}: the targets of " -j KUBE-..." / " -g KUBE-..." in the rule
 * blocks of the round that are not chains (yet), without the set of every
 * target; None when a block is not ASCII (as jump_targets).
 */
static PyObject *scan_new_jump_targets(PyObject *self, PyObject *args)
{
    PyObject *segs, *chains;
    Py_ssize_t start, end;
    if (!PyArg_ParseTuple(args, "O!nnO!", &PyList_Type, &segs, &start, &end, &PyDict_Type, &chains))
        return NULL;
    if (start < 0)
        start = 0;
    if (end > PyList_GET_SIZE(segs))
        end = PyList_GET_SIZE(segs);
    for (Py_ssize_t c = start; c < end; c++) {
        PyObject *seg = PyList_GET_ITEM(segs, c);
        if (!PyTuple_Check(seg) || PyTuple_GET_SIZE(seg) < 1 || !PyUnicode_Check(PyTuple_GET_ITEM(seg, 0))) {
            PyErr_SetString(PyExc_TypeError, "new_jump_targets() takes a list of tuples starting with a str");
            return NULL;
        }
        if (!PyUnicode_IS_ASCII(PyTuple_GET_ITEM(seg, 0)))
            Py_RETURN_NONE;
    }
    PyObject *out = PySet_New(NULL);
    if (out == NULL)
        return NULL;
    const char *last = NULL;  /* the name looked up last */
    Py_ssize_t last_len = -1;
    for (Py_ssize_t c = start; c < end; c++) {
        PyObject *b = PyTuple_GET_ITEM(PyList_GET_ITEM(segs, c), 0);
        if (add_jump_targets((const char *)PyUnicode_DATA(b), PyUnicode_GET_LENGTH(b), out, chains,
                             &last, &last_len) < 0) {
            Py_DECREF(out);
            return NULL;
        }
    }
    return out;
}
/* --- end of live services round 3 -------------------------------------------------- */


/* --- the cluster-IP dispatch rule (issue 14, live round 4) ---------------------------
 *
 *   cluster_entry(text) -> (d, p, spn, port, t, h), or None, or False
 *
 * services._CLUSTER_ENTRY.match(text)'s groups "d", "p", "spn", "port", "t", "h"
 * for an ASCII str; None where it does not match; False for a str that is not
 * ASCII (the regex decides: its \S, \s, \w and \d are Unicode's). The regex,
 * read left to right, leaves no choice: each part ends where the next literal
 * must begin (the lazy address ends at the first character outside its class,
 * and a "/32" or "/128" must then be followed by " -p "), so one pass decides.
 */
static int ce_word(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || is_digit(c) || c == '_';
}

static int ce_hex_addr(unsigned char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == '.' || c == ':';
}

static int ce_lower_alnum(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || is_digit(c);
}

static PyObject *scan_cluster_entry(PyObject *self, PyObject *text)
{
    if (!PyUnicode_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "cluster_entry() takes a str");
        return NULL;
    }
    if (!PyUnicode_IS_ASCII(text))
        Py_RETURN_FALSE;
    const char *s = (const char *)PyUnicode_DATA(text);
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    if (n > 0 && s[n - 1] == '\n')  /* $ matches before a final line break too */
        n--;
    Py_ssize_t i = skip_counters(s, n);  /* (?:\[\d+:\d+\] )? (a "[" of another shape: no "-A " at 0, no match) */
    if (!AT(s, n, i, "-A "))
        Py_RETURN_NONE;
    i += 3;
    Py_ssize_t c0 = i;  /* \S+ */
    while (i < n && !is_space((unsigned char)s[i]))
        i++;
    if (i == c0 || !AT(s, n, i, " -d "))
        Py_RETURN_NONE;
    i += 4;
    Py_ssize_t d0 = i;  /* [0-9a-fA-F.:]+? then (?:/(?:32|128))? then " -p " */
    while (i < n && ce_hex_addr((unsigned char)s[i]))
        i++;
    Py_ssize_t d1 = i;
    if (d1 == d0)
        Py_RETURN_NONE;
    if (AT(s, n, i, "/32 -p "))
        i += 3;
    else if (AT(s, n, i, "/128 -p "))
        i += 4;
    if (!AT(s, n, i, " -p "))
        Py_RETURN_NONE;
    i += 4;
    Py_ssize_t p0 = i;  /* \w+ */
    while (i < n && ce_word((unsigned char)s[i]))
        i++;
    Py_ssize_t p1 = i;
    if (p1 == p0 || !AT(s, n, i, " -m comment --comment \""))
        Py_RETURN_NONE;
    i += LEN(" -m comment --comment \"");
    Py_ssize_t n0 = i;  /* [a-z0-9](?:[-a-z0-9.]*[a-z0-9])?/ */
    while (i < n && s[i] != '/') {
        unsigned char c = (unsigned char)s[i];
        if (!(ce_lower_alnum(c) || c == '-' || c == '.'))
            Py_RETURN_NONE;
        i++;
    }
    if (i == n0 || i >= n || !ce_lower_alnum((unsigned char)s[n0]) || !ce_lower_alnum((unsigned char)s[i - 1]))
        Py_RETURN_NONE;
    i++;
    Py_ssize_t m0 = i;  /* [^\s:"\\]+ */
    while (i < n && !is_space((unsigned char)s[i]) && s[i] != ':' && s[i] != '"' && s[i] != '\\')
        i++;
    if (i == m0)
        Py_RETURN_NONE;
    if (i < n && s[i] == ':') {  /* (?::[^\s"\\]*)? */
        i++;
        while (i < n && !is_space((unsigned char)s[i]) && s[i] != '"' && s[i] != '\\')
            i++;
    }
    Py_ssize_t spn1 = i;
    if (!AT(s, n, i, " cluster IP\" -m "))
        Py_RETURN_NONE;
    i += LEN(" cluster IP\" -m ");
    if (!(n - i >= p1 - p0 && memcmp(s + i, s + p0, (size_t)(p1 - p0)) == 0))  /* (?P=p) */
        Py_RETURN_NONE;
    i += p1 - p0;
    if (!AT(s, n, i, " --dport "))
        Py_RETURN_NONE;
    i += LEN(" --dport ");
    Py_ssize_t o0 = i;  /* \d+ */
    while (i < n && is_digit((unsigned char)s[i]))
        i++;
    Py_ssize_t o1 = i;
    if (o1 == o0 || !AT(s, n, i, " -j KUBE-"))
        Py_RETURN_NONE;
    i += 4;
    Py_ssize_t t0 = i;
    i += 5;
    if (AT(s, n, i, "SVC-") || AT(s, n, i, "SVL-") || AT(s, n, i, "EXT-") || AT(s, n, i, "XLB-"))
        i += 4;
    else if (AT(s, n, i, "FW-"))
        i += 3;
    else
        Py_RETURN_NONE;
    Py_ssize_t h0 = i;
    for (int k = 0; k < 16; k++, i++)
        if (!(i < n && is_b32((unsigned char)s[i])))
            Py_RETURN_NONE;
    if (i != n)
        Py_RETURN_NONE;
    return Py_BuildValue("(s#s#s#s#s#s#)", s + d0, d1 - d0, s + p0, p1 - p0, s + n0 - 0, spn1 - n0, s + o0, o1 - o0,
                         s + t0, i - t0, s + h0, (Py_ssize_t)16);
}

/* --- cluster_entries: services._cluster_entries' loop, compiled (live services, round 5)
 *
 *   cluster_entries(raw, start, accs, consts) -> index
 *
 * The loop of services._cluster_entries over ``raw`` (KUBE-SERVICES' (line,
 * text) rules) from ``start``, for the rules it adds to ``accs`` itself:
 * those cluster_entry() reads whose port has no entry point yet. It stops at
 * the first other rule (not kube-proxy's cluster-IP shape, not ASCII, or a
 * port with entries already) and returns its index, for the Python loop to
 * read in its place; len(raw) at the end. ``consts``: (_Acc, EntryPoint, its
 * field names, EntryKind.CLUSTER_IP). Each rule: accs[key] made when missing
 * (``_Acc()``), the name appended (one trailing ":" cut, as
 * kubeproxy.normalize_spn), the protocol lower-cased and kept when the port
 * has none, and one EntryPoint appended, built as bulk.frozen builds it.
 */
static PyObject *ce_attr[4];  /* "names", "protocol", "entries", "lower" */

static PyObject *scan_cluster_entries(PyObject *self, PyObject *args)
{
    PyObject *raw, *accs, *consts;
    Py_ssize_t start;
    if (!PyArg_ParseTuple(args, "O!nO!O!:cluster_entries", &PyTuple_Type, &raw, &start, &PyDict_Type, &accs,
                          &PyTuple_Type, &consts))
        return NULL;
    if (PyTuple_GET_SIZE(consts) != 4 || !PyTuple_Check(PyTuple_GET_ITEM(consts, 2))) {
        PyErr_SetString(PyExc_TypeError, "cluster_entries() consts are (_Acc, EntryPoint, field names, kind)");
        return NULL;
    }
    static const char *names[4] = {"names", "protocol", "entries", "lower"};
    for (int k = 0; k < 4; k++)
        if (ce_attr[k] == NULL && (ce_attr[k] = PyUnicode_InternFromString(names[k])) == NULL)
            return NULL;
    static PyObject *nat_str;
    if (nat_str == NULL && (nat_str = PyUnicode_InternFromString("nat")) == NULL)
        return NULL;
    PyObject *acc_cls = PyTuple_GET_ITEM(consts, 0), *entry_cls = PyTuple_GET_ITEM(consts, 1),
             *fields = PyTuple_GET_ITEM(consts, 2), *cluster_ip = PyTuple_GET_ITEM(consts, 3);
    Py_ssize_t n = PyTuple_GET_SIZE(raw), i = start < 0 ? 0 : start;
    for (; i < n; i++) {
        PyObject *item = PyTuple_GET_ITEM(raw, i);
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2 || !PyUnicode_Check(PyTuple_GET_ITEM(item, 1)))
            break;
        PyObject *line = PyTuple_GET_ITEM(item, 0), *text = PyTuple_GET_ITEM(item, 1);
        PyObject *got = scan_cluster_entry(NULL, text);
        if (got == NULL)
            return NULL;
        if (!PyTuple_Check(got)) {  /* None (another shape) or False (not ASCII): the Python loop reads it */
            Py_DECREF(got);
            break;
        }
        PyObject *dst = PyTuple_GET_ITEM(got, 0), *proto = PyTuple_GET_ITEM(got, 1), *spn = PyTuple_GET_ITEM(got, 2),
                 *port_text = PyTuple_GET_ITEM(got, 3), *target = PyTuple_GET_ITEM(got, 4),
                 *key = PyTuple_GET_ITEM(got, 5);
        PyObject *acc = PyDict_GetItemWithError(accs, key);  /* borrowed */
        if (acc == NULL && PyErr_Occurred()) {
            Py_DECREF(got);
            return NULL;
        }
        PyObject *entries = NULL;
        if (acc != NULL) {
            if ((entries = PyObject_GetAttr(acc, ce_attr[2])) == NULL) {
                Py_DECREF(got);
                return NULL;
            }
            int has = !PyList_Check(entries) || PyList_GET_SIZE(entries) != 0;
            Py_DECREF(entries);
            if (has) {  /* entries already: the Python loop compares them */
                Py_DECREF(got);
                break;
            }
        }
        PyObject *made = NULL, *acc_names = NULL, *lowered = NULL, *port = NULL, *name = NULL, *have = NULL,
                 *values = NULL, *entry = NULL;
        int ok = 0;
        if (acc == NULL) {
            if ((made = PyObject_CallNoArgs(acc_cls)) == NULL || PyDict_SetItem(accs, key, made) < 0)
                goto rule_done;
            acc = made;
        }
        Py_ssize_t len = PyUnicode_GET_LENGTH(spn);
        name = len > 0 && PyUnicode_READ_CHAR(spn, len - 1) == ':' ? PyUnicode_Substring(spn, 0, len - 1)
                                                                   : Py_NewRef(spn);
        if (name == NULL || (acc_names = PyObject_GetAttr(acc, ce_attr[0])) == NULL
                || PyList_Check(acc_names) == 0 || PyList_Append(acc_names, name) < 0)
            goto rule_done;
        if ((lowered = PyObject_CallMethodNoArgs(proto, ce_attr[3])) == NULL
                || (have = PyObject_GetAttr(acc, ce_attr[1])) == NULL)
            goto rule_done;
        {
            int truthy = PyObject_IsTrue(have);
            if (truthy < 0 || (!truthy && PyObject_SetAttr(acc, ce_attr[1], lowered) < 0))
                goto rule_done;
        }
        if ((port = PyLong_FromUnicodeObject(port_text, 10)) == NULL
                || (entries = PyObject_GetAttr(acc, ce_attr[2])) == NULL)
            goto rule_done;
        if ((values = PyTuple_Pack(11, cluster_ip, dst, port, lowered, target, nat_str, line, text, Py_None,
                                   Py_False, Py_None)) == NULL)
            goto rule_done;
        {
            PyObject *call = PyTuple_Pack(3, entry_cls, fields, values);
            if (call == NULL)
                goto rule_done;
            entry = scan_new_frozen(NULL, call);
            Py_DECREF(call);
        }
        if (entry == NULL || !PyList_Check(entries) || PyList_Append(entries, entry) < 0)
            goto rule_done;
        ok = 1;
rule_done:
        if (!ok && !PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "cluster_entries(): an _Acc of another shape");
        Py_XDECREF(made);
        Py_XDECREF(acc_names);
        Py_XDECREF(lowered);
        Py_XDECREF(port);
        Py_XDECREF(name);
        Py_XDECREF(have);
        Py_XDECREF(values);
        Py_XDECREF(entry);
        Py_XDECREF(entries);
        Py_DECREF(got);
        if (!ok)
            return NULL;
    }
    return PyLong_FromSsize_t(i);
}

static PyMethodDef methods[] = {
    {"dnat", scan_dnat, METH_O, "chain -> DNAT destination of endpoint chains (see parse.bulk._scan_dnat)."},
    {"cascades", scan_cascades, METH_O, "chain -> cascade branches (see parse.bulk._scan_cascades)."},
    {"fold_decls", scan_fold_decls, METH_VARARGS, "parse_iptables_save's loop over a run of declarations."},
    {"jump_targets", scan_jump_targets, METH_O, "set(completeness._JUMP.findall(b)) over ASCII blocks, else None."},
    {"fold", scan_fold, METH_VARARGS, "parse_iptables_save's loop over a run of rule blocks (see there)."},
    {"segments", scan_segments, METH_O, "parse.iptables_save._SEGMENTS.findall(text) for ASCII text, else None."},
    {"uniform_shares", scan_uniform_shares, METH_VARARGS, "one service port's uniform endpoint shares (see bulk._uniform_shares)."},
    {"new_frozen", scan_new_frozen, METH_VARARGS, "cls(*values) for a frozen dataclass of svcinspect.model, without its __init__."},
    {"json_floats_may_differ", scan_json_floats_may_differ, METH_O, "\"0.0000\" or a digit and \"e\" in bytes (see render.json)."},
    {"dump_shapes", scan_dump_shapes, METH_VARARGS, "render.iptables._shapes_of(text, counted) for ASCII text, else None."},
    {"count_all", scan_count_all, METH_VARARGS, "[data.count(needle, start, end) for needle, start, end in specs]."},
    {"rule_names", scan_rule_names, METH_VARARGS, "index._rule_names(data, start, end, keys, counted), or None."},
    {"overview_tally", scan_overview_tally, METH_O, "graph._tally(block) for ASCII text, else False."},
    {"single_blocks", scan_single_blocks, METH_VARARGS, "parse.LazyChains._single_blocks_py(entries, prefixes), or None."},
    {"endpoints_text", scan_endpoints_text, METH_VARARGS, "compact JSON of render.json._endpoints_json(endpoints), or None."},
    {"b32_16", scan_b32_16, METH_O, "kubeproxy._b32_16_py(digest): base32 of its first 10 bytes."},
    {"save_tally", scan_save_tally, METH_O, "sources.command._tally_py(piece) for str of 1-byte kind, else None."},
    {"kube_runs", scan_kube_runs, METH_VARARGS, "stream._kube_runs_py(segs, start, end, last, chains) when ordered, else None."},
    {"cluster_entry", scan_cluster_entry, METH_O, "services._CLUSTER_ENTRY.match(text)'s six groups, None, or False (not ASCII)."},
    {"new_jump_targets", scan_new_jump_targets, METH_VARARGS, "jump_targets of segs[start:end]'s blocks less the names in chains, or None."},
    {"cluster_entries", scan_cluster_entries, METH_VARARGS, "services._cluster_entries' loop from start, up to the first rule it leaves to Python."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "svcinspect.dataplane.iptables._scan",
    "Optional compiled scanner for svcinspect.parse.bulk (the pure-Python code is the fallback).", -1, methods,
    NULL, NULL, NULL, NULL,
};

int rawscan_add(PyObject *module);  /* _rawscan.c */

PyMODINIT_FUNC PyInit__scan(void)
{
    PyObject *m = PyModule_Create(&module);
    if (m != NULL && rawscan_add(m) < 0)
        Py_CLEAR(m);
    return m;
}

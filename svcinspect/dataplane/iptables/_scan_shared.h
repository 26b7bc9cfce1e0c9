/* What _scan.c and _rawscan.c (two files of one extension, _scan) share. */
#ifndef SVCINSPECT_SCAN_SHARED_H
#define SVCINSPECT_SCAN_SHARED_H

#include <string.h>

/* Python's \s for ASCII text (str.isspace): space, \t \n \v \f \r, \x1c-\x1f. */
static inline int is_space(unsigned char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f);
}

/* sources.command._tally_py's counts, added up. */
typedef struct {
    Py_ssize_t rules, chains, total;
    int canary, kube_proxy, tables;
} save_tally_t;

/* The tally's step at s[i] of s[0:n]: "-A " (and "-A KUBE-" from *rules_from
 * on, which it moves past each one), or ":KUBE-" and a flag's name. The
 * callers count "\n:KUBE-" and "\n*" themselves. (Inline: save_tally takes
 * it at every byte.) */
static inline void save_tally_step(save_tally_t *t, const char *s, Py_ssize_t n, Py_ssize_t i, Py_ssize_t *rules_from)
{
    char c = s[i];
    if (c == '-') {
        if (i + 3 <= n && s[i + 1] == 'A' && s[i + 2] == ' ') {
            t->total++;
            if (i >= *rules_from && i + 8 <= n && memcmp(s + i + 3, "KUBE-", 5) == 0) {
                t->rules++;
                *rules_from = i + 8;
            }
        }
    } else if (c == ':' && !(t->canary && t->kube_proxy) && i + 15 <= n && memcmp(s + i, ":KUBE-", 6) == 0) {
        if (!t->canary && i + 19 <= n && memcmp(s + i + 6, "PROXY-CANARY ", 13) == 0)
            t->canary = 1;
        else if (!t->kube_proxy && memcmp(s + i + 6, "SERVICES ", 9) == 0)
            t->kube_proxy = 1;
    }
}

/* The end of the " -j KUBE-..." / " -g KUBE-..." target whose "K" may be s[pos], or -1. (_scan.c) */
Py_ssize_t jump_target_end(const char *s, Py_ssize_t n, Py_ssize_t pos);

#endif

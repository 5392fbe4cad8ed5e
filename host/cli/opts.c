#include "opts.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

const char *cs_opt_choice_name(const char *choices, int i, char *buf, size_t cap) {
    const char *p = choices;
    for (int k = 0; k < i && p; k++) {
        p = strchr(p, '|');
        if (p) p++;
    }
    if (!p || cap == 0) return "";
    size_t n = strcspn(p, "|");
    if (n >= cap) n = cap - 1;
    memcpy(buf, p, n);
    buf[n] = 0;
    return buf;
}

static int choice_index(const char *choices, const char *arg) {
    size_t alen = strlen(arg);
    int i = 0;
    for (const char *p = choices; p; i++) {
        size_t n = strcspn(p, "|");
        if (n == alen && memcmp(p, arg, n) == 0) return i;
        p = strchr(p, '|');
        if (p) p++;
    }
    return -1;
}

static void print_default(const cs_opt *o, FILE *f) {
    char buf[64];
    switch (o->type) {
    case CS_OPT_FLAG: break;
    case CS_OPT_INT: fprintf(f, " (default %d)", *(int *)o->dst); break;
    case CS_OPT_DOUBLE: fprintf(f, " (default %g)", *(double *)o->dst); break;
    case CS_OPT_STR:
        if (*(const char **)o->dst) fprintf(f, " (default %s)", *(const char **)o->dst);
        break;
    case CS_OPT_CHOICE:
        fprintf(f, " (default %s)", cs_opt_choice_name(o->choices, *(int *)o->dst, buf, sizeof buf));
        break;
    }
}

void cs_opts_help(const cs_cli *cli, FILE *f) {
    fprintf(f, "usage: clipskip %s %s\n", cli->cmd, cli->usage);
    if (cli->description) fprintf(f, "\n%s\n", cli->description);
    fprintf(f, "\noptions:\n");
    for (const cs_opt *o = cli->opts; o->name; o++) {
        char left[96];
        const char *mv = o->type == CS_OPT_CHOICE ? o->choices : o->metavar;
        if (o->type == CS_OPT_FLAG || !mv)
            snprintf(left, sizeof left, "--%s", o->name);
        else
            snprintf(left, sizeof left, "--%s %s", o->name, mv);
        fprintf(f, "  %-28s %s", left, o->help ? o->help : "");
        print_default(o, f);
        fputc('\n', f);
    }
    fprintf(f, "  %-28s %s\n", "-h, --help", "show this help");
    fprintf(f, "\nexit codes: 0 success, 1 failure (message on stderr), 2 usage error\n");
}

static int set_value(const cs_cli *cli, const cs_opt *o, const char *val) {
    char *end;
    switch (o->type) {
    case CS_OPT_FLAG: *(int *)o->dst = 1; return 0;
    case CS_OPT_STR: *(const char **)o->dst = val; return 0;
    case CS_OPT_INT: {
        errno = 0;
        long v = strtol(val, &end, 10);
        if (errno || end == val || *end || v < INT_MIN || v > INT_MAX) break;
        if ((o->min || o->max) && (v < o->min || v > o->max)) {
            fprintf(stderr, "clipskip %s: --%s %s is out of range %ld..%ld\n", cli->cmd,
                    o->name, val, o->min, o->max);
            return CS_EXIT_USAGE;
        }
        *(int *)o->dst = (int)v;
        return 0;
    }
    case CS_OPT_DOUBLE: {
        errno = 0;
        double v = strtod(val, &end);
        if (errno || end == val || *end) break;
        *(double *)o->dst = v;
        return 0;
    }
    case CS_OPT_CHOICE: {
        int i = choice_index(o->choices, val);
        if (i < 0) {
            fprintf(stderr, "clipskip %s: --%s must be one of %s, not '%s'\n", cli->cmd,
                    o->name, o->choices, val);
            return CS_EXIT_USAGE;
        }
        *(int *)o->dst = i;
        return 0;
    }
    }
    fprintf(stderr, "clipskip %s: --%s needs %s %s, not '%s'\n", cli->cmd, o->name,
            o->type == CS_OPT_INT ? "an integer" : "a number", o->metavar ? o->metavar : "",
            val);
    return CS_EXIT_USAGE;
}

static const cs_opt *find_opt(const cs_cli *cli, const char *name, size_t len) {
    for (const cs_opt *o = cli->opts; o->name; o++)
        if (strlen(o->name) == len && memcmp(o->name, name, len) == 0) return o;
    return NULL;
}

int cs_opts_parse(const cs_cli *cli, int argc, char **argv, char **pos, int *n_pos) {
    *n_pos = 0;
    int only_pos = 0;
    for (int i = 1; i < argc; i++) {
        char *a = argv[i];
        if (only_pos || a[0] != '-' || a[1] == 0) { /* "-" alone is a positional (stdin) */
            pos[(*n_pos)++] = a;
            continue;
        }
        if (strcmp(a, "--") == 0) { only_pos = 1; continue; }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            cs_opts_help(cli, stdout);
            return CS_EXIT_OK;
        }
        if (a[1] != '-') {
            fprintf(stderr, "clipskip %s: unknown option '%s' (see clipskip %s --help)\n",
                    cli->cmd, a, cli->cmd);
            return CS_EXIT_USAGE;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const cs_opt *o = find_opt(cli, name, len);
        if (!o) {
            fprintf(stderr, "clipskip %s: unknown option '--%.*s' (see clipskip %s --help)\n",
                    cli->cmd, (int)len, name, cli->cmd);
            return CS_EXIT_USAGE;
        }
        const char *val = NULL;
        if (o->type == CS_OPT_FLAG) {
            if (eq) {
                fprintf(stderr, "clipskip %s: --%s takes no value\n", cli->cmd, o->name);
                return CS_EXIT_USAGE;
            }
        } else if (eq) {
            val = eq + 1;
        } else if (i + 1 < argc) {
            val = argv[++i];
        } else {
            fprintf(stderr, "clipskip %s: --%s needs a value (%s)\n", cli->cmd, o->name,
                    o->type == CS_OPT_CHOICE ? o->choices : (o->metavar ? o->metavar : "value"));
            return CS_EXIT_USAGE;
        }
        int rc = set_value(cli, o, val);
        if (rc) return rc;
    }
    return -1;
}

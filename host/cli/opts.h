/* One option table per subcommand: parsing and --help (with each default) come from it. */
#ifndef CLIPSKIP_CLI_OPTS_H
#define CLIPSKIP_CLI_OPTS_H

#include <stdio.h>

/* Exit codes of the clipskip program (documented in --help and the README). */
enum { CS_EXIT_OK = 0, CS_EXIT_FAIL = 1, CS_EXIT_USAGE = 2 };

typedef enum {
    CS_OPT_FLAG,   /* int*: set to 1 */
    CS_OPT_INT,    /* int*: decimal, range-checked against min..max */
    CS_OPT_STR,    /* const char**: the argument as given */
    CS_OPT_DOUBLE, /* double* */
    CS_OPT_CHOICE  /* int*: index of the argument in choices ("auto|on|off") */
} cs_opt_type;

typedef struct {
    const char *name;    /* long name without dashes: "clip-skip" */
    cs_opt_type type;
    void *dst;           /* holds the default before parsing; help prints it */
    const char *metavar; /* "N", "FILE" */
    const char *help;
    const char *choices; /* CS_OPT_CHOICE: "a|b|c" */
    long min, max;       /* CS_OPT_INT: accepted range (min == max == 0: any) */
} cs_opt;

typedef struct {
    const char *cmd;         /* "encode" */
    const char *usage;       /* "[options] [PROMPT...]" */
    const char *description; /* a paragraph under the usage line */
    const cs_opt *opts;      /* terminated by an entry with name == NULL */
} cs_cli;

/* Parse argv[1..argc-1] (argv[0] is the subcommand name). Positional arguments are collected
 * in order into pos (capacity argc), count in *n_pos. Returns -1 when parsing succeeded,
 * otherwise the exit code to return right away (0 after --help, CS_EXIT_USAGE with a message
 * on stderr for an unknown option, a missing or malformed value). */
int cs_opts_parse(const cs_cli *cli, int argc, char **argv, char **pos, int *n_pos);
void cs_opts_help(const cs_cli *cli, FILE *f);
/* The name of choice index i in "a|b|c" (static buffer per call site is not used: writes to
 * buf of cap bytes). */
const char *cs_opt_choice_name(const char *choices, int i, char *buf, size_t cap);

#endif

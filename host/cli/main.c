/* clipskip: the command-line program. Results to stdout, logs and progress to stderr. */
#include "clipskip.h"
#include "cmds.h"
#include "opts.h"

#include <stdio.h>
#include <string.h>

typedef struct {
    const char *name;
    cs_cmd_fn fn;
    const char *summary;
} cs_cmd;

static const cs_cmd COMMANDS[] = {
    /* one line per subcommand; each lives in host/cli/<name>.c */
    {"encode", cs_cmd_encode, "encode prompts to hidden states / pooled vectors at a clip skip"},
    {"info", cs_cmd_info, "describe the text tower(s) in a model file"},
    {"tokenize", cs_cmd_tokenize, "print the CLIP token ids of prompts"},
    {"serve", cs_cmd_serve, "HTTP encoding service: dynamic batching, mixed clip skips, cache"},
    {"bench", cs_cmd_bench, "time encode calls over batch sizes and clip skips, against the device floor"},
    {NULL, NULL, NULL},
};

static void usage(FILE *f) {
    fprintf(f,
            "clipskip %s: CLIP text encoder with CLIP-skip early exit\n\n"
            "usage: clipskip <command> [options]   (clipskip <command> --help for its options)\n\n"
            "commands:\n",
            clipskip_version());
    for (const cs_cmd *c = COMMANDS; c->name; c++) fprintf(f, "  %-10s %s\n", c->name, c->summary);
    fprintf(f, "\n  --version  print the version and build\n"
               "\nexit codes: 0 success, 1 failure (message on stderr), 2 usage error\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return CS_EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return CS_EXIT_OK;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
        printf("clipskip %s (%s)\n", clipskip_version(), clipskip_build_info());
        return CS_EXIT_OK;
    }
    for (const cs_cmd *c = COMMANDS; c->name; c++)
        if (!strcmp(argv[1], c->name)) return c->fn(argc - 1, argv + 1);
    fprintf(stderr, "clipskip: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return CS_EXIT_USAGE;
}

/* Prompts for the CLI: from arguments, or one per line from a file or stdin. */
#ifndef CLIPSKIP_CLI_PROMPTS_H
#define CLIPSKIP_CLI_PROMPTS_H

#include <stddef.h>

typedef struct {
    char **text;   /* n NUL-terminated prompts */
    size_t n, cap;
    char *src;     /* the file's name as messages give it ("<stdin>"), and text[i] are heap
                      copies; NULL: the arguments themselves */
    unsigned long long *line; /* with src: the line each prompt came from */
} cs_prompts;

/* args (n_args) when given; else lines of file ("-" or NULL with no args: stdin). A final
 * line without '\n' counts; "\r\n" endings are stripped; empty lines are empty prompts.
 * Returns 0, or prints why on stderr (naming the file and line) and returns -1. */
int cs_prompts_read(cs_prompts *p, char **args, int n_args, const char *file);
void cs_prompts_free(cs_prompts *p);
/* Where prompt i came from, for messages: "FILE:LINE", or "prompt i" (counting from 0, as the
 * rows of the outputs) for arguments. */
const char *cs_prompts_where(const cs_prompts *p, size_t i, char *buf, size_t cap);

#endif

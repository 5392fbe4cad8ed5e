/* Pieces shared by the subcommands: model opening, option value names. */
#ifndef CLIPSKIP_CLI_COMMON_H
#define CLIPSKIP_CLI_COMMON_H

#include "clipskip.h"

/* --backend auto|cpu|cuda, in clipskip_backend order */
#define CS_BACKEND_CHOICES "auto|cpu|cuda"
/* --random names, index i <-> CS_RANDOM_FAMILIES[i] */
#define CS_RANDOM_CHOICES "none|vit-l|vit-h|vit-bigg|tiny"

/* Open --model FILE, or a random tower when random_choice > 0 (index in CS_RANDOM_CHOICES).
 * Prints the error on stderr and returns NULL on failure. */
clipskip_model *cs_cli_open_model(const char *cmd, const char *path, int random_choice,
                                  const char *vocab, int verbose);
/* Print "clipskip <cmd>: <status>: <last error>" on stderr. */
void cs_cli_error(const char *cmd, clipskip_status st);
/* Seconds since an arbitrary epoch (monotonic). */
double cs_now(void);

#endif

/* The clipskip program's subcommands: one file each under host/cli/, listed in main.c. */
#ifndef CLIPSKIP_CLI_CMDS_H
#define CLIPSKIP_CLI_CMDS_H

typedef int (*cs_cmd_fn)(int argc, char **argv); /* argv[0] is the subcommand name */

int cs_cmd_encode(int argc, char **argv);
int cs_cmd_tokenize(int argc, char **argv);
int cs_cmd_info(int argc, char **argv);
int cs_cmd_bench(int argc, char **argv);
int cs_cmd_serve(int argc, char **argv);

#endif

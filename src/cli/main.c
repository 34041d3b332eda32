/* main.c - the qid command line: dispatches `qid <command>` to the module
 * that owns the command. Only `qid run` initialises MPI; every
 * other command is a plain serial program.
 *
 * Does not: parse command options (each command's cmd_*.c does, with
 * cli_parse). */
#include <stdio.h>
#include <string.h>

#include <hdf5.h>

#include "cli.h"
#include "error.h"
#include "model.h"
#include "version.h"

typedef struct {
    const char *name;
    int (*main)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    {"import", qid_import_main, "Hugging Face safetensors checkpoint -> qid checkpoint (HDF5)"},
    {"tokens", qid_tokens_main, "token ids (raw, .npy or text bytes) -> qid token set (HDF5)"},
    {"corpus", qid_corpus_main, "synthetic language of known entropy rate, or a text file -> train/eval/calib sets"},
    {"inspect", qid_inspect_main, "summarise any qid HDF5 file"},
    {"eval", qid_eval_main, "evaluate a checkpoint on a token set: loss, perplexity, tokens/s"},
    {"run", qid_run_main, "run a job: every checkpoint x quantizer setting under MPI -> results store"},
    {"results", qid_results_main, "a results store as a table or CSV, filtered by model, method, bits, ..."},
    {"quantize", qid_quantize_main, "quantize a checkpoint's linear layers (RTN or GPTQ) -> float32 checkpoint"},
    {"fit", qid_fit_main, "fit the scaling laws of QiD to a results store -> its /fits"},
    {"predict", qid_predict_main, "QiD, tokens-for or training level from a stored fit or given coefficients"},
    {"predictor", qid_predictor_main, "Xu et al. loss predictor (forest, leave-one-family-out) and Pareto frontier"},
    {"report", qid_report_main, "summary, tables and gnuplot plots (PNG, SVG) of a results store's law"},
    {"train", qid_train_main, "train a small gpt-neox model on a token set -> checkpoints at log-spaced steps"},
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *out)
{
    fprintf(out, "usage: qid <command> [options]\n"
                 "\n"
                 "qid measures how much post-training quantization degrades language models\n"
                 "across checkpoints and bit widths, and fits scaling laws to the results.\n"
                 "\n"
                 "commands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\n'qid <command> --help' describes a command; 'qid --version' the build.\n");
}

static void version(void)
{
    char libs[1024];
    qid_library_versions(libs, sizeof libs);
    printf("qid %s (git %s)\ncompiler: %s\nflags: %s\nlibraries: %s\n", qid_version(), qid_git_rev(), qid_compiler(),
           qid_build_flags(), libs);
}

int main(int argc, char **argv)
{
    /* Before HDF5 starts: no library shutdown at exit. A file whose close
     * failed (a full disk refusing its last flush) stays in HDF5's table of
     * open files although HDF5 freed it (HDF5 before 1.14.1, HDFFV-11052),
     * and the shutdown would crash on it after qid's error was printed.
     * qid closes every file it keeps; one still open at exit is left as a
     * kill would leave it, which every reader and the store already handle. */
    H5dont_atexit();
    qid_h5_silence();
    qid_blas_init();
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
        version();
        return 0;
    }
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(cmd, commands[i].name) == 0) return commands[i].main(argc - 1, argv + 1);
    fprintf(stderr, "qid: error: unknown command '%s' (see 'qid --help')\n", cmd);
    return 2;
}

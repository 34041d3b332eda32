/* results_cmd.h - `qid results`: the rows of a results store
 * (hdf5-schema/results.md) as an aligned text table or as CSV, filtered and
 * sorted.
 *
 * Reads through qid_results_read (SWMR, no lock), so it works on a store
 * that a `qid run` is writing, and on one left by a killed run; a last row
 * the writer has not finished is not shown.
 *
 * Does not: write or repair the store, recompute QiD, or join rows (each
 * row already carries loss16, qid and qid_se). Nothing here uses MPI. */
#ifndef QID_RESULTS_CMD_H
#define QID_RESULTS_CMD_H

/* `qid results STORE [--csv] [--model M] [--method M] [--format F]
 * [--bits B] [--status ok|failed] [--latest] [--columns a,b,...]`.
 * Prints the rows that pass every filter (AND), sorted by model,
 * tokens_seen, method, format (then step, bits, key, store order), to
 * stdout: an aligned table (default columns model, step, tokens_seen,
 * method, format, bits, loss, loss16, qid, qid_se, status, and error when a
 * shown row failed) or, with --csv, RFC 4180 CSV with a header line and
 * every column of /tasks in schema order. Returns 0, 1 when the store
 * cannot be read (one "qid results: error: ..." line on stderr), 2 on bad
 * usage. */
int qid_results_main(int argc, char **argv);

#endif

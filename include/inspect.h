/* inspect.h - `qid inspect FILE`: a human summary of any qid HDF5 file,
 * chosen by its `format` attribute.
 *
 * Does not: modify the file, or summarise non-qid HDF5 files beyond saying so. */
#ifndef QID_INSPECT_H
#define QID_INSPECT_H

int qid_inspect_main(int argc, char **argv);

#endif

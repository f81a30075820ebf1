"""Data for the course: the generated toy world (`world`), MovieLens (`movielens`), Amazon 2014
5-core categories (`amazon`), your own files (`interactions`), the one download function
(`download`), content vectors from item text (`content`), the per-user sequences,
leave-one-out split and batches every model trains on (`sequences`), and the one entry point
that gives any of them by name (`datasets.load_dataset`)."""

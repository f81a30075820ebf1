"""Data for the course: the generated toy world (`world`), MovieLens (`movielens`), and the
per-user sequences, leave-one-out split and batches every model trains on (`sequences`)."""

"""URL categories: UT1-style lists compiled into one self-checking database file.

`compile` reads the lists, `db` writes and loads the file, `lookup` answers
"which categories is this host (and path) in?" fast enough for every HTTP,
TLS and DNS transaction.
"""

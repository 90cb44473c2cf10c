-- Room on each page for two more versions of every row: the claim's update and the
-- completion's. At 50 % (migration 0009) about one update in eight found its page full (a
-- page whose dead versions another backend holds pinned cannot be pruned then) and wrote the
-- row elsewhere, with an entry in each of the table's seven indexes; at 30 % both fit without
-- pruning. Pages written before this keep their layout. PostgreSQL only: SQLite rewrites a
-- row where it stands.
ALTER TABLE work_requests SET (fillfactor = 30);

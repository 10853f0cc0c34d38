"""An index on disk: SQLite cases and FTS5 (store), FAISS vectors (vectors), query terms
(lexical), the generation layout and its lock (generations), and the one writer (writer)."""

"""graph -> plan -> run: the reference interpreter and code generators."""

"""Releases in storage: the key layout, release documents, the pure deploy plan, and
publish, verify, repair, rollback and prune."""

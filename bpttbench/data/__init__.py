"""The texts: the corpus registry and loader, the built-in corpora made from Python's standard library,
generated corpora with a known optimum, and the n-gram reference levels."""

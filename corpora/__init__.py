"""The registry of named corpora (registry.json): where each text comes from, its checksum, size and licence.

This directory is installed as the package data `bpttbench.corpora` (see setup.cfg); the texts
themselves are downloaded on first use into the user's cache, never committed here.
"""

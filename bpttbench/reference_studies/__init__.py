"""The reference studies' summaries (full.json, quick.json), data read by bpttbench/report/replication.py."""

"""The archive's parts that a run and the scheduler use, with no web server in them: `record` (a
run's output files into the store, with who each is for), `tokens` (signed, expiring links, API
tokens and sessions) and `prune` (retention). The archive's pages and API (`reports/web/`) read
what these write.
"""

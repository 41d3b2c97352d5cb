"""Shoal's Prometheus metrics: every metric's name, type and meaning, in one place.

`metrics.instruments` holds the metrics the code updates as things happen
(counters and histograms: raft, store writes, dispatcher, scheduler, agent),
one `NodeMetrics` per node process with a registry of its own (tests run
several nodes in one process). `metrics.collectors` holds the gauges read at
scrape time from the state that already exists (the store's nodes, tasks and
services, raft's term and indexes, the agent's tasks, the certificate).
Serving them over HTTP(S) is the node's business (node/metricsserver.py).

This package sits at the bottom of the layout (DESIGN §1): it imports only
`proto` of ours, and the store, raft, dispatcher, leader loop and agent
import it to update their instruments.
"""

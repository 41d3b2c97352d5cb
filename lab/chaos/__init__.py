"""The chaos soak: `python -m lab.chaos` (issue 16).

A lab cluster runs a mixed workload (lab.chaos.workload) while a fault injector
(lab.chaos.faults) kills, partitions, restarts, locks and drains its nodes;
after the faults stop and the cluster heals, lab.chaos.invariants checks the
five invariants (acknowledged writes, one leader and one store, convergence,
no orphans, nothing left on disk or in the kernel). lab.chaos.run ties it
together, prints the timeline and the results, and exits non-zero on any
violation. Everything random is drawn from one seeded generator (`--seed`),
so a run's plan of operations and faults repeats; the timing of the cluster's
answers does not.
"""

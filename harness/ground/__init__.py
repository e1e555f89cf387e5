"""The ground every package stands on: bad-input errors, hub reachability, the noise-level
channel, device and autocast helpers, machine load, progress bars, file digests and the theory
sandbox's attention arithmetic.

Every package of the project (harness, methods, tasks, results, reports) may import these
modules; they import nothing of the project themselves, so they can never close an import circle.
"""

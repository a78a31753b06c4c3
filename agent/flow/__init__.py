"""The things that flow between the stages: samples and series, what a cycle's detection saw,
incidents and episodes, changes, remediation runs and audit entries.

This is the ground floor: the store and every stage import it, and it imports nothing of theirs
(``detectors.base`` for ``Hit``, ``agent.errors`` and ``agent.clock`` at most).
"""

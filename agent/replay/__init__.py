"""``aiops replay``: what the running config would have done over a range of real history.

``run`` replays the range through the daemon's own cycle into a throwaway store; ``report``
reads that store into the report (incidents, pages, remediation decisions, noise, timeline);
``budget`` finds the page budget that meets a number of pages a day; ``known`` scores the
replay on outages the team knows about.
"""

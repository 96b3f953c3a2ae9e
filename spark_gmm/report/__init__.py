"""The fit report: figures of a fitted mixture and its run, as one self-contained HTML page.

Needs matplotlib (the optional ``report`` extra); importing this package does not.
"""

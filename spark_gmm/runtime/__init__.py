"""Executor machinery: ingest and input checks, the block store, statistics passes (as Spark
jobs or by resident tasks), the wire format between them and the driver, worker set-up.

Nothing here decides what EM does with the statistics; that is :mod:`spark_gmm.fit`.
"""

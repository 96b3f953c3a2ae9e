"""The benchmark against Spark MLlib and scikit-learn, and its process probes.

Needs the ``bench`` extra (``pip install 'spark-gmm[bench]'``); nothing the executors load
imports this package.
"""

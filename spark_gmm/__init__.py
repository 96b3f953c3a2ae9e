"""spark-gmm: Gaussian Mixture Models fitted by distributed EM on Apache Spark."""

__version__ = "0.1.0"

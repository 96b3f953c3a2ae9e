"""The pyspark.ml-facing API: params, the estimator, the model, its summary, scoring and
persistence. Import the public classes from :mod:`spark_gmm`."""

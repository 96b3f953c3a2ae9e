"""The fit on the driver: initialisation, the EM loop (written once, blind to how statistics
arrive), checkpoints, and :func:`~spark_gmm.fit.driver.fit_mixture`, which ties them to the
runtime's passes over the stored rows."""
